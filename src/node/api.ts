/**
 * The agent's control API: HTTP/JSON over node:http, served on the node's lab address and on a local unix socket.
 * It is what the CLI and the test harness drive: read the node's state and counters, make a pod ping, curl or
 * traceroute, place raw bytes on an interface, and capture interfaces (a pcapng stream). Every request is bounded
 * (body size, counts, durations) and every failure is a JSON error, so no caller can crash or wedge the agent.
 */
import type { SpeakerStatus } from './bgp/index.js';
import { createWriteStream, openSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { podByName, type ClusterState, type SpecDocument } from '../calico/index.js';
import { Ipv4Address } from '../routing/index.js';
import {
  CAPTURE_DEFAULTS,
  CAPTURE_ENDPOINT,
  CAPTURE_HEADER,
  CAPTURE_LIMITS,
  CURL_LIMITS,
  MAX_BODY_BYTES,
  MAX_RUNNING_CAPTURES,
  PING_DEFAULTS,
  PING_LIMITS,
  PING_RUN_MAX_MS,
  TRACEROUTE_LIMITS,
  type AgentSystemInfo,
  type CaptureInfo,
  type CurlRequest,
  type Endpoint,
  type NodeInfo,
  type PingRequest,
  type Range,
  type ReloadResult,
  type ResponseOf,
  type TracerouteRequest,
} from './api-protocol.js';
import { CaptureSession, parseFilter } from './capture/index.js';
import { TUNNEL_INTERFACE, UNDERLAY_INTERFACE } from './interface-names.js';
import { EXEC_FRAME, EXEC_PATH, EXEC_UPGRADE, execFrame, exitFrame } from './exec-stream.js';
import { netnsPath } from './kernel/pod-namespaces.js';
import { spawnInPod, spawnOnNode } from './kernel/pod-exec.js';
import type { RunningNode } from './running-node.js';
import type { PodTools } from './kernel/pod-tools.js';

// For the modules that knew these as the server's (the agent, the harness, the container tests).
export {
  CAPTURE_HEADER,
  MAX_BODY_BYTES,
  specDigest,
  type AgentSystemInfo,
  type CaptureInfo,
  type DataplaneView,
  type NodeInfo,
  type NodeStatsResponse,
  type ReloadResult,
} from './api-protocol.js';

/** The re-read spec cannot become this node without a restart (the node left the spec or moved). */
export class ReloadRefused extends Error {}

export interface ApiContext {
  /** Read on every request: a reload replaces it. */
  readonly labNode: RunningNode;
  /** The spec the node was built from: a CLI rebuilds this node's exact cluster from it. */
  readonly spec: SpecDocument;
  readonly apiPort: number;
  readonly startedAt: Date;
  readonly system: AgentSystemInfo;
  underlaySendErrors(): number;
  /** The BGP speaker's state; absent when the node's routes come from the spec (`--routes spec`). */
  bgpStatus?(): SpeakerStatus;
  /**
   * Re-reads the spec and rebuilds the node from it (`kubectl apply`/`delete` rewrote it); throws, keeping the
   * running node, when the spec is unusable. Absent when the agent has no spec file to re-read.
   */
  reload?(): ReloadResult | Promise<ReloadResult>;
}

/** A request the API refuses, with the HTTP status that says why. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

type Body = Record<string, unknown>;

function field<T>(body: Body, name: string, check: (value: unknown) => value is T, expected: string): T | undefined {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (!check(value)) throw new ApiError(400, `${name}: expected ${expected}, got ${JSON.stringify(value)}`);
  return value;
}

function requiredString(body: Body, name: string): string {
  const value = field(body, name, (v): v is string => typeof v === 'string' && v.length > 0, 'a non-empty string');
  if (value === undefined) throw new ApiError(400, `${name}: required`);
  return value;
}

function optionalInteger(body: Body, name: string, { min, max }: Range): number | undefined {
  return field(
    body,
    name,
    (v): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max,
    `an integer in ${min}..${max}`,
  );
}

function optionalBoolean(body: Body, name: string): boolean | undefined {
  return field(body, name, (v): v is boolean => typeof v === 'boolean', 'true or false');
}

/** A pod name anywhere in the cluster, or a dotted quad. */
function resolveDestination(cluster: ClusterState, target: string): Ipv4Address {
  const address = Ipv4Address.tryParse(target) ?? podByName(cluster, target)?.ip;
  if (!address)
    throw new ApiError(400, `to: ${JSON.stringify(target)} is neither an IPv4 address nor a pod of the cluster`);
  return address;
}

function localPod(context: ApiContext, name: string): PodTools {
  const tools = context.labNode.podTools(name);
  if (tools) return tools;
  const elsewhere = podByName(context.labNode.cluster, name);
  throw new ApiError(
    404,
    elsewhere
      ? `pod ${name} runs on ${elsewhere.node}, not ${context.labNode.node.name}: ask that node's agent`
      : `no pod named ${JSON.stringify(name)} in the cluster`,
  );
}

/** Answers an upgrade request that cannot become an exec stream, as a plain HTTP reply, and closes. */
function refuseUpgrade(socket: Duplex, status: number, message: string): void {
  const text = `${JSON.stringify({ error: message })}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
  );
}

/** `POST /v1/exec?pod=…&tty=1&arg=…` upgraded: runs the command in the pod's namespace and bridges its streams. */
function execInPod(context: ApiContext, request: IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.on('error', () => socket.destroy());
  const url = new URL(request.url ?? '/', 'http://agent');
  if (request.method !== 'POST' || url.pathname !== EXEC_PATH || request.headers.upgrade !== EXEC_UPGRADE) {
    return refuseUpgrade(socket, 404, `no such upgrade: ${request.method} ${url.pathname}`);
  }
  const command = url.searchParams.getAll('arg');
  if (command.length === 0) return refuseUpgrade(socket, 400, 'arg: give the command to run, e.g. arg=ip&arg=addr');
  const tty = url.searchParams.get('tty') === '1';
  const labNode = context.labNode;
  // No pod: the node itself, as `kubectl debug node/NAME` opens a shell on it.
  const name = url.searchParams.get('pod');
  let spawnCommand: () => ChildProcess;
  if (name === null) {
    spawnCommand = () => spawnOnNode(labNode.node.name, command, tty);
  } else {
    const pod = labNode.localPods.find((candidate) => candidate.name === name);
    if (pod === undefined || labNode.kind !== 'kernel') {
      try {
        localPod(context, name);
      } catch (error) {
        if (error instanceof ApiError) return refuseUpgrade(socket, error.status, error.message);
      }
      return refuseUpgrade(
        socket,
        501,
        `pod ${name} is simulated by the userspace node: it runs no programs (ipip-lab exec ${name} -- ip addr shows its view)`,
      );
    }
    spawnCommand = () => spawnInPod(netnsPath(pod), pod.name, command, tty);
  }
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: ${EXEC_UPGRADE}\r\nconnection: Upgrade\r\n\r\n`);
  const child = spawnCommand();
  child.stdout?.on('data', (data: Buffer) => socket.write(execFrame(EXEC_FRAME.stdout, data)));
  child.stderr?.on('data', (data: Buffer) => socket.write(execFrame(EXEC_FRAME.stderr, data)));
  child.stdin?.on('error', () => {});
  if (head.length > 0) child.stdin?.write(head);
  socket.pipe(child.stdin!);
  // A client that goes away takes its command with it, as kubectl's does.
  socket.on('close', () => child.kill('SIGHUP'));
  child.on('error', (error) => {
    socket.write(execFrame(EXEC_FRAME.stderr, Buffer.from(`${error.message}\n`)));
    socket.end(exitFrame(126));
  });
  child.on('close', (code, signal) =>
    socket.end(exitFrame(code ?? 128 + (signal ? (osConstants.signals[signal] ?? 0) : 0))),
  );
}

function nodeInfo(context: ApiContext): NodeInfo {
  const { node, localPods } = context.labNode;
  return {
    name: node.name,
    ip: node.ip.toString(),
    tunnelAddress: node.tunnelAddress?.toString() ?? null,
    dataplane: context.labNode.kind,
    apiPort: context.apiPort,
    startedAt: context.startedAt.toISOString(),
    system: context.system,
    pods: localPods.map((pod) => ({ name: pod.name, ip: pod.ip.toString(), hostInterface: pod.hostInterface })),
  };
}

async function ping(context: ApiContext, body: Body): Promise<ResponseOf<'POST /v1/ping'>> {
  const pod = localPod(context, requiredString(body, 'from'));
  const to = resolveDestination(context.labNode.cluster, requiredString(body, 'to'));
  const count = optionalInteger(body, 'count', PING_LIMITS.count) ?? PING_DEFAULTS.count;
  const intervalMs = optionalInteger(body, 'intervalMs', PING_LIMITS.intervalMs) ?? PING_DEFAULTS.intervalMs;
  const timeoutMs = optionalInteger(body, 'timeoutMs', PING_LIMITS.timeoutMs);
  if (count * intervalMs + (timeoutMs ?? 0) > PING_RUN_MAX_MS) {
    throw new ApiError(400, `count × intervalMs must stay under ${PING_RUN_MAX_MS / 1000} s`);
  }
  return pod.ping(to.value, {
    count,
    intervalMs,
    size: optionalInteger(body, 'size', PING_LIMITS.size),
    df: optionalBoolean(body, 'df'),
    ttl: optionalInteger(body, 'ttl', PING_LIMITS.ttl),
    tos: optionalInteger(body, 'tos', PING_LIMITS.tos),
    timeoutMs,
  } satisfies Omit<PingRequest, 'from' | 'to'>);
}

async function curl(context: ApiContext, body: Body): Promise<ResponseOf<'POST /v1/curl'>> {
  const pod = localPod(context, requiredString(body, 'from'));
  const url = requiredString(body, 'url');
  const timeoutMs = optionalInteger(body, 'timeoutMs', CURL_LIMITS.timeoutMs);
  return pod.curl(url, { timeoutMs } satisfies Omit<CurlRequest, 'from' | 'url'>);
}

async function traceroute(context: ApiContext, body: Body): Promise<ResponseOf<'POST /v1/traceroute'>> {
  const pod = localPod(context, requiredString(body, 'from'));
  const to = resolveDestination(context.labNode.cluster, requiredString(body, 'to'));
  return pod.traceroute(to.value, {
    maxHops: optionalInteger(body, 'maxHops', TRACEROUTE_LIMITS.maxHops),
    timeoutMs: optionalInteger(body, 'timeoutMs', TRACEROUTE_LIMITS.timeoutMs),
  } satisfies Omit<TracerouteRequest, 'from' | 'to'>);
}

function interfaceNames(context: ApiContext): string[] {
  return context.labNode.links.filter((link) => link.name !== 'lo').map((link) => link.name);
}

function inject(context: ApiContext, body: Body): ResponseOf<'POST /v1/inject'> {
  const name = requiredString(body, 'interface');
  const names = interfaceNames(context);
  if (!names.includes(name)) {
    throw new ApiError(
      404,
      `no interface ${JSON.stringify(name)} on ${context.labNode.node.name} (interfaces: ${names.join(', ')})`,
    );
  }
  const encoded = requiredString(body, 'packet');
  const packet = Buffer.from(encoded, 'base64');
  if (packet.length === 0 || packet.toString('base64') !== encoded.replace(/\s+/g, '')) {
    throw new ApiError(400, 'packet: expected the bytes in base64');
  }
  context.labNode.dataplane.inject(name, packet);
  return { ok: true };
}

const CAPTURE_CONTENT_TYPES = { pcapng: 'application/x-pcapng', pcap: 'application/vnd.tcpdump.pcap' } as const;

/** A route's answer that is not JSON: it writes the response itself. */
class Streamed {
  constructor(readonly start: (response: ServerResponse) => void) {}
}

/**
 * Open captures. Each streams its file over the response that asked for it: the capture is armed when the headers
 * arrive, packets follow as they are captured, and it ends (count, duration, DELETE, or the agent closing the API)
 * with the stats in a trailer. A client that hangs up stops its capture.
 */
class Captures {
  private readonly open = new Map<string, { session: CaptureSession; info: Omit<CaptureInfo, 'stats'> }>();
  private nextId = 1;

  start(context: ApiContext, body: Body, local: boolean): Streamed {
    const labNode = context.labNode;
    const words = field(
      body,
      'interfaces',
      (v): v is string[] => Array.isArray(v) && v.length > 0 && v.every((name) => typeof name === 'string'),
      'a non-empty array of interface or pod names, or ["any"]',
    );
    const interfaces: string[] | 'any' =
      words === undefined || words.includes('any')
        ? 'any'
        : [...new Set(words.map((word) => captureInterface(labNode, word)))];
    const filter = field(body, 'filter', (v): v is string => typeof v === 'string', 'a capture filter') ?? '';
    const compiled = parseFilter(filter);
    if (!compiled.ok) throw new ApiError(400, compiled.error);
    const format =
      field(body, 'format', (v): v is 'pcapng' | 'pcap' => v === 'pcapng' || v === 'pcap', '"pcapng" or "pcap"') ??
      CAPTURE_DEFAULTS.format;
    const count = optionalInteger(body, 'count', CAPTURE_LIMITS.count);
    const durationMs = optionalInteger(body, 'durationMs', CAPTURE_LIMITS.durationMs) ?? CAPTURE_DEFAULTS.durationMs;
    const file = field(
      body,
      'file',
      (v): v is string => typeof v === 'string' && path.isAbsolute(v),
      'an absolute path',
    );
    // A path names a file on this node: only a client on this node (the unix socket) may have the agent write one.
    if (file !== undefined && !local) {
      throw new ApiError(
        403,
        'file: the agent writes files only for a client on its unix socket; read the stream instead',
      );
    }

    const id = String(this.nextId++);
    const info = { id, interfaces, filter, format, startedAt: new Date().toISOString() };
    return new Streamed((response) => {
      // Counted here, where the capture starts, so that requests read at the same time cannot all pass.
      if (this.open.size >= MAX_RUNNING_CAPTURES) {
        throw new ApiError(
          503,
          `${MAX_RUNNING_CAPTURES} captures are running already: stop one first (GET /v1/captures lists them)`,
        );
      }
      const sink = file === undefined ? response : openCaptureFile(file);
      // The session only writes from a later turn of the event loop, after the headers.
      const session = new CaptureSession(labNode.dataplane, {
        interfaces,
        filter,
        count,
        durationMs,
        format,
        nodeName: labNode.node.name,
        describeInterface: (name) => describeCaptureInterface(labNode, name),
        sink,
      });
      this.open.set(id, { session, info });
      // A file sink does not see the client go: its hanging up stops the capture all the same.
      response.on('close', () => session.stop());
      response.writeHead(200, {
        'content-type': CAPTURE_CONTENT_TYPES[format],
        [CAPTURE_HEADER.id]: id,
        [CAPTURE_HEADER.interfaces]: interfaces === 'any' ? 'any' : interfaces.join(','),
        trailer: CAPTURE_HEADER.stats,
      });
      response.flushHeaders();
      session.done
        .then(async (stats) => {
          // The trailer says the file is complete: every byte is in it and it is closed.
          if (sink !== response) await new Promise<void>((resolve, reject) => sink.end(resolve).once('error', reject));
          if (response.destroyed) return;
          response.addTrailers({ [CAPTURE_HEADER.stats]: JSON.stringify(stats) });
          response.end();
        })
        .catch(() => {
          if (sink !== response) sink.destroy();
          response.destroy();
        })
        .finally(() => this.open.delete(id));
    });
  }

  list(): CaptureInfo[] {
    return [...this.open.values()].map(({ session, info }) => ({ ...info, stats: session.stats() }));
  }

  get(id: string): CaptureInfo {
    const { session, info } = this.find(id);
    return { ...info, stats: session.stats() };
  }

  /** Stops a capture; answers once its stream has taken every packet, with the same stats as its trailer. */
  async stop(id: string): Promise<CaptureInfo> {
    const { session, info } = this.find(id);
    session.stop();
    return { ...info, stats: await session.done.catch(() => session.stats()) };
  }

  stopAll(): void {
    for (const { session } of this.open.values()) session.stop();
  }

  private find(id: string): { session: CaptureSession; info: Omit<CaptureInfo, 'stats'> } {
    const capture = this.open.get(id);
    if (!capture) throw new ApiError(404, `no running capture ${JSON.stringify(id)}`);
    return capture;
  }
}

/**
 * The agent writes the file itself when the client runs on this node, rather than streaming it to a client that
 * writes it: at full forwarding rate a second process copying every record costs the CPU forwarding runs on.
 * Opened at once, so that a path that cannot be written is refused before anything is captured.
 */
function openCaptureFile(file: string): ReturnType<typeof createWriteStream> {
  let fd: number;
  try {
    fd = openSync(file, 'w');
  } catch (error) {
    throw new ApiError(400, `cannot write ${file}: ${(error as Error).message}`);
  }
  return createWriteStream('', { fd });
}

/** An interface name, or a pod of this node standing for its cali interface (as `-i POD` means). */
function captureInterface(labNode: RunningNode, word: string): string {
  const names = labNode.links.filter((link) => link.name !== 'lo').map((link) => link.name);
  if (names.includes(word)) return word;
  const pod = labNode.localPods.find((candidate) => candidate.name === word);
  if (pod) return pod.hostInterface;
  const elsewhere = podByName(labNode.cluster, word);
  const here = labNode.node.name;
  throw new ApiError(
    404,
    elsewhere
      ? `pod ${word} runs on ${elsewhere.node}, not ${here}: capture on ${elsewhere.node}`
      : `no interface or pod ${JSON.stringify(word)} on ${here} (interfaces: ${names.join(', ')}, any; pods: ${labNode.localPods.map((p) => p.name).join(', ') || 'none'})`,
  );
}

/** The pcapng if_description: which node, and what the interface is there (for a cali interface, whose pod). */
function describeCaptureInterface(labNode: RunningNode, name: string): string {
  const { node } = labNode;
  if (name === UNDERLAY_INTERFACE) return `${node.name} ${name} ↔ underlay ${node.ip} (IPIP, outer headers)`;
  if (name === TUNNEL_INTERFACE) {
    return `${node.name} ${name} ↔ IPIP tunnel${node.tunnelAddress ? ` ${node.tunnelAddress}` : ''} (inner packets)`;
  }
  const pod = labNode.localPods.find((candidate) => candidate.hostInterface === name);
  return pod ? `${node.name} ${name} ↔ pod ${pod.namespace}/${pod.name} (${pod.ip})` : `${node.name} ${name}`;
}

/** `local`: the request came over the node's unix socket, from a process on this node. */
type Handler<Answer = unknown> = (body: Body, parameter: string, local: boolean) => Answer | Promise<Answer>;

/** Every endpoint of the contract, answering what the contract says it answers. */
type Routes = { [E in Endpoint]: Handler<ResponseOf<E>> } & { [CAPTURE_ENDPOINT]: Handler<Streamed> };

type RequestListener = (request: IncomingMessage, response: ServerResponse) => void;

/** Serves the lab address; `local` serves the unix socket, where requests may ask for what only this node may. */
export interface ApiHandler extends RequestListener {
  readonly local: RequestListener;
  /** The servers' `upgrade` listener: `kubectl exec` streams (exec-stream.ts). */
  readonly upgrade: (request: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** Stops every capture: each stream ends with what it captured so far. */
  close(): void;
}

/**
 * How much more of an oversized body is read (and thrown away) before the 413 goes out. Answering at once and
 * closing made clients still writing their body see a broken pipe instead of the answer (RFC 9112 §9.6 asks for a
 * "lingering close"); past this, the connection is closed anyway.
 */
const DISCARD_BYTES = 4 * 1024 * 1024;

function readBody(request: IncomingMessage): Promise<Body> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const tooLarge = (): void => reject(new ApiError(413, `request body over ${MAX_BODY_BYTES} bytes`));
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        // Keep nothing; answer when the body ends, or now if it goes on; the connection closes after the reply.
        chunks.length = 0;
        if (size > MAX_BODY_BYTES + DISCARD_BYTES) {
          request.removeAllListeners('data');
          request.resume();
          tooLarge();
        }
        return;
      }
      chunks.push(chunk);
    });
    request.on('error', reject);
    request.on('end', () => {
      if (size > MAX_BODY_BYTES) return tooLarge();
      if (size === 0) return resolve({});
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (error) {
        return reject(new ApiError(400, `request body is not JSON: ${(error as Error).message}`));
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        return reject(new ApiError(400, 'request body must be a JSON object'));
      }
      resolve(parsed as Body);
    });
  });
}

function send(response: ServerResponse, status: number, value: unknown): void {
  if (response.headersSent || response.destroyed) return;
  const text = `${JSON.stringify(value)}\n`;
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...(status === 413 && { connection: 'close' }),
  });
  response.end(text);
}

/** The request listener both servers (lab address, unix socket) share. */
export function createApiHandler(context: ApiContext): ApiHandler {
  const captures = new Captures();
  const reload = async (): Promise<ReloadResult> => {
    if (!context.reload) throw new ApiError(501, 'this agent was started without a spec file to re-read');
    try {
      return await context.reload();
    } catch (error) {
      const message = `reload refused, still running the previous spec: ${(error as Error).message}`;
      throw new ApiError(error instanceof ReloadRefused ? 409 : 400, message);
    }
  };
  // Handlers read context.labNode per request: after a reload it is another node object.
  const node = (): RunningNode => context.labNode;
  const routes = new Map<string, Handler>(
    Object.entries({
      'GET /v1/node': () => nodeInfo(context),
      'GET /v1/cluster': () => node().cluster,
      'GET /v1/spec': () => context.spec,
      'GET /v1/dataplane': () => {
        const counters = node().dataplane.stats().interfaces;
        return {
          links: node().links.map((link) => ({ ...link, stats: counters[link.name] ?? null })),
          routes: node().routes,
        };
      },
      'GET /v1/stats': () => ({
        node: node().node.name,
        ...node().dataplane.stats(),
        underlaySendErrors: context.underlaySendErrors(),
      }),
      'GET /v1/bgp': () => {
        if (!context.bgpStatus) {
          throw new ApiError(
            404,
            `${node().node.name} runs no BGP speaker: its routes come from the spec (--routes spec)`,
          );
        }
        return context.bgpStatus();
      },
      'POST /v1/ping': (body) => ping(context, body),
      'POST /v1/curl': (body) => curl(context, body),
      'POST /v1/traceroute': (body) => traceroute(context, body),
      'POST /v1/inject': (body) => inject(context, body),
      'POST /v1/reload': () => reload(),
      [CAPTURE_ENDPOINT]: (body, _parameter, local) => captures.start(context, body, local),
      'GET /v1/captures': () => captures.list(),
      'GET /v1/captures/*': (_body: Body, id: string) => captures.get(id),
      'DELETE /v1/captures/*': (_body: Body, id: string) => captures.stop(id),
    } satisfies Routes),
  );

  const fail = (response: ServerResponse, error: unknown): void => {
    if (error instanceof ApiError) send(response, error.status, { error: error.message });
    // The pods' tools refuse out-of-range options with RangeError: the caller's mistake, not ours.
    else if (error instanceof RangeError) send(response, 400, { error: error.message });
    else send(response, 500, { error: `internal error: ${error instanceof Error ? error.message : String(error)}` });
  };

  const dispatch = (request: IncomingMessage): { route: Handler; parameter: string } => {
    const path = new URL(request.url ?? '/', 'http://agent').pathname;
    const exact = routes.get(`${request.method} ${path}`);
    if (exact) return { route: exact, parameter: '' };
    const slash = path.lastIndexOf('/');
    const wildcard = routes.get(`${request.method} ${path.slice(0, slash)}/*`);
    if (wildcard) return { route: wildcard, parameter: decodeURIComponent(path.slice(slash + 1)) };
    const allowed = [...routes.keys()].filter((key) => key.endsWith(` ${path}`));
    if (allowed.length > 0)
      throw new ApiError(405, `${request.method} not allowed on ${path} (allowed: ${allowed.join(', ')})`);
    throw new ApiError(404, `no such endpoint: ${request.method} ${path}`);
  };

  const handle = (request: IncomingMessage, response: ServerResponse, local: boolean): void => {
    let target: { route: Handler; parameter: string };
    try {
      target = dispatch(request);
    } catch (error) {
      // A malformed URL or escape is the caller's mistake too.
      fail(response, error instanceof ApiError ? error : new ApiError(400, `bad request: ${(error as Error).message}`));
      request.resume();
      return;
    }
    readBody(request)
      .then((body) => target.route(body, target.parameter, local))
      .then((value) => (value instanceof Streamed ? value.start(response) : send(response, 200, value)))
      .catch((error: unknown) => fail(response, error));
  };
  const handler: RequestListener = (request, response) => handle(request, response, false);
  const local: RequestListener = (request, response) => handle(request, response, true);
  const upgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void =>
    execInPod(context, request, socket, head);
  return Object.assign(handler, { local, upgrade, close: () => captures.stopAll() });
}

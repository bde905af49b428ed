/**
 * The agent's control API: HTTP/JSON over node:http, served on the node's lab address and on a local unix socket.
 * It is what the CLI and the test harness drive: read the node's state and counters, make a pod ping, curl or
 * traceroute, place raw bytes on an interface, and tap interfaces. Every request is bounded (body size, counts,
 * durations) and every failure is a JSON error, so no caller can crash or wedge the agent.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { podByName, type ClusterState, type SpecDocument } from '../calico/index.js';
import { Ipv4Address, type Link, type Route } from '../routing/index.js';
import type { DataplaneStats, InterfaceStats, TapEvent } from './dataplane.js';
import type { LabNode } from './lab-node.js';
import { formatCurl, formatPing, formatTraceroute, type SimulatedPod } from './pod/index.js';

export const DEFAULT_API_PORT = 9440;
export const DEFAULT_AGENT_SOCKET = '/run/ipip-lab/agent.sock';
export const MAX_BODY_BYTES = 64 * 1024;

/** What kubectl's node columns need from the machine the agent runs on. */
export interface AgentSystemInfo {
  readonly osImage: string;
  readonly kernelVersion: string;
  readonly containerRuntime: string;
  readonly architecture: string;
}

export interface NodeInfo {
  name: string;
  ip: string;
  tunnelAddress: string | null;
  apiPort: number;
  startedAt: string;
  system: AgentSystemInfo;
  pods: { name: string; ip: string; hostInterface: string }[];
}

/** felix's links with their live counters (null for lo, which the dataplane does not model), and the routes. */
export interface DataplaneView {
  links: (Link & { stats: InterfaceStats | null })[];
  routes: readonly Route[];
}

export interface NodeStatsResponse extends DataplaneStats {
  node: string;
  /** Packets the kernel refused to send from the raw socket. */
  underlaySendErrors: number;
}

/** The same packet view a capture file holds; `packet` is base64, `timestampNs` a decimal string (it exceeds 2^53). */
export interface TappedPacket {
  interface: string;
  direction: 'rx' | 'tx';
  timestampNs: string;
  packet: string;
}

export interface TapResult {
  packets: TappedPacket[];
  /** More packets matched than `maxPackets` kept. */
  truncated: boolean;
}

/** Formatted like the real tool's output, plus the structured report the text was made from. */
export interface ToolResponse<Report> {
  text: string;
  report: Report;
}

export interface ApiContext {
  readonly labNode: LabNode;
  /** The spec the node was built from: a CLI rebuilds this node's exact cluster from it. */
  readonly spec: SpecDocument;
  readonly apiPort: number;
  readonly startedAt: Date;
  readonly system: AgentSystemInfo;
  underlaySendErrors(): number;
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

const LIMITS = {
  pingCount: 100,
  pingSize: 65_507,
  intervalMinMs: 10,
  intervalMaxMs: 10_000,
  /** A ping or traceroute holds an HTTP request open: keep the whole run bounded. */
  runMaxMs: 120_000,
  timeoutMaxMs: 30_000,
  tapPackets: 10_000,
  taps: 16,
  /** A tap nobody collects is removed after this, so a crashed client leaves nothing running. */
  tapLifetimeMs: 10 * 60_000,
} as const;

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

function optionalInteger(body: Body, name: string, min: number, max: number): number | undefined {
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
  if (!address) throw new ApiError(400, `to: ${JSON.stringify(target)} is neither an IPv4 address nor a pod of the cluster`);
  return address;
}

function localPod(context: ApiContext, name: string): SimulatedPod {
  const pod = context.labNode.pod(name);
  if (pod) return pod;
  const elsewhere = podByName(context.labNode.cluster, name);
  throw new ApiError(
    404,
    elsewhere
      ? `pod ${name} runs on ${elsewhere.node}, not ${context.labNode.node.name}: ask that node's agent`
      : `no pod named ${JSON.stringify(name)} in the cluster`,
  );
}

function nodeInfo(context: ApiContext): NodeInfo {
  const { node, localPods } = context.labNode;
  return {
    name: node.name,
    ip: node.ip.toString(),
    tunnelAddress: node.tunnelAddress?.toString() ?? null,
    apiPort: context.apiPort,
    startedAt: context.startedAt.toISOString(),
    system: context.system,
    pods: localPods.map((pod) => ({ name: pod.name, ip: pod.ip.toString(), hostInterface: pod.hostInterface })),
  };
}

async function ping(context: ApiContext, body: Body): Promise<ToolResponse<unknown>> {
  const pod = localPod(context, requiredString(body, 'from'));
  const to = resolveDestination(context.labNode.cluster, requiredString(body, 'to'));
  const count = optionalInteger(body, 'count', 1, LIMITS.pingCount) ?? 4;
  const intervalMs = optionalInteger(body, 'intervalMs', LIMITS.intervalMinMs, LIMITS.intervalMaxMs) ?? 1000;
  const timeoutMs = optionalInteger(body, 'timeoutMs', 1, LIMITS.timeoutMaxMs);
  if (count * intervalMs + (timeoutMs ?? 0) > LIMITS.runMaxMs) {
    throw new ApiError(400, `count × intervalMs must stay under ${LIMITS.runMaxMs / 1000} s`);
  }
  const report = await pod.ping(to.value, {
    count,
    intervalMs,
    size: optionalInteger(body, 'size', 0, LIMITS.pingSize),
    df: optionalBoolean(body, 'df'),
    ttl: optionalInteger(body, 'ttl', 1, 255),
    tos: optionalInteger(body, 'tos', 0, 255),
    timeoutMs,
  });
  return { text: formatPing(report), report };
}

async function curl(context: ApiContext, body: Body): Promise<ToolResponse<unknown>> {
  const pod = localPod(context, requiredString(body, 'from'));
  const url = requiredString(body, 'url');
  const timeoutMs = optionalInteger(body, 'timeoutMs', 1, LIMITS.timeoutMaxMs);
  const report = await pod.curl(url, { timeoutMs });
  return { text: formatCurl(report), report };
}

async function traceroute(context: ApiContext, body: Body): Promise<ToolResponse<unknown>> {
  const pod = localPod(context, requiredString(body, 'from'));
  const to = resolveDestination(context.labNode.cluster, requiredString(body, 'to'));
  const report = await pod.traceroute(to.value, {
    maxHops: optionalInteger(body, 'maxHops', 1, 64),
    timeoutMs: optionalInteger(body, 'timeoutMs', 1, 5_000),
  });
  return { text: formatTraceroute(report), report };
}

function interfaceNames(context: ApiContext): string[] {
  return context.labNode.links.filter((link) => link.name !== 'lo').map((link) => link.name);
}

function inject(context: ApiContext, body: Body): { ok: true } {
  const name = requiredString(body, 'interface');
  const names = interfaceNames(context);
  if (!names.includes(name)) {
    throw new ApiError(404, `no interface ${JSON.stringify(name)} on ${context.labNode.node.name} (interfaces: ${names.join(', ')})`);
  }
  const encoded = requiredString(body, 'packet');
  const packet = Buffer.from(encoded, 'base64');
  if (packet.length === 0 || packet.toString('base64') !== encoded.replace(/\s+/g, '')) {
    throw new ApiError(400, 'packet: expected the bytes in base64');
  }
  context.labNode.dataplane.inject(name, packet);
  return { ok: true };
}

/** Open taps: the dataplane's listener and what it kept so far. */
class Taps {
  private readonly open = new Map<string, { result: TapResult; detach: () => void }>();
  private nextId = 1;

  start(context: ApiContext, body: Body): { id: string } {
    if (this.open.size >= LIMITS.taps) throw new ApiError(503, `${LIMITS.taps} taps are open already: stop one first`);
    const wanted = field(
      body,
      'interfaces',
      (v): v is string[] => Array.isArray(v) && v.every((name) => typeof name === 'string'),
      'an array of interface names',
    );
    const names = interfaceNames(context);
    const unknown = wanted?.filter((name) => !names.includes(name)) ?? [];
    if (unknown.length > 0) throw new ApiError(404, `no interface ${unknown.join(', ')} (interfaces: ${names.join(', ')})`);
    const only = wanted && new Set(wanted);
    const maxPackets = optionalInteger(body, 'maxPackets', 1, LIMITS.tapPackets) ?? 1000;

    const id = String(this.nextId++);
    const result: TapResult = { packets: [], truncated: false };
    const unsubscribe = context.labNode.dataplane.onTap((event: TapEvent) => {
      if (only && !only.has(event.interfaceName)) return;
      if (result.packets.length >= maxPackets) {
        result.truncated = true;
        return;
      }
      result.packets.push({
        interface: event.interfaceName,
        direction: event.direction,
        timestampNs: event.timestampNs.toString(),
        packet: event.packet.toString('base64'),
      });
    });
    const expiry = setTimeout(() => this.stop(id), LIMITS.tapLifetimeMs).unref();
    this.open.set(id, {
      result,
      detach: () => {
        clearTimeout(expiry);
        unsubscribe();
      },
    });
    return { id };
  }

  stop(id: string): TapResult {
    const tap = this.open.get(id);
    if (!tap) throw new ApiError(404, `no open tap ${JSON.stringify(id)}`);
    this.open.delete(id);
    tap.detach();
    return tap.result;
  }

  closeAll(): void {
    for (const id of [...this.open.keys()]) this.stop(id);
  }
}

type Handler = (body: Body, parameter: string) => unknown;

export interface ApiHandler {
  (request: IncomingMessage, response: ServerResponse): void;
  /** Detaches every open tap. */
  close(): void;
}

function readBody(request: IncomingMessage): Promise<Body> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        // Answer now and discard the rest rather than buffering it; the connection closes after the reply.
        request.removeAllListeners('data');
        request.resume();
        reject(new ApiError(413, `request body over ${MAX_BODY_BYTES} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    request.on('error', reject);
    request.on('end', () => {
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
  const taps = new Taps();
  const { labNode } = context;
  const routes = new Map<string, Handler>(Object.entries({
    'GET /v1/node': () => nodeInfo(context),
    'GET /v1/cluster': () => labNode.cluster,
    'GET /v1/spec': () => context.spec,
    'GET /v1/dataplane': (): DataplaneView => {
      const counters = labNode.dataplane.stats().interfaces;
      return {
        links: labNode.links.map((link) => ({ ...link, stats: counters[link.name] ?? null })),
        routes: labNode.routes,
      };
    },
    'GET /v1/stats': (): NodeStatsResponse => ({
      node: labNode.node.name,
      ...labNode.dataplane.stats(),
      underlaySendErrors: context.underlaySendErrors(),
    }),
    'POST /v1/ping': (body) => ping(context, body),
    'POST /v1/curl': (body) => curl(context, body),
    'POST /v1/traceroute': (body) => traceroute(context, body),
    'POST /v1/inject': (body) => inject(context, body),
    'POST /v1/taps': (body) => taps.start(context, body),
    'DELETE /v1/taps/*': (_body: Body, id: string) => taps.stop(id),
  } satisfies Record<string, Handler>));

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
    if (allowed.length > 0) throw new ApiError(405, `${request.method} not allowed on ${path} (allowed: ${allowed.join(', ')})`);
    throw new ApiError(404, `no such endpoint: ${request.method} ${path}`);
  };

  const handler = (request: IncomingMessage, response: ServerResponse): void => {
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
      .then((body) => target.route(body, target.parameter))
      .then(
        (value) => send(response, 200, value),
        (error: unknown) => fail(response, error),
      );
  };
  return Object.assign(handler, { close: () => taps.closeAll() });
}

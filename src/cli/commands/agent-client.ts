/**
 * How a CLI command reaches a node agent. Inside a node container the local agent answers on its unix socket and the
 * other nodes' agents on their lab addresses. Anywhere else (the host) the lab addresses are not ours to touch: the
 * lab network is internal, and 10.x traffic from the host could leave the machine. So the client refuses and says
 * how to run the command inside a node container instead.
 */
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import os from 'node:os';
import type { ClusterState, NodeState } from '../../calico/index.js';
import {
  CAPTURE_ENDPOINT,
  DEFAULT_AGENT_SOCKET,
  DEFAULT_API_PORT,
  hasFields,
  isResponseOf,
  type CaptureRequest,
  type Endpoint,
  type RequestOf,
  type ResponseOf,
} from '../../node/api-protocol.js';
import { EXEC_FRAME, EXEC_PATH, EXEC_UPGRADE, ExecFrameReader } from '../../node/exec-stream.js';
import { UsageError } from '../errors.js';

/** Replies can hold a whole cluster state or a capture; anything far beyond that is not an agent talking. */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

export function agentSocketPath(): string {
  return process.env.IPIP_LAB_SOCKET ?? DEFAULT_AGENT_SOCKET;
}

export function agentApiPort(): number {
  const text = process.env.IPIP_LAB_API_PORT;
  if (text === undefined) return DEFAULT_API_PORT;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new UsageError(`IPIP_LAB_API_PORT=${text}: expected a TCP port 1..65535`);
  }
  return port;
}

/** The endpoints that take no request: called with the endpoint alone. */
type BodilessEndpoint = { [E in Endpoint]: RequestOf<E> extends void ? E : never }[Endpoint];

/** The agent's answer to a request it refused, e.g. 404 for a pod on another node. */
export class AgentError extends UsageError {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class AgentClient {
  constructor(
    /** Where the agent listens: a unix socket path, or the node's lab address. */
    private readonly target: { socketPath: string } | { host: string; port: number },
    /** Who answers, for messages: a node's name, or `this node` for the local socket. */
    readonly nodeName: string,
    /** Gives up on a request after this long (a stopped node's address may take seconds to fail). */
    private readonly timeoutMs?: number,
  ) {}

  /** Whether the agent is this node's own, over its unix socket: then it can read and write this machine's files. */
  get isLocal(): boolean {
    return 'socketPath' in this.target;
  }

  /** Calls an endpoint of the contract; rejects a reply that is not the endpoint's answer. */
  request<E extends BodilessEndpoint>(endpoint: E): Promise<ResponseOf<E>>;
  request<E extends Endpoint>(endpoint: E, request: RequestOf<E>): Promise<ResponseOf<E>>;
  async request<E extends Endpoint>(endpoint: E, request?: RequestOf<E>): Promise<ResponseOf<E>> {
    const [method, pattern] = endpoint.split(' ');
    const inPath = pattern.endsWith('/*');
    const path = inPath ? `${pattern.slice(0, -1)}${encodeURIComponent(request as string)}` : pattern;
    const value = await this.readJson(await this.open(method, path, inPath ? undefined : request));
    if (isResponseOf(endpoint, value)) return value;
    throw new UsageError(`the agent of ${this.nodeName} at ${this.where()} answered ${endpoint} with something else`);
  }

  /** Any method and path, for `ipip-lab api`: the reply is printed, not read. */
  raw(method: string, path: string, body?: unknown): Promise<unknown> {
    return this.open(method, path, body).then((response) => this.readJson(response));
  }

  /** Starts a capture; resolves with its stream once the capture is armed (the headers are in). */
  capture(request: CaptureRequest): Promise<IncomingMessage> {
    const [method, path] = CAPTURE_ENDPOINT.split(' ');
    return this.open(method, path, request);
  }

  /**
   * Runs `command` in a kernel-backed pod of this agent's node (exec-stream.ts): `input` goes to its standard input,
   * its output to `output` and `errors`; resolves with its exit code. `tty` asks for a pseudo-terminal.
   */
  exec(
    /** undefined: on the node itself. */
    pod: string | undefined,
    command: readonly string[],
    tty: boolean,
    streams: { input: NodeJS.ReadableStream; output: NodeJS.WritableStream; errors: NodeJS.WritableStream },
  ): Promise<number> {
    const query = new URLSearchParams([
      ...(pod === undefined ? [] : [['pod', pod]]),
      ...(tty ? [['tty', '1']] : []),
      ...command.map((arg) => ['arg', arg]),
    ]);
    return new Promise((resolve, reject) => {
      const request = httpRequest({
        ...this.target,
        method: 'POST',
        path: `${EXEC_PATH}?${query.toString()}`,
        headers: { connection: 'Upgrade', upgrade: EXEC_UPGRADE },
      });
      request.on('response', (response) => {
        // Not upgraded: the agent refused, and says why.
        this.refusal(response).then(reject, reject);
      });
      request.on('upgrade', (_response, socket, head) => {
        const frames = new ExecFrameReader();
        let exitCode: number | undefined;
        const take = (chunk: Buffer): void => {
          for (const frame of frames.push(chunk)) {
            if (frame.kind === EXEC_FRAME.stdout) streams.output.write(frame.data);
            else if (frame.kind === EXEC_FRAME.stderr) streams.errors.write(frame.data);
            else if (frame.kind === EXEC_FRAME.exit) exitCode = frame.data.readInt32BE(0);
          }
        };
        if (head.length > 0) take(head);
        socket.on('data', take);
        streams.input.pipe(socket);
        socket.on('error', () => {});
        socket.on('close', () => {
          streams.input.unpipe(socket);
          if (exitCode === undefined) {
            reject(new UsageError(`the agent of ${this.nodeName} closed the exec stream before the command ended`));
          } else resolve(exitCode);
        });
      });
      request.on('error', (error) =>
        reject(new UsageError(`cannot reach the agent of ${this.nodeName} at ${this.where()}: ${error.message}`)),
      );
      request.end();
    });
  }

  /** Resolves with the response once its headers are in; an error status rejects with the agent's message. */
  private open(method: string, path: string, body: unknown): Promise<IncomingMessage> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const options: RequestOptions = {
      ...this.target,
      method,
      path,
      headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
      ...(this.timeoutMs !== undefined && { signal: AbortSignal.timeout(this.timeoutMs) }),
    };
    return new Promise((resolve, reject) => {
      const request = httpRequest(options, (response) => {
        const status = response.statusCode ?? 0;
        if (status >= 200 && status < 300) return resolve(response);
        this.refusal(response).then(reject, reject);
      });
      request.on('error', (error) =>
        reject(
          new UsageError(
            `cannot reach the agent of ${this.nodeName} at ${this.where()}: ${error.message} (is the node running?)`,
          ),
        ),
      );
      request.end(payload);
    });
  }

  /** The agent's answer to a request it refused, as the error to reject with. */
  private async refusal(response: IncomingMessage): Promise<AgentError> {
    const status = response.statusCode ?? 0;
    const value = await this.readJson(response);
    const said = hasFields<{ error: unknown }>(value, ['error']) ? value.error : undefined;
    return new AgentError(status, `${this.nodeName}: ${typeof said === 'string' ? said : `HTTP ${status}`}`);
  }

  private readJson(response: IncomingMessage): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) response.destroy(new Error(`reply over ${MAX_RESPONSE_BYTES} bytes`));
        else chunks.push(chunk);
      });
      response.on('error', (error) =>
        reject(new UsageError(`the agent of ${this.nodeName} at ${this.where()}: ${error.message}`)),
      );
      response.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch {
          reject(new UsageError(`the agent of ${this.nodeName} at ${this.where()} sent a reply that is not JSON`));
        }
      });
    });
  }

  private where(): string {
    return 'socketPath' in this.target ? this.target.socketPath : `${this.target.host}:${this.target.port}`;
  }
}

/** The cluster node whose underlay address is on one of this machine's interfaces: the node container we are in. */
export function localNode(cluster: ClusterState): NodeState | undefined {
  const addresses = new Set(
    Object.values(os.networkInterfaces())
      .flatMap((infos) => infos ?? [])
      .filter((info) => info.family === 'IPv4')
      .map((info) => info.address),
  );
  return cluster.nodes.find((node) => addresses.has(node.ip.toString()));
}

/**
 * A client for `target`'s agent (default: this node's). `commandLine` is what the user typed, for the hint that
 * shows how to run it inside a node container.
 */
export function agentFor(
  cluster: ClusterState,
  target: NodeState | undefined,
  commandLine: string,
  timeoutMs?: number,
): AgentClient {
  const here = localNode(cluster);
  if (!here) {
    const example =
      target?.name ?? cluster.nodes.find((node) => node.role !== 'control-plane')?.name ?? cluster.nodes[0]?.name;
    throw new UsageError(
      `this command talks to the node agents on the lab network, which only the node containers are on: ` +
        `run it in one, e.g. docker compose exec ${example} ipip-lab ${commandLine}`,
    );
  }
  const node = target ?? here;
  return node.name === here.name
    ? new AgentClient({ socketPath: agentSocketPath() }, node.name, timeoutMs)
    : new AgentClient({ host: node.ip.toString(), port: agentApiPort() }, node.name, timeoutMs);
}

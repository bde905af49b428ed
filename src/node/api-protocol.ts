/**
 * The agent's control API as both ends see it: the endpoints, what each takes and answers, and the bounds and
 * defaults of every request field. The server (api.ts) enforces these bounds and the CLI offers them as its options'
 * ranges, so a limit is changed in one place and the two cannot drift apart.
 */
import type { SpeakerStatus } from './bgp/index.js';
import { createHash } from 'node:crypto';
import type { ClusterState, SpecDocument } from '../calico/index.js';
import type { Link, Route } from '../routing/index.js';
import type { CaptureStats } from './capture/index.js';
import type { DataplaneStats, InterfaceStats } from './counters.js';
import type { CurlReport } from './userspace/pod/curl.js';
import { MAX_SIZE as PING_MAX_SIZE, type PingReport } from './userspace/pod/ping.js';
import { MAX_HOPS as TRACEROUTE_MAX_HOPS, type TracerouteReport } from './userspace/pod/traceroute.js';

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
  /** Which dataplane runs the node: `kernel` pods are network namespaces that run real programs. */
  dataplane: 'kernel' | 'userspace';
  apiPort: number;
  startedAt: string;
  system: AgentSystemInfo;
  pods: { name: string; ip: string; hostInterface: string }[];
}

/**
 * felix's links with their live counters (null for lo, which the dataplane does not model), and the routes of the
 * dataplane's table in the order `ip route` lists them.
 */
export interface DataplaneView {
  links: (Link & { stats: InterfaceStats | null })[];
  routes: readonly Route[];
}

export interface NodeStatsResponse extends DataplaneStats {
  node: string;
  /** Packets the kernel refused to send from the raw socket. */
  underlaySendErrors: number;
}

/** Formatted like the real tool's output, plus the structured report the text was made from. */
export interface ToolResponse<Report> {
  text: string;
  report: Report;
}

/** `to`: a pod name anywhere in the cluster, or a dotted quad. `from`: a pod of the agent's own node. */
export interface PingRequest {
  from: string;
  to: string;
  count?: number;
  intervalMs?: number;
  size?: number;
  /** true sets DF, false never does, absent sets it while the path MTU allows (ping -M do|dont|want). */
  df?: boolean;
  ttl?: number;
  tos?: number;
  timeoutMs?: number;
}

export interface CurlRequest {
  from: string;
  url: string;
  timeoutMs?: number;
}

export interface TracerouteRequest {
  from: string;
  to: string;
  maxHops?: number;
  timeoutMs?: number;
}

export interface InjectRequest {
  interface: string;
  /** The IPv4 packet's bytes in base64. */
  packet: string;
}

/** What `POST /v1/reload` answers: the node now runs the spec with this digest, with these pods. */
export interface ReloadResult {
  node: string;
  specDigest: string;
  pods: string[];
}

export interface CaptureRequest {
  /** Interface names, or pods of the node standing for their cali interface; absent or with `any`: all. */
  interfaces?: string[];
  filter?: string;
  format?: 'pcapng' | 'pcap';
  count?: number;
  durationMs?: number;
  /** An absolute path the agent writes the file to itself; only for a client on the node's unix socket. */
  file?: string;
}

/** A running capture, as `GET /v1/captures[/ID]` shows it; its final stats are the `x-capture-stats` trailer. */
export interface CaptureInfo {
  id: string;
  /** The interfaces captured (pods resolved to their cali interface), or `any`. */
  interfaces: string[] | 'any';
  filter: string;
  format: 'pcapng' | 'pcap';
  startedAt: string;
  stats: CaptureStats;
}

/** A capture's id, which endpoints ending in `/*` take as their path's last segment. */
export type CaptureId = string;

/**
 * The endpoints that answer JSON, keyed as `METHOD PATH`. A request of `void` sends no body; an endpoint ending in
 * `/*` takes its request as the path's last segment instead of a body.
 */
export interface ApiEndpoints {
  'GET /v1/node': { request: void; response: NodeInfo };
  'GET /v1/cluster': { request: void; response: ClusterState };
  /** The spec the node was built from: a CLI rebuilds this node's exact cluster from it. */
  'GET /v1/spec': { request: void; response: SpecDocument };
  'GET /v1/dataplane': { request: void; response: DataplaneView };
  'GET /v1/stats': { request: void; response: NodeStatsResponse };
  /** The BGP speaker's sessions and the routes it chose: what `birdcl` and `calicoctl node status` show. */
  'GET /v1/bgp': { request: void; response: SpeakerStatus };
  'POST /v1/ping': { request: PingRequest; response: ToolResponse<PingReport> };
  'POST /v1/curl': { request: CurlRequest; response: ToolResponse<CurlReport> };
  'POST /v1/traceroute': { request: TracerouteRequest; response: ToolResponse<TracerouteReport> };
  'POST /v1/inject': { request: InjectRequest; response: { ok: true } };
  'POST /v1/reload': { request: void; response: ReloadResult };
  'GET /v1/captures': { request: void; response: CaptureInfo[] };
  'GET /v1/captures/*': { request: CaptureId; response: CaptureInfo };
  /** Answers once the capture's stream has taken every packet, with the same stats as its trailer. */
  'DELETE /v1/captures/*': { request: CaptureId; response: CaptureInfo };
}

export type Endpoint = keyof ApiEndpoints;
export type RequestOf<E extends Endpoint> = ApiEndpoints[E]['request'];
export type ResponseOf<E extends Endpoint> = ApiEndpoints[E]['response'];

/**
 * The one endpoint that answers with a stream, not JSON: the capture file as it is written, with CAPTURE_HEADER's
 * headers once the capture is armed (before any packet) and its stats in a trailer.
 */
export const CAPTURE_ENDPOINT = 'POST /v1/captures';

export const CAPTURE_HEADER = {
  id: 'x-capture-id',
  /** Comma-separated, as in CaptureInfo. */
  interfaces: 'x-capture-interfaces',
  /** A trailer: the CaptureStats JSON, sent after the last packet. */
  stats: 'x-capture-stats',
} as const;

/** Inclusive bounds of an integer request field. */
export interface Range {
  readonly min: number;
  readonly max: number;
}

type Limits<Request> = { readonly [Field in keyof Request]?: Range };

/** A tool's run holds its HTTP request open, so its waits are bounded. */
const TOOL_TIMEOUT_MS: Range = { min: 1, max: 30_000 };

export const PING_LIMITS = {
  /** iputils pings until stopped; a request cannot be, so it sends at most this many. */
  count: { min: 1, max: 100 },
  intervalMs: { min: 10, max: 10_000 },
  size: { min: 0, max: PING_MAX_SIZE },
  ttl: { min: 1, max: 255 },
  tos: { min: 0, max: 255 },
  timeoutMs: TOOL_TIMEOUT_MS,
} as const satisfies Limits<PingRequest>;

export const PING_DEFAULTS = { count: 4, intervalMs: 1000 } as const satisfies Partial<PingRequest>;

/** The longest a whole ping may take (count × interval, then the wait for replies). */
export const PING_RUN_MAX_MS = 120_000;

export const CURL_LIMITS = { timeoutMs: TOOL_TIMEOUT_MS } as const satisfies Limits<CurlRequest>;

/** traceroute's own `-m` range; its default (30) is the tool's, as a request without maxHops gets it. */
export const TRACEROUTE_LIMITS = {
  maxHops: { min: 1, max: TRACEROUTE_MAX_HOPS },
  timeoutMs: { min: 1, max: 5_000 },
} as const satisfies Limits<TracerouteRequest>;

export const CAPTURE_LIMITS = {
  count: { min: 1, max: 10_000_000 },
  durationMs: { min: 1, max: 60 * 60_000 },
} as const satisfies Limits<CaptureRequest>;

/** A capture asked for with no duration stops at the longest, so a forgotten one ends. */
export const CAPTURE_DEFAULTS = {
  durationMs: CAPTURE_LIMITS.durationMs.max,
  format: 'pcapng',
} as const satisfies Partial<CaptureRequest>;

/** Captures one agent runs at once; one more is refused with 503. */
export const MAX_RUNNING_CAPTURES = 8;

/**
 * Identifies a spec document by content, not path: agents that reloaded from one shared file report the same digest,
 * and an agent that read another copy (a lab whose nodes do not share the spec) reports a different one.
 */
export function specDigest(document: SpecDocument): string {
  const files = Object.keys(document.files)
    .sort()
    .map((name) => [name, document.files[name]]);
  return createHash('sha256')
    .update(JSON.stringify([document.text, files]))
    .digest('hex');
}

type Fields<T> = readonly (keyof T & string)[];

/** The fields every answer of an endpoint has, or `list` for an array. */
const RESPONSE_FIELDS: { readonly [E in Endpoint]: 'list' | Fields<ResponseOf<E>> } = {
  'GET /v1/node': ['name', 'startedAt', 'system'],
  'GET /v1/cluster': ['nodes', 'pods'],
  'GET /v1/spec': ['text', 'files'],
  'GET /v1/dataplane': ['links', 'routes'],
  'GET /v1/stats': ['node', 'drops', 'events', 'dropped', 'underlaySendErrors'],
  'GET /v1/bgp': ['routerId', 'as', 'neighbours', 'exported', 'routes'],
  'POST /v1/ping': ['text', 'report'],
  'POST /v1/curl': ['text', 'report'],
  'POST /v1/traceroute': ['text', 'report'],
  'POST /v1/inject': ['ok'],
  'POST /v1/reload': ['node', 'specDigest', 'pods'],
  'GET /v1/captures': 'list',
  'GET /v1/captures/*': ['id', 'stats'],
  'DELETE /v1/captures/*': ['id', 'stats'],
};

/** Whether a parsed JSON value is an object with these fields: a check of its shape, not of every value. */
export function hasFields<T>(value: unknown, fields: Fields<T>): value is T {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && fields.every((field) => field in value)
  );
}

/** A light check, where JSON from an agent becomes typed, that the answer is the one the endpoint gives. */
export function isResponseOf<E extends Endpoint>(endpoint: E, value: unknown): value is ResponseOf<E> {
  const fields = RESPONSE_FIELDS[endpoint];
  return fields === 'list' ? Array.isArray(value) : hasFields<ResponseOf<E>>(value, fields);
}

export const CAPTURE_STATS_FIELDS: Fields<CaptureStats> = ['captured', 'written', 'droppedRecords', 'bytesWritten'];

/**
 * One trace: every node's agent captures its interfaces, the sender's agent makes the probe with a real tool (ping,
 * curl, or bash's /dev/udp in a kernel pod), the captures stop, and the probe's packets are picked out and told hop
 * by hop. Where the probe ended short of its destination, the trace says where and why, from the tool's own report,
 * the route the last node looked up, an ICMP error that came back, or a drop counter that moved.
 */
import { PassThrough } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { randomBytes } from 'node:crypto';
import {
  nodeByName,
  podByIp,
  podByName,
  type ClusterState,
  type NodeState,
  type PodState,
} from '../../../calico/index.js';
import { CAPTURE_HEADER, type NodeStatsResponse } from '../../../node/api-protocol.js';
import { Ipv4Address } from '../../../routing/index.js';
import { ICMP_TYPE, IcmpView, Ipv4View, LINKTYPE, pcapng, type CapturedPacket } from '../../../wire/index.js';
import type { AgentClient } from '../../commands/agent-client.js';
import type { Hop, TraceRequest, TraceResult } from '../page-protocol.js';
import { findProbe, splitFlow, type Sighting } from './flow.js';
import { buildPath, nodeTables, routeLookup, type NodeTables, type PathEnd } from './hops.js';
import { walkPath } from './walk.js';

/** A request the tracer refuses, with the HTTP status that says why. */
export class TraceError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** What a trace needs of the lab: its cluster, and each node's agent and dataplane. */
export interface TraceLab {
  cluster: ClusterState;
  /** `timeoutMs`: how long its requests may take (a capture's stream lasts the whole trace). */
  agent(node: string, timeoutMs?: number): AgentClient;
  /** null: the node's agent does not answer. */
  dataplane(node: string): 'kernel' | 'userspace' | null;
}

export const TRACE_PORTS = { udp: 7, tcp: 8080 } as const;
/** ICMP echo's IP and ICMP headers: a ping of data size N is an IP packet of N + 28 bytes. */
const ICMP_OVERHEAD = 28;
const UDP_OVERHEAD = 28;
export const TRACE_SIZE = { min: ICMP_OVERHEAD, max: 1500 } as const;
/** How long the tool waits for an answer: long enough for any lab, short enough for a page that waits. */
const TOOL_TIMEOUT_MS = 2000;
/** What a request to an agent may take beyond the wait it asked for. */
const REQUEST_SLACK_MS = 5000;
/** After the tool is done, what is still on its way (a reply's last hop) lands in the captures. */
const SETTLE_MS = 250;
/** Bounds on a capture whose trace went wrong: it ends by itself. */
const CAPTURE_BOUNDS = { durationMs: 15_000, count: 2_000 } as const;

interface Sender {
  node: NodeState;
  pod?: PodState;
  /** Addresses the probe may leave from: the pod's, or the node's IP and tunnel address. */
  sources: number[];
}

function resolveSender(cluster: ClusterState, from: string): Sender {
  const pod = podByName(cluster, from);
  if (pod !== undefined) {
    const node = nodeByName(cluster, pod.node);
    if (node !== undefined) return { node, pod, sources: [pod.ip.value] };
  }
  const node = nodeByName(cluster, from);
  if (node !== undefined) {
    return { node, sources: [node.ip.value, ...(node.tunnelAddress ? [node.tunnelAddress.value] : [])] };
  }
  throw new TraceError(400, `from: ${JSON.stringify(from)} is neither a pod nor a node of the lab`);
}

function resolveDestination(cluster: ClusterState, to: string): { address: Ipv4Address; end: PathEnd } {
  const pod = podByName(cluster, to);
  if (pod !== undefined) return { address: pod.ip, end: { pod } };
  const node = nodeByName(cluster, to);
  if (node !== undefined) return { address: node.ip, end: { node: node.name } };
  const address = Ipv4Address.tryParse(to);
  if (address === undefined) {
    throw new TraceError(400, `to: ${JSON.stringify(to)} is neither a pod, a node, nor an IPv4 address`);
  }
  const holder = podByIp(cluster, address);
  if (holder !== undefined) return { address, end: { pod: holder } };
  const owner = cluster.nodes.find(
    (candidate) => candidate.ip.equals(address) || candidate.tunnelAddress?.equals(address) === true,
  );
  return { address, end: owner === undefined ? {} : { node: owner.name } };
}

export function checkTraceRequest(body: unknown): TraceRequest {
  if (typeof body !== 'object' || body === null) throw new TraceError(400, 'expected a JSON object');
  const { from, to, protocol, size, df } = body as Record<string, unknown>;
  if (typeof from !== 'string' || from === '') throw new TraceError(400, 'from: required, a pod or node name');
  if (typeof to !== 'string' || to === '') throw new TraceError(400, 'to: required, a pod, node or IPv4 address');
  if (protocol !== 'icmp' && protocol !== 'udp' && protocol !== 'tcp') {
    throw new TraceError(400, `protocol: expected icmp, udp or tcp, got ${JSON.stringify(protocol)}`);
  }
  if (size !== undefined && size !== null) {
    if (typeof size !== 'number' || !Number.isInteger(size) || size < TRACE_SIZE.min || size > TRACE_SIZE.max) {
      throw new TraceError(400, `size: expected an IP packet length in ${TRACE_SIZE.min}..${TRACE_SIZE.max} bytes`);
    }
    if (protocol === 'tcp') throw new TraceError(400, 'size: a TCP probe is its SYN, whose size the kernel chooses');
  }
  if (typeof df !== 'boolean') throw new TraceError(400, 'df: expected true or false');
  return { from, to, protocol, df, ...(typeof size === 'number' && { size }) };
}

/** A running capture on one node: its bytes so far, and how to end it. */
interface NodeCapture {
  node: string;
  id: string;
  done: Promise<Buffer>;
}

/** Never rejects: a stream cut short still holds the packets it delivered (the pcapng reader takes whole blocks). */
function collect(stream: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', () => resolve(Buffer.concat(chunks)));
  });
}

async function startCaptures(lab: TraceLab, nodes: readonly string[], filter: string): Promise<NodeCapture[]> {
  const started = await Promise.allSettled(
    nodes.map(async (node): Promise<NodeCapture> => {
      const stream = await lab
        .agent(node, CAPTURE_BOUNDS.durationMs + REQUEST_SLACK_MS)
        .capture({ filter, format: 'pcapng', ...CAPTURE_BOUNDS });
      const id = stream.headers[CAPTURE_HEADER.id];
      return { node, id: typeof id === 'string' ? id : '', done: collect(stream) };
    }),
  );
  return started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
}

async function stopCaptures(lab: TraceLab, captures: readonly NodeCapture[]): Promise<Sighting[]> {
  const files = await Promise.all(
    captures.map(async (capture) => {
      await lab
        .agent(capture.node)
        .request('DELETE /v1/captures/*', capture.id)
        .catch(() => undefined);
      return { node: capture.node, bytes: await capture.done };
    }),
  );
  return files.flatMap(({ node, bytes }) => {
    const decoded = pcapng.decode(bytes);
    if (!decoded.ok) return [];
    const { interfaces, packets } = decoded.value;
    return packets.map((packet) => ({
      node,
      interfaceName: interfaces[packet.interfaceId]?.name ?? `if${packet.interfaceId}`,
      direction: packet.direction === 'outbound' ? ('tx' as const) : ('rx' as const),
      timestampNs: packet.timestampNs,
      data: packet.data,
    }));
  });
}

async function statsOf(lab: TraceLab, nodes: readonly string[]): Promise<Map<string, NodeStatsResponse>> {
  const answers = await Promise.allSettled(nodes.map((node) => lab.agent(node).request('GET /v1/stats')));
  return new Map(
    answers.flatMap((answer, index) => (answer.status === 'fulfilled' ? [[nodes[index], answer.value] as const] : [])),
  );
}

/** Runs a command to its end through an agent's exec stream, with no input. */
async function execText(agent: AgentClient, pod: string | undefined, command: string[]): Promise<string> {
  const output = new PassThrough();
  const chunks: Buffer[] = [];
  output.on('data', (chunk: Buffer) => chunks.push(chunk));
  const input = new PassThrough();
  input.end();
  const code = await agent.exec(pod, command, false, { input, output, errors: output });
  return `${Buffer.concat(chunks).toString('utf8')}${code === 0 ? '' : `[exit ${code}]\n`}`;
}

/** The tool's terminal output, and what its report says of a refusal before anything was sent. */
interface ToolRun {
  text: string;
  localError?: string;
}

const shellQuote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;

async function sendProbe(
  lab: TraceLab,
  sender: Sender,
  request: TraceRequest,
  destination: Ipv4Address,
  marker: string,
): Promise<ToolRun> {
  const agent = lab.agent(sender.node.name, TOOL_TIMEOUT_MS + REQUEST_SLACK_MS);
  const kernel = lab.dataplane(sender.node.name) === 'kernel';
  const to = destination.toString();
  if (request.protocol === 'icmp' && sender.pod !== undefined) {
    const { text, report } = await agent.request('POST /v1/ping', {
      from: sender.pod.name,
      to,
      count: 1,
      timeoutMs: TOOL_TIMEOUT_MS,
      df: request.df,
      ...(request.size !== undefined && { size: request.size - ICMP_OVERHEAD }),
    });
    const local = report.results.find((result) => result.kind === 'local-error');
    return { text, ...(local !== undefined && { localError: local.error }) };
  }
  if (request.protocol === 'tcp' && sender.pod !== undefined) {
    const { text } = await agent.request('POST /v1/curl', {
      from: sender.pod.name,
      url: `http://${to}:${TRACE_PORTS.tcp}/`,
      timeoutMs: TOOL_TIMEOUT_MS,
    });
    return { text };
  }
  if (!kernel) {
    throw new TraceError(
      400,
      `${sender.node.name} runs the userspace dataplane: its pods trace ICMP and TCP; UDP probes and probes from the node itself need kernel-backed nodes (README, "Two dataplanes")`,
    );
  }
  const seconds = String(TOOL_TIMEOUT_MS / 1000);
  if (request.protocol === 'icmp') {
    const size = request.size === undefined ? [] : ['-s', String(request.size - ICMP_OVERHEAD)];
    const text = await execText(agent, undefined, [
      'ping',
      '-c',
      '1',
      '-W',
      seconds,
      ...size,
      '-M',
      request.df ? 'do' : 'dont',
      to,
    ]);
    const local = /local error: (.+)/.exec(text);
    return { text, ...(local !== null && { localError: local[1] }) };
  }
  if (request.protocol === 'tcp') {
    return {
      text: await execText(agent, undefined, ['curl', '-sS', '-m', seconds, `http://${to}:${TRACE_PORTS.tcp}/`]),
    };
  }
  // bash's /dev/udp: a connected UDP socket that waits for the echo, so the answer finds it still open.
  const payload = marker.padEnd(Math.max(marker.length, (request.size ?? 64) - UDP_OVERHEAD), '.');
  const script =
    `exec 3<>/dev/udp/${to}/${TRACE_PORTS.udp} && printf %s ${shellQuote(payload)} >&3 && ` +
    `timeout ${seconds} head -c ${payload.length} <&3; echo`;
  return { text: await execText(agent, sender.pod?.name, ['bash', '-c', script]) };
}

function icmpErrorOf(
  sightings: readonly Sighting[],
): { sighting: Sighting; from: number; type: number; code: number; mtu: number } | undefined {
  for (const sighting of sightings) {
    const outer = Ipv4View.check(sighting.data);
    if (!outer.ok) continue;
    let ip = outer.value;
    if (ip.protocol === 4) {
      const inner = Ipv4View.check(sighting.data, ip.headerLength);
      if (!inner.ok) continue;
      ip = inner.value;
    }
    if (ip.protocol !== 1) continue;
    const start = ip.offset + ip.headerLength;
    const icmp = new IcmpView(sighting.data, start, ip.offset + ip.totalLength);
    if (icmp.type === ICMP_TYPE.DESTINATION_UNREACHABLE || icmp.type === ICMP_TYPE.TIME_EXCEEDED) {
      return { sighting, from: ip.src, type: icmp.type, code: icmp.code, mtu: icmp.nextHopMtu };
    }
  }
  return undefined;
}

function errorExplanation(type: number, code: number, mtu: number): string {
  if (type === ICMP_TYPE.TIME_EXCEEDED) return 'its TTL ran out (ICMP 11/0, time exceeded)';
  if (code === 4) {
    return `it is larger than the next hop's MTU ${mtu} and DF is set: the node answered ICMP 3/4, fragmentation needed, MTU ${mtu}`;
  }
  return `the node answered ICMP 3/${code} (destination unreachable)`;
}

/** Counters that moved on some node between the stats taken before and after the probe. */
function movedDrops(
  before: Map<string, NodeStatsResponse>,
  after: Map<string, NodeStatsResponse>,
): { node: string; reason: string; count: number }[] {
  return [...after].flatMap(([node, stats]) => {
    const earlier = before.get(node);
    if (earlier === undefined) return [];
    return Object.entries(stats.drops)
      .map(([reason, count]) => ({
        node,
        reason,
        count: count - (earlier.drops[reason as keyof typeof earlier.drops] ?? 0),
      }))
      .filter(({ count }) => count > 0);
  });
}

interface Verdict {
  outcome: TraceResult['outcome'];
  summary: string;
  drop?: Hop;
}

function verdict(
  forward: Hop[],
  reply: Hop[],
  replySightings: readonly Sighting[],
  tool: ToolRun,
  sender: Sender,
  tables: ReadonlyMap<string, NodeTables>,
  lastForward: Sighting | undefined,
  destination: Ipv4Address,
  drops: { node: string; reason: string; count: number }[],
): Verdict {
  if (tool.localError !== undefined) {
    const where = sender.pod ? `${sender.pod.name}'s eth0` : `${sender.node.name}'s route`;
    return {
      outcome: 'refused by the sender',
      summary: `Never sent: ${tool.localError}`,
      drop: {
        kind: 'drop',
        node: sender.node.name,
        interface: sender.pod ? 'eth0 (in the pod)' : '',
        title: `The sender's own kernel refused it at ${where}: ${tool.localError}`,
        note: sender.pod
          ? 'Calico gives the pod’s eth0 the tunnel’s MTU (1480), so a packet the tunnel could not carry is refused where it is made, with EMSGSIZE, and never reaches the wire. ping says "local error: message too long".'
          : 'The route goes through tunl0, whose MTU is 1480: a larger packet with DF is refused by the node’s own stack with EMSGSIZE.',
      },
    };
  }
  const answered = reply.some((hop) => hop.kind === 'arrival') && icmpErrorOf(replySightings) === undefined;
  const arrived = forward.some((hop) => hop.kind === 'arrival');
  if (answered)
    return {
      outcome: 'answered',
      summary: `Delivered and answered: ${forward.length} hops there, ${reply.length} back`,
    };
  const error = icmpErrorOf(replySightings);
  if (error !== undefined) {
    // The node that answered: its node IP or its tunnel address is the error's source.
    const node =
      [...tables.values()].find((candidate) => candidate.ip === error.from || candidate.tunnelAddress === error.from)
        ?.name ??
      lastForward?.node ??
      error.sighting.node;
    const explanation = errorExplanation(error.type, error.code, error.mtu);
    return {
      outcome: 'dropped',
      summary: `Dropped at ${node}: ${explanation}`,
      drop: {
        kind: 'drop',
        node,
        interface: '',
        title: `Dropped at ${node}: ${explanation}`,
        note: 'The ICMP error it sent back is the reply path below.',
      },
    };
  }
  if (arrived) return { outcome: 'delivered', summary: 'Delivered; no answer came back' };
  const counted = drops[0];
  if (lastForward !== undefined) {
    const node = tables.get(lastForward.node);
    const { route, local, ...lookup } =
      node === undefined ? { route: undefined, local: false } : routeLookup(node, destination.value);
    if (route?.kind === 'blackhole' && !local && 'lines' in lookup) {
      return {
        outcome: 'dropped',
        summary: `Dropped at ${lastForward.node}: blackhole route ${String(route.destination)}`,
        drop: {
          kind: 'drop',
          node: lastForward.node,
          interface: '',
          title: `Dropped at ${lastForward.node}: ${lookup.lines[lookup.matched ?? 0]}`,
          note: `${destination.toString()} is in ${lastForward.node}'s own block, but no pod holds it: Calico's blackhole route for the block discards it silently (no ICMP), so the sender only sees a timeout.`,
          route: lookup,
        },
      };
    }
  }
  if (counted !== undefined) {
    return {
      outcome: 'dropped',
      summary: `Dropped at ${counted.node}: ${counted.reason}`,
      drop: {
        kind: 'drop',
        node: counted.node,
        interface: '',
        title: `Dropped at ${counted.node}: ${counted.reason}`,
        note: `The node's drop counter "${counted.reason}" went up by ${counted.count} (ipip-lab stats).`,
      },
    };
  }
  const where =
    lastForward === undefined
      ? `before any tap saw it (from ${sender.node.name})`
      : `after ${lastForward.node}'s ${lastForward.interfaceName}`;
  return {
    outcome: 'dropped',
    summary: `Lost ${where}`,
    drop: {
      kind: 'drop',
      node: lastForward?.node ?? sender.node.name,
      interface: '',
      title: `Lost ${where}`,
      note: 'No tap saw it again and no drop counter moved.',
    },
  };
}

function tracePcapng(sightings: readonly Sighting[]): Buffer {
  const names = [...new Set(sightings.map((sighting) => `${sighting.node} ${sighting.interfaceName}`))];
  const packets: CapturedPacket[] = sightings.map((sighting) => ({
    interfaceId: names.indexOf(`${sighting.node} ${sighting.interfaceName}`),
    timestampNs: sighting.timestampNs,
    data: sighting.data,
    direction: sighting.direction === 'tx' ? 'outbound' : 'inbound',
  }));
  return pcapng.encode({ interfaces: names.map((name) => ({ linkType: LINKTYPE.RAW, name })), packets });
}

export interface FinishedTrace {
  result: Omit<TraceResult, 'id' | 'pcapng'>;
  pcapng: Buffer;
}

export async function runTrace(lab: TraceLab, request: TraceRequest): Promise<FinishedTrace> {
  const { cluster } = lab;
  const sender = resolveSender(cluster, request.from);
  if (lab.dataplane(sender.node.name) === null)
    throw new TraceError(503, `${sender.node.name}'s agent does not answer`);
  const { address: destination, end } = resolveDestination(cluster, request.to);
  const nodes = cluster.nodes.map((node) => node.name).filter((node) => lab.dataplane(node) !== null);
  const hosts = [...sender.sources.map((source) => Ipv4Address.fromUint32(source)), destination].map(String);
  const filter = `host ${hosts.join(' or ')} or inner host ${hosts.join(' or ')}`;
  const marker = `ipip-lab trace ${randomBytes(4).toString('hex')}`;

  const before = await statsOf(lab, nodes);
  const captures = await startCaptures(lab, nodes, filter);
  let tool: ToolRun;
  try {
    tool = await sendProbe(lab, sender, request, destination, marker);
  } finally {
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  }
  const sightings = await stopCaptures(lab, captures);
  const after = await statsOf(lab, nodes);

  const tables = nodeTables(cluster);
  const nodeByIp = new Map(cluster.nodes.map((node) => [node.ip.value, node.name]));
  const clusterNodes = new Set(nodeByIp.keys());
  const ordered = [...sightings].sort((a, b) =>
    a.timestampNs < b.timestampNs ? -1 : a.timestampNs > b.timestampNs ? 1 : 0,
  );
  const port = request.protocol === 'icmp' ? 0 : TRACE_PORTS[request.protocol];
  const key = findProbe(ordered, request.protocol, sender.sources, destination.value, port);
  const flow = key === undefined ? { forward: [], reply: [] } : splitFlow(key, ordered);
  const forwardSightings = walkPath(flow.forward, nodeByIp, sender.node.name);
  const replySightings = walkPath(flow.reply, nodeByIp);
  const firstNs = ordered[0]?.timestampNs ?? 0n;
  const forward = buildPath(forwardSightings, tables, clusterNodes, firstNs, 'forward', end);
  const replyEnd: PathEnd = sender.pod ? { pod: sender.pod } : { node: sender.node.name };
  const reply = buildPath(replySightings, tables, clusterNodes, firstNs, 'reply', replyEnd);
  const judged = verdict(
    forward,
    reply,
    replySightings,
    tool,
    sender,
    tables,
    forwardSightings.at(-1),
    destination,
    movedDrops(before, after),
  );
  if (judged.drop !== undefined) forward.push(judged.drop);
  return {
    result: { request, outcome: judged.outcome, summary: judged.summary, forward, reply, toolOutput: tool.text },
    pcapng: tracePcapng([...forwardSightings, ...replySightings]),
  };
}

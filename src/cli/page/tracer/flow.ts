/**
 * Which of the packets the nodes' taps saw belong to one probe. A probe is known by its pod-level header (the inner
 * one of a tunnelled packet): addresses, protocol, and the ICMP echo id and sequence or the TCP/UDP ports of its first
 * packet. Its reply swaps them; an ICMP error belongs to it when the packet it quotes is the probe.
 */
import { ICMP_TYPE, IP_PROTOCOL, IcmpView, Ipv4View, TCP_FLAG, TcpView, UdpView } from '../../../wire/index.js';
import type { TraceProtocol } from '../page-protocol.js';

/** One packet as one node's tap saw it. */
export interface Sighting {
  node: string;
  interfaceName: string;
  direction: 'rx' | 'tx';
  timestampNs: bigint;
  data: Buffer;
}

/** The pod-level header of a packet: the inner one when it is tunnelled. */
interface Innermost {
  ip: Ipv4View;
  /** Where the transport header starts, and where the IP packet ends. */
  start: number;
  end: number;
}

function innermost(packet: Buffer): Innermost | undefined {
  const outer = Ipv4View.check(packet);
  if (!outer.ok) return undefined;
  let ip = outer.value;
  if (ip.protocol === IP_PROTOCOL.IPIP && !ip.isFragment) {
    const inner = Ipv4View.check(packet, ip.headerLength);
    if (!inner.ok) return undefined;
    ip = inner.value;
  }
  return { ip, start: ip.offset + ip.headerLength, end: ip.offset + ip.totalLength };
}

const PROTOCOL_NUMBER: Record<TraceProtocol, number> = {
  icmp: IP_PROTOCOL.ICMP,
  udp: IP_PROTOCOL.UDP,
  tcp: IP_PROTOCOL.TCP,
};

/** The probe's first packet: what the rest is matched against. */
export interface ProbeKey {
  protocol: TraceProtocol;
  src: number;
  dst: number;
  /** The IP ID, which later fragments of the first packet share. */
  ipId: number;
  /** ICMP: identifier and sequence; UDP and TCP: source and destination port. */
  first: number;
  second: number;
}

function transportPair(protocol: number, packet: Buffer, start: number, end: number): [number, number] | undefined {
  if (end - start < 8) return undefined;
  if (protocol === IP_PROTOCOL.ICMP) {
    const icmp = new IcmpView(packet, start, end);
    return [icmp.identifier, icmp.sequence];
  }
  if (protocol === IP_PROTOCOL.UDP) {
    const udp = new UdpView(packet, start, end);
    return [udp.srcPort, udp.dstPort];
  }
  const tcp = new TcpView(packet, start, end);
  return [tcp.srcPort, tcp.dstPort];
}

/** Is this the opening packet of a probe: an echo request, a datagram to `port`, a SYN to `port`? */
function opensProbe(protocol: TraceProtocol, packet: Buffer, start: number, end: number, port: number): boolean {
  if (end - start < 8) return false;
  if (protocol === 'icmp') return new IcmpView(packet, start, end).type === ICMP_TYPE.ECHO_REQUEST;
  if (protocol === 'udp') return new UdpView(packet, start, end).dstPort === port;
  if (end - start < 20) return false;
  const tcp = new TcpView(packet, start, end);
  return tcp.dstPort === port && (tcp.flags & (TCP_FLAG.SYN | TCP_FLAG.ACK)) === TCP_FLAG.SYN;
}

/**
 * The first packet, in time order, from one of `sources` to `dst` that opens a probe of `protocol` (to `port` for UDP
 * and TCP). A node's own packets leave from its node IP or its tunnel address, so a node has two sources.
 */
export function findProbe(
  sightings: readonly Sighting[],
  protocol: TraceProtocol,
  sources: readonly number[],
  dst: number,
  port: number,
): ProbeKey | undefined {
  for (const sighting of sightings) {
    const packet = innermost(sighting.data);
    if (packet === undefined) continue;
    const { ip, start, end } = packet;
    if (ip.protocol !== PROTOCOL_NUMBER[protocol] || ip.dst !== dst || !sources.includes(ip.src)) continue;
    if (ip.fragmentOffset !== 0 || !opensProbe(protocol, sighting.data, start, end, port)) continue;
    const pair = transportPair(ip.protocol, sighting.data, start, end);
    if (pair === undefined) continue;
    return { protocol, src: ip.src, dst, ipId: ip.identification, first: pair[0], second: pair[1] };
  }
  return undefined;
}

export type FlowPart = 'forward' | 'reply' | undefined;

/** Does the packet quoted by an ICMP error (its IP header and first 8 bytes) belong to the probe? */
function quotesProbe(key: ProbeKey, packet: Buffer, start: number, end: number): boolean {
  const quoted = start + 8;
  if (end - quoted < 20) return false;
  const ip = new Ipv4View(packet, quoted);
  if (ip.version !== 4 || ip.src !== key.src || ip.dst !== key.dst || ip.protocol !== PROTOCOL_NUMBER[key.protocol]) {
    return false;
  }
  return ip.identification === key.ipId;
}

/** Whether a packet is the probe on its way (`forward`), its answer or an ICMP error about it (`reply`), or neither. */
export function flowPart(key: ProbeKey, data: Buffer): FlowPart {
  const packet = innermost(data);
  if (packet === undefined) return undefined;
  const { ip, start, end } = packet;
  const protocol = PROTOCOL_NUMBER[key.protocol];
  if (ip.protocol === IP_PROTOCOL.ICMP && ip.dst === key.src && end - start >= 8) {
    const type = new IcmpView(data, start, end).type;
    const isError = type === ICMP_TYPE.DESTINATION_UNREACHABLE || type === ICMP_TYPE.TIME_EXCEEDED;
    if (isError && quotesProbe(key, data, start, end)) return 'reply';
  }
  if (ip.protocol !== protocol) return undefined;
  const forward = ip.src === key.src && ip.dst === key.dst;
  const backward = ip.src === key.dst && ip.dst === key.src;
  if (!forward && !backward) return undefined;
  // Later fragments carry no transport header: the IP ID ties them to the first.
  if (ip.fragmentOffset !== 0) return forward && ip.identification === key.ipId ? 'forward' : undefined;
  const pair = transportPair(ip.protocol, data, start, end);
  if (pair === undefined) return undefined;
  if (key.protocol === 'icmp') {
    const type = new IcmpView(data, start, end).type;
    if (pair[0] !== key.first || pair[1] !== key.second) return undefined;
    if (forward && type === ICMP_TYPE.ECHO_REQUEST) return 'forward';
    if (backward && type === ICMP_TYPE.ECHO_REPLY) return 'reply';
    return undefined;
  }
  if (forward && pair[0] === key.first && pair[1] === key.second) {
    // A TCP probe is its SYN: the handshake's later segments are the connection, not the trace.
    return key.protocol === 'udp' || ip.identification === key.ipId ? 'forward' : undefined;
  }
  if (backward && pair[0] === key.second && pair[1] === key.first) {
    if (key.protocol === 'udp') return 'reply';
    const flags = new TcpView(data, start, end).flags;
    return (flags & (TCP_FLAG.SYN | TCP_FLAG.ACK)) === (TCP_FLAG.SYN | TCP_FLAG.ACK) || (flags & TCP_FLAG.RST) !== 0
      ? 'reply'
      : undefined;
  }
  return undefined;
}

/** The probe's packets in time order, split into its way there and the way back. */
export function splitFlow(key: ProbeKey, sightings: readonly Sighting[]): { forward: Sighting[]; reply: Sighting[] } {
  const forward: Sighting[] = [];
  const reply: Sighting[] = [];
  for (const sighting of sightings) {
    const part = flowPart(key, sighting.data);
    if (part === 'forward') forward.push(sighting);
    else if (part === 'reply' && reply.length < 16) reply.push(sighting);
  }
  return { forward, reply };
}

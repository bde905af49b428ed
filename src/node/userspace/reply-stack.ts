/**
 * The few packets a Linux host's own IP stack writes, built the way Linux builds them, for the node's stack and every
 * pod's alike: ICMP errors (`icmp_send()`), echo replies (`icmp_reply()`), and the source address the stack fills in
 * for a socket bound to no address. Bytes only: the callers decide when to answer and route what these return.
 */
import {
  IcmpView,
  TIME_EXCEEDED_CODE,
  UNREACHABLE_CODE,
  destinationUnreachable,
  fragmentationNeeded,
  icmp,
  icmpErrorTos,
  timeExceeded,
  type ErrorOptions,
  type IcmpMessage,
} from '../../wire/icmp.js';
import { IP_PROTOCOL, Ipv4View, dscpOf, ecnOf, ipv4 } from '../../wire/ipv4.js';
import { LINUX_DEFAULT_TTL } from '../../wire/linux-defaults.js';
import { TcpView } from '../../wire/tcp.js';
import { UdpView } from '../../wire/udp.js';

type EchoMessage = Extract<IcmpMessage, { identifier: number }>;

/** An ICMP error a host's own stack sends; the node's and the pods' stacks send the same few. */
export type NodeIcmpError =
  | { readonly kind: 'time-exceeded'; readonly code: number }
  | { readonly kind: 'unreachable'; readonly code: number }
  | { readonly kind: 'fragmentation-needed'; readonly nextHopMtu: number };

export const TTL_EXCEEDED: NodeIcmpError = Object.freeze({ kind: 'time-exceeded', code: TIME_EXCEEDED_CODE.TTL });
export const REASSEMBLY_TIMEOUT: NodeIcmpError = Object.freeze({
  kind: 'time-exceeded',
  code: TIME_EXCEEDED_CODE.REASSEMBLY,
});
export const NET_UNREACHABLE: NodeIcmpError = Object.freeze({ kind: 'unreachable', code: UNREACHABLE_CODE.NET });
export const PROTOCOL_UNREACHABLE: NodeIcmpError = Object.freeze({
  kind: 'unreachable',
  code: UNREACHABLE_CODE.PROTOCOL,
});
export const PORT_UNREACHABLE: NodeIcmpError = Object.freeze({ kind: 'unreachable', code: UNREACHABLE_CODE.PORT });

// Linux quotes as much of the offending packet as fits a 576-byte error; its errors never carry IP options.
const LINUX_QUOTE: ErrorOptions = Object.freeze({ quote: 'linux' });

/** `icmp_pointers[type].error` in net/ipv4/icmp.c, for the types up to NR_ICMP_TYPES (18). */
const ICMP_ERROR_TYPES: ReadonlySet<number> = new Set([3, 4, 5, 11, 12]);
const NR_ICMP_TYPES = 18;

// One view reused for every offending ICMP message: nothing runs between attaching it and reading its type.
const offendingIcmp = new IcmpView(Buffer.alloc(0));

/**
 * `icmp_send()`'s refusals that depend on the offending packet alone: nothing about a fragment other than the first,
 * nothing about an ICMP error, and (the kernel's own addition) nothing about an ICMP type it does not know. Like the
 * kernel, it reads only the type byte, so a message too short for a whole header is still judged by it. Sources that
 * are not unicast never get this far: a node's input route drops them as martians, a pod checks `isUnicastHost`.
 */
export function mayAnswerWithError(offending: Ipv4View): boolean {
  if (offending.fragmentOffset !== 0) return false;
  if (offending.protocol !== IP_PROTOCOL.ICMP) return true;
  const message = offendingIcmp.attach(
    offending.buffer,
    offending.offset + offending.headerLength,
    offending.offset + offending.totalLength,
  );
  if (message.byteLength === 0) return false;
  const type = message.type;
  return type <= NR_ICMP_TYPES && !ICMP_ERROR_TYPES.has(type);
}

function errorMessage(offending: Buffer, error: NodeIcmpError): Buffer {
  switch (error.kind) {
    case 'time-exceeded':
      return timeExceeded(offending, error.code, LINUX_QUOTE);
    case 'unreachable':
      return destinationUnreachable(offending, error.code, LINUX_QUOTE);
    case 'fragmentation-needed':
      return fragmentationNeeded(offending, error.nextHopMtu, LINUX_QUOTE);
  }
}

/**
 * The IP packet carrying `error` about `offending` (its exact bytes, as received) back to its sender: TTL 64, TOS
 * with precedence "internetwork control" (0xc0 for a TOS 0 packet), DF clear, the given source and ID.
 */
export function icmpErrorPacket(offending: Ipv4View, error: NodeIcmpError, source: number, id: number): Buffer {
  const tos = icmpErrorTos(offending.tos);
  return ipv4.encode({
    dscp: dscpOf(tos),
    ecn: ecnOf(tos),
    identification: id,
    ttl: LINUX_DEFAULT_TTL,
    protocol: IP_PROTOCOL.ICMP,
    src: source,
    dst: offending.src,
    payload: errorMessage(offending.packet, error),
  });
}

/** The answer to an echo request addressed to the host: same TOS as the request (ECN included), DF clear, TTL 64. */
export function echoReply(request: Ipv4View, echo: EchoMessage, id: number): Buffer {
  return ipv4.encode({
    dscp: request.dscp,
    ecn: request.ecn,
    identification: id,
    ttl: LINUX_DEFAULT_TTL,
    protocol: IP_PROTOCOL.ICMP,
    src: request.dst,
    dst: request.src,
    payload: icmp.encode({ kind: 'echo-reply', identifier: echo.identifier, sequence: echo.sequence, data: echo.data }),
  });
}

// Reused like `offendingIcmp`: setSource runs no callback while it holds them.
const udpSegment = new UdpView(Buffer.alloc(0));
const tcpSegment = new TcpView(Buffer.alloc(0));

/**
 * Gives a packet the source address the stack chose for it, keeping the IP checksum and, in the segment that holds
 * it, the UDP/TCP checksum (whose pseudo-header covers the source) valid. A UDP checksum of 0 means "none" and stays.
 */
export function setSource(packet: Ipv4View, source: number): void {
  const before = packet.src;
  packet.src = source;
  packet.fillChecksum();
  if (packet.fragmentOffset !== 0) return;
  const start = packet.offset + packet.headerLength;
  const end = packet.offset + packet.totalLength;
  const segment =
    packet.protocol === IP_PROTOCOL.UDP
      ? udpSegment.attach(packet.buffer, start, end)
      : packet.protocol === IP_PROTOCOL.TCP
        ? tcpSegment.attach(packet.buffer, start, end)
        : undefined;
  if (segment === undefined || segment.validate() !== undefined) return;
  segment.updateChecksumForAddress(before, source);
}

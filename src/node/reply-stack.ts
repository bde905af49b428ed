/**
 * The few packets a node's own IP stack writes, built the way Linux builds them: ICMP errors (`icmp_send()`), echo
 * replies (`icmp_reply()`), and the source address the stack fills in for a socket bound to no address. Bytes only:
 * the dataplane decides when to answer and routes what these return.
 */
import { updateChecksum } from '../wire/checksum.js';
import {
  TIME_EXCEEDED_CODE,
  UNREACHABLE_CODE,
  destinationUnreachable,
  fragmentationNeeded,
  icmp,
  icmpErrorTos,
  timeExceeded,
  type ErrorOptions,
  type IcmpMessage,
} from '../wire/icmp.js';

type EchoMessage = Extract<IcmpMessage, { identifier: number }>;
import { IP_PROTOCOL, Ipv4View, ipv4 } from '../wire/ipv4.js';

/** `net.ipv4.ip_default_ttl`, the TTL of everything the node itself sends (vectors rules 2, 12, 14). */
export const NODE_TTL = 64;

export type NodeIcmpError =
  | { readonly kind: 'time-exceeded' }
  | { readonly kind: 'unreachable'; readonly code: number }
  | { readonly kind: 'fragmentation-needed'; readonly nextHopMtu: number };

export const TTL_EXCEEDED: NodeIcmpError = Object.freeze({ kind: 'time-exceeded' });
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

/**
 * `icmp_send()`'s refusals that depend on the offending packet alone: nothing about a fragment other than the first,
 * nothing about an ICMP error, and (the kernel's own addition) nothing about an ICMP type it does not know. Sources
 * that are not unicast never get this far: the input route already dropped them as martians.
 */
export function mayAnswerWithError(offending: Ipv4View): boolean {
  if (offending.fragmentOffset !== 0) return false;
  if (offending.protocol !== IP_PROTOCOL.ICMP) return true;
  const typeAt = offending.offset + offending.headerLength;
  if (typeAt >= offending.offset + offending.totalLength) return false;
  const type = offending.buffer[typeAt];
  return type <= NR_ICMP_TYPES && !ICMP_ERROR_TYPES.has(type);
}

function errorMessage(offending: Buffer, error: NodeIcmpError): Buffer {
  switch (error.kind) {
    case 'time-exceeded':
      return timeExceeded(offending, TIME_EXCEEDED_CODE.TTL, LINUX_QUOTE);
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
  const tos = icmpErrorTos((offending.dscp << 2) | offending.ecn);
  return ipv4.encode({
    dscp: tos >> 2,
    ecn: tos & 3,
    identification: id,
    ttl: NODE_TTL,
    protocol: IP_PROTOCOL.ICMP,
    src: source,
    dst: offending.src,
    payload: errorMessage(offending.packet, error),
  });
}

/** The answer to an echo request addressed to the node: same TOS as the request (ECN included), DF clear, TTL 64. */
export function echoReply(request: Ipv4View, echo: EchoMessage, id: number): Buffer {
  return ipv4.encode({
    dscp: request.dscp,
    ecn: request.ecn,
    identification: id,
    ttl: NODE_TTL,
    protocol: IP_PROTOCOL.ICMP,
    src: request.dst,
    dst: request.src,
    payload: icmp.encode({ kind: 'echo-reply', identifier: echo.identifier, sequence: echo.sequence, data: echo.data }),
  });
}

/** Where the transport checksum sits in the segment, for the protocols whose checksum covers the IP source. */
const PSEUDO_HEADER_CHECKSUM_AT: Readonly<Record<number, number>> = { [IP_PROTOCOL.UDP]: 6, [IP_PROTOCOL.TCP]: 16 };

/**
 * Gives a packet the source address the stack chose for it, keeping the IP checksum and, in the segment that holds
 * it, the UDP/TCP checksum (whose pseudo-header covers the source) valid. A UDP checksum of 0 means "none" and stays.
 */
export function setSource(packet: Ipv4View, source: number): void {
  const before = packet.src;
  packet.src = source;
  packet.fillChecksum();
  const checksumAt = PSEUDO_HEADER_CHECKSUM_AT[packet.protocol];
  if (checksumAt === undefined || packet.fragmentOffset !== 0) return;
  const field = packet.offset + packet.headerLength + checksumAt;
  if (field + 2 > packet.offset + packet.totalLength) return;
  const checksum = packet.buffer.readUInt16BE(field);
  const isUdp = packet.protocol === IP_PROTOCOL.UDP;
  if (isUdp && checksum === 0) return;
  const updated = updateChecksum(
    updateChecksum(checksum, before >>> 16, source >>> 16),
    before & 0xffff,
    source & 0xffff,
  );
  packet.buffer.writeUInt16BE(isUdp && updated === 0 ? 0xffff : updated, field);
}

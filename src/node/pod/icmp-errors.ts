/**
 * ICMP errors as a Linux host handles them: when `icmp_send()` agrees to send one (and how it builds it), and how a
 * received error is taken apart to find the socket whose packet it quotes.
 */
import {
  ICMP_HEADER_LENGTH,
  ICMP_TYPE,
  TIME_EXCEEDED_CODE,
  UNREACHABLE_CODE,
  destinationUnreachable,
  icmpErrorTos,
  timeExceeded,
  type IcmpMessage,
} from '../../wire/icmp.js';
import { IPV4_MIN_HEADER_LENGTH, IP_PROTOCOL, Ipv4View } from '../../wire/ipv4.js';

/** ICMP types that are themselves errors (`icmp_pointers[].error`): never answered with another error. */
const ERROR_TYPES = new Set([3, 4, 5, 11, 12]);
/** NR_ICMP_TYPES: types above it are unknown, and `icmp_send()` treats them like errors. */
const LAST_ICMP_TYPE = 18;

/**
 * Whether Linux would answer `offending` (a valid packet addressed to us) with an ICMP error at all: only about the
 * first fragment, never about an ICMP error, never to a source that cannot be a unicast host.
 */
export function mayAnswerWithError(offending: Ipv4View): boolean {
  if (offending.fragmentOffset !== 0) return false;
  if (!isUnicastHost(offending.src)) return false;
  if (offending.protocol === IP_PROTOCOL.ICMP) {
    const payload = offending.payload;
    if (payload.length < 1 || ERROR_TYPES.has(payload[0]) || payload[0] > LAST_ICMP_TYPE) return false;
  }
  return true;
}

/** Not 0/8, loopback, multicast, class E or broadcast: an address a reply can go back to. */
export function isUnicastHost(address: number): boolean {
  const first = address >>> 24;
  return first !== 0 && first !== 127 && first < 224;
}

export interface IcmpErrorPacket {
  icmp: Buffer;
  tos: number;
}

/** The error message and its TOS (`icmp_send()`: offending TOS bits | 0xc0), quoting as much as fits in 576 bytes. */
export function buildIcmpError(
  offending: Ipv4View,
  type: 'port-unreachable' | 'protocol-unreachable' | 'reassembly-timeout',
): IcmpErrorPacket {
  const packet = offending.packet;
  const icmp =
    type === 'reassembly-timeout'
      ? timeExceeded(packet, TIME_EXCEEDED_CODE.REASSEMBLY, { quote: 'linux' })
      : destinationUnreachable(
          packet,
          type === 'port-unreachable' ? UNREACHABLE_CODE.PORT : UNREACHABLE_CODE.PROTOCOL,
          {
            quote: 'linux',
          },
        );
  return { icmp, tos: icmpErrorTos(offending.buffer[offending.offset + 1]) };
}

/** `icmp_ratelimit` (1000 ms) with the inet_peer token bucket's burst of 6 (`XRLIM_BURST_FACTOR`). */
const TOKEN_MS = 1000;
const BURST = 6;
/** Peers are garbage-collected in the kernel; a bound keeps spoofed sources from growing the table. */
const MAX_PEERS = 4096;

export class IcmpRateLimiter {
  private readonly peers = new Map<number, { tokens: number; last: number }>();

  constructor(private readonly now: () => number) {}

  allow(destination: number): boolean {
    const now = this.now();
    let peer = this.peers.get(destination);
    if (peer === undefined) {
      if (this.peers.size >= MAX_PEERS) this.peers.delete(this.peers.keys().next().value as number);
      peer = { tokens: BURST * TOKEN_MS, last: now };
      this.peers.set(destination, peer);
    }
    peer.tokens = Math.min(BURST * TOKEN_MS, peer.tokens + (now - peer.last));
    peer.last = now;
    if (peer.tokens < TOKEN_MS) return false;
    peer.tokens -= TOKEN_MS;
    return true;
  }
}

/** The IPv4 header and first transport bytes quoted inside a received ICMP error. */
export interface QuotedPacket {
  src: number;
  dst: number;
  protocol: number;
  /** At least the 8 bytes RFC 792 guarantees: enough for ports, or an echo's identifier and sequence. */
  transport: Buffer;
}

export interface ReceivedIcmpError {
  /** Who sent the error: the address ping and traceroute print. */
  from: number;
  type: number;
  code: number;
  /** Next-hop MTU of a 3/4, else 0. */
  nextHopMtu: number;
  quoted: QuotedPacket;
}

export function parseReceivedError(from: number, message: IcmpMessage): ReceivedIcmpError | undefined {
  if (message.kind !== 'destination-unreachable' && message.kind !== 'time-exceeded') return undefined;
  const quoted = parseQuote(message.quoted);
  if (quoted === undefined) return undefined;
  const type = message.kind === 'time-exceeded' ? ICMP_TYPE.TIME_EXCEEDED : ICMP_TYPE.DESTINATION_UNREACHABLE;
  const nextHopMtu = message.kind === 'destination-unreachable' ? message.nextHopMtu : 0;
  return { from, type, code: message.code, nextHopMtu, quoted };
}

/**
 * A quote is a truncated packet, so the usual total-length and checksum checks cannot apply; the header must still
 * be IPv4 and long enough to hold its transport header's first 8 bytes.
 */
function parseQuote(quote: Buffer): QuotedPacket | undefined {
  if (quote.length < IPV4_MIN_HEADER_LENGTH + ICMP_HEADER_LENGTH) return undefined;
  const view = new Ipv4View(quote);
  if (view.version !== 4 || view.ihl < 5 || quote.length < view.headerLength + 8) return undefined;
  return { src: view.src, dst: view.dst, protocol: view.protocol, transport: quote.subarray(view.headerLength) };
}

/** errno names a TCP connect can fail with, and their `strerror()` text (what curl prints). */
export const ERRNO_TEXT = {
  ECONNREFUSED: 'Connection refused',
  ECONNRESET: 'Connection reset by peer',
  ETIMEDOUT: 'Connection timed out',
  EHOSTUNREACH: 'No route to host',
  ENETUNREACH: 'Network is unreachable',
  ENOPROTOOPT: 'Protocol not available',
  EHOSTDOWN: 'Host is down',
  ENONET: 'Machine is not on the network',
  EOPNOTSUPP: 'Operation not supported',
  EADDRNOTAVAIL: 'Cannot assign requested address',
} as const;

export type Errno = keyof typeof ERRNO_TEXT;

/** Linux `icmp_err_convert[]` by unreachable code; 3/4 (EMSGSIZE) is PMTU discovery, never a socket error. */
const UNREACHABLE_ERRNO: Readonly<Record<number, Errno>> = {
  0: 'ENETUNREACH',
  1: 'EHOSTUNREACH',
  2: 'ENOPROTOOPT',
  3: 'ECONNREFUSED',
  5: 'EOPNOTSUPP',
  6: 'ENETUNREACH',
  7: 'EHOSTDOWN',
  8: 'ENONET',
  9: 'ENETUNREACH',
  10: 'EHOSTUNREACH',
  11: 'ENETUNREACH',
  12: 'EHOSTUNREACH',
  13: 'EHOSTUNREACH',
  14: 'EHOSTUNREACH',
  15: 'EHOSTUNREACH',
};

/** The errno `tcp_v4_err()` gives a connection for an error, or undefined for those it ignores. */
export function tcpErrnoFor(error: ReceivedIcmpError): Errno | undefined {
  if (error.type === ICMP_TYPE.TIME_EXCEEDED) return 'EHOSTUNREACH';
  if (error.type !== ICMP_TYPE.DESTINATION_UNREACHABLE) return undefined;
  return UNREACHABLE_ERRNO[error.code];
}

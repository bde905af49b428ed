/**
 * ICMP errors as a Linux pod handles them beyond what `icmp_send()` itself decides (../reply-stack.ts): which sources
 * it answers at all, how fast, and how a received error is taken apart to find the socket whose packet it quotes.
 */
import { ICMP_TYPE, checkQuote, type IcmpMessage } from '../../../wire/icmp.js';

/**
 * Not 0/8, loopback, multicast, class E or broadcast: an address a reply can go back to. A pod has no input route to
 * drop martian sources, so it asks this before it answers.
 */
export function isUnicastHost(address: number): boolean {
  const first = address >>> 24;
  return first !== 0 && first !== 127 && first < 224;
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
  /**
   * At least the 8 bytes RFC 792 guarantees (`QUOTED_PAYLOAD_LENGTH`): the ports, TCP's sequence number, or an echo's
   * identifier and sequence, read through `UdpView`, `TcpView` or `IcmpView`.
   */
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
  const header = checkQuote(message.quoted);
  if (!header.ok) return undefined;
  const { src, dst, protocol, headerLength } = header.value;
  const quoted = { src, dst, protocol, transport: message.quoted.subarray(headerLength) };
  const type = message.kind === 'time-exceeded' ? ICMP_TYPE.TIME_EXCEEDED : ICMP_TYPE.DESTINATION_UNREACHABLE;
  const nextHopMtu = message.kind === 'destination-unreachable' ? message.nextHopMtu : 0;
  return { from, type, code: message.code, nextHopMtu, quoted };
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

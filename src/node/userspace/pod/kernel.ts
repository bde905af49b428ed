/**
 * What the pod's "kernel" offers the commands run inside it (ping, traceroute, curl): the socket-level services a
 * Linux program would reach through system calls.
 */
import type { TimerSet } from './clock.js';
import type { ReceivedIcmpError } from './icmp-errors.js';
import type { TcpStack } from './tcp-stack.js';

/**
 * `IP_MTU_DISCOVER`: `want` (the default) sets DF when the datagram fits the path MTU and fragments it otherwise,
 * `do` always sets DF and refuses what does not fit (EMSGSIZE), `dont` never sets DF.
 */
export type PmtuDiscovery = 'want' | 'do' | 'dont';

export interface OutgoingDatagram {
  destination: number;
  protocol: number;
  payload: Buffer;
  /** Defaults to 64 (`ip_default_ttl`). */
  ttl?: number;
  tos?: number;
  pmtuDiscovery: PmtuDiscovery;
  /** A connected socket's own IP ID counter; otherwise the kernel picks (0 under `do`, else its counter). */
  identification?: number;
}

/** EMSGSIZE carries the MTU that refused the datagram, as `IP_RECVERR`'s `ee_info` does. */
export type SendResult = { ok: true } | { ok: false; mtu: number };

/** How ping (after "ping: ") and the pod's raw send report EMSGSIZE. */
export function localErrorText(mtu: number): string {
  return `local error: message too long, mtu=${mtu}`;
}

export interface EchoReply {
  from: number;
  ttl: number;
  sequence: number;
  /** The ICMP message's length: what ping prints as "N bytes from". */
  icmpLength: number;
}

/** A ping socket: echo replies and ICMP errors for one identifier. */
export interface PingSocket {
  onEchoReply(reply: EchoReply): void;
  onError(error: ReceivedIcmpError, sequence: number): void;
}

/** A UDP socket that only listens for ICMP errors about what it sent, as traceroute's probe sockets do. */
export interface UdpErrorSocket {
  onError(error: ReceivedIcmpError): void;
}

export interface PodKernel {
  readonly address: number;
  readonly timers: TimerSet;
  readonly tcp: TcpStack;
  now(): number;
  random(): number;
  sendDatagram(datagram: OutgoingDatagram): SendResult;
  /** Undefined if another socket holds the identifier. The returned function unbinds. */
  bindPing(identifier: number, socket: PingSocket): (() => void) | undefined;
  /** Binds an ephemeral UDP port; undefined when none is free. */
  bindUdp(socket: UdpErrorSocket): { port: number; unbind: () => void } | undefined;
  /** Runs `interrupt` if the pod is closed first; the returned function cancels that. */
  onClose(interrupt: () => void): () => void;
}

/**
 * The pod's TCP layer: demultiplexing to connections, listeners, ephemeral ports, and the RSTs a Linux host sends
 * for segments that belong to no connection.
 */
import { ECN, tosOf, type Ipv4View } from '../../../wire/ipv4.js';
import { TCP_FLAG, TcpView, tcp, type DecodedTcpSegment, type TcpSegment } from '../../../wire/tcp.js';
import type { TimerSet } from './clock.js';
import type { PodDropReason } from './counters.js';
import { tcpErrnoFor, type ReceivedIcmpError } from './icmp-errors.js';
import { TcpConnection, type TcpEvents, type TcpLink } from './tcp-connection.js';

export interface TcpHost {
  readonly address: number;
  readonly mtu: number;
  readonly timers: TimerSet;
  now(): number;
  random(): number;
  /** Sends an encoded segment with DF set, as every Linux TCP segment is. */
  send(destination: number, segment: Buffer, ipId: number, tos: number): void;
  pathMtu(destination: number): number;
  drop(reason: PodDropReason): void;
}

/** `net.ipv4.ip_local_port_range`. */
const EPHEMERAL_FIRST = 32768;
const EPHEMERAL_LAST = 60999;
/** Half-open connections a listener keeps (`tcp_max_syn_backlog` on a small host); a SYN flood cannot grow memory. */
const MAX_HALF_OPEN = 256;

/** Decides what the application does with a connection once its handshake completes. */
export type AcceptHandler = (connection: TcpConnection) => TcpEvents;

export class TcpStack {
  private readonly connections = new Map<string, TcpConnection>();
  private readonly listeners = new Map<number, AcceptHandler>();
  private halfOpen = 0;

  constructor(private readonly host: TcpHost) {}

  listen(port: number, onAccept: AcceptHandler): void {
    this.listeners.set(port, onAccept);
  }

  /** Active open from an ephemeral port; undefined when every port towards that peer is taken (EADDRNOTAVAIL). */
  connect(remoteAddress: number, remotePort: number, events: TcpEvents): TcpConnection | undefined {
    const range = EPHEMERAL_LAST - EPHEMERAL_FIRST + 1;
    const start = Math.floor(this.host.random() * range);
    for (let i = 0; i < range; i++) {
      const localPort = EPHEMERAL_FIRST + ((start + i) % range);
      const key = connectionKey(remoteAddress, remotePort, localPort);
      if (this.listeners.has(localPort) || this.connections.has(key)) continue;
      const connection = TcpConnection.connect(
        this.linkFor(key, remoteAddress),
        { localPort, remotePort },
        this.host.mtu,
        events,
      );
      this.connections.set(key, connection);
      return connection;
    }
    return undefined;
  }

  receive(packet: Ipv4View): void {
    const decoded = tcp.decode(packet.payload, { src: packet.src, dst: packet.dst });
    if (!decoded.ok) {
      this.host.drop(decoded.reason);
      return;
    }
    const segment = decoded.value;
    const key = connectionKey(packet.src, segment.srcPort, segment.dstPort);
    const connection = this.connections.get(key);
    if (connection !== undefined) {
      if (connection.receive(segment) === 'unacceptable') this.host.drop('tcp-unacceptable');
      return;
    }
    const onAccept = this.listeners.get(segment.dstPort);
    const control = segment.flags & (TCP_FLAG.SYN | TCP_FLAG.ACK | TCP_FLAG.RST | TCP_FLAG.FIN);
    if (onAccept !== undefined && control === TCP_FLAG.SYN) {
      this.accept(key, packet.src, segment, onAccept);
      return;
    }
    // LISTEN discards anything but a SYN, answering an ACK with a reset (RFC 9293 §3.10.7.2); no socket at all
    // resets everything but a reset.
    this.host.drop(onAccept === undefined ? 'tcp-no-socket' : 'tcp-unacceptable');
    const listenerIgnores = onAccept !== undefined && (segment.flags & TCP_FLAG.ACK) === 0;
    if ((segment.flags & TCP_FLAG.RST) === 0 && !listenerIgnores) this.sendReset(packet, segment);
  }

  icmpError(error: ReceivedIcmpError): void {
    const { quoted } = error;
    const sent = new TcpView(quoted.transport);
    const connection = this.connections.get(connectionKey(quoted.dst, sent.dstPort, sent.srcPort));
    // RFC 5927: an error must quote a sequence number we have in flight, or it is a blind attack.
    if (connection === undefined || !connection.hasInFlight(sent.sequence)) {
      this.host.drop('icmp-unmatched');
      return;
    }
    const errno = tcpErrnoFor(error);
    if (errno !== undefined) connection.icmpError(errno);
  }

  pathMtuReduced(destination: number): void {
    for (const [key, connection] of this.connections) {
      if (key.startsWith(`${destination}:`)) connection.pathMtuReduced();
    }
  }

  private accept(key: string, remoteAddress: number, syn: DecodedTcpSegment, onAccept: AcceptHandler): void {
    if (this.halfOpen >= MAX_HALF_OPEN) {
      this.host.drop('tcp-unacceptable');
      return;
    }
    this.halfOpen += 1;
    let counted = true;
    const settle = () => {
      if (counted) this.halfOpen -= 1;
      counted = false;
    };
    const link = this.linkFor(key, remoteAddress, settle);
    const connection: TcpConnection = TcpConnection.accept(
      link,
      { localPort: syn.dstPort, remotePort: syn.srcPort },
      this.host.mtu,
      syn,
      {
        onEstablished: () => {
          settle();
          connection.events = onAccept(connection);
        },
      },
    );
    this.connections.set(key, connection);
  }

  private linkFor(key: string, remoteAddress: number, onRelease?: () => void): TcpLink {
    const host = this.host;
    return {
      timers: host.timers,
      now: () => host.now(),
      random: () => host.random(),
      transmit: (segment: TcpSegment, ipId: number) => {
        host.send(remoteAddress, tcp.encode(segment, { src: host.address, dst: remoteAddress }), ipId, 0);
      },
      pathMtu: () => host.pathMtu(remoteAddress),
      release: () => {
        this.connections.delete(key);
        onRelease?.();
      },
    };
  }

  /**
   * `tcp_v4_send_reset()`: <SEQ=SEG.ACK><CTL=RST> if the segment had an ACK, else
   * <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>; from the unconnected control socket, so IP ID 0, and the
   * offending segment's TOS without its ECN bits.
   */
  private sendReset(packet: Ipv4View, segment: DecodedTcpSegment): void {
    const hasAck = (segment.flags & TCP_FLAG.ACK) !== 0;
    const length =
      segment.payload.length +
      ((segment.flags & TCP_FLAG.SYN) !== 0 ? 1 : 0) +
      ((segment.flags & TCP_FLAG.FIN) !== 0 ? 1 : 0);
    const reset = tcp.encode(
      {
        srcPort: segment.dstPort,
        dstPort: segment.srcPort,
        sequence: hasAck ? segment.acknowledgment : 0,
        acknowledgment: hasAck ? 0 : (segment.sequence + length) >>> 0,
        flags: hasAck ? TCP_FLAG.RST : TCP_FLAG.RST | TCP_FLAG.ACK,
        window: 0,
        payload: Buffer.alloc(0),
      },
      { src: this.host.address, dst: packet.src },
    );
    this.host.send(packet.src, reset, 0, tosOf(packet.dscp, ECN.NOT_ECT));
  }
}

function connectionKey(remoteAddress: number, remotePort: number, localPort: number): string {
  return `${remoteAddress}:${remotePort}:${localPort}`;
}

/**
 * A pod simulated in userspace: the IPv4 stack of a Linux pod (eth0 with a /32 and everything routed to the host)
 * reduced to what a Calico lab exercises, and the commands run inside it. On the wire it must be indistinguishable
 * from the pods of the kernel captures in test/fixtures/vectors: TTL 64, echo replies without DF copying the
 * request's TOS, ICMP errors with TOS 0xc0 quoting up to 576 bytes, TCP with DF and MSS = MTU − 40, reassembly that
 * drops overlapping datagrams.
 */
import { fragment } from '../../../wire/fragment.js';
import { ICMP_TYPE, IcmpView, UNREACHABLE_CODE, icmp, type IcmpMessage } from '../../../wire/icmp.js';
import { IPV4_MIN_HEADER_LENGTH, IP_PROTOCOL, Ipv4View, dscpOf, ecnOf, ipv4 } from '../../../wire/ipv4.js';
import { IPV4_MIN_MTU, IpIdCounter, LINUX_DEFAULT_TTL } from '../../../wire/linux-defaults.js';
import { UdpView, udp } from '../../../wire/udp.js';
import {
  PORT_UNREACHABLE,
  PROTOCOL_UNREACHABLE,
  REASSEMBLY_TIMEOUT,
  echoReply,
  icmpErrorPacket,
  mayAnswerWithError,
  type NodeIcmpError,
} from '../reply-stack.js';
import { TimerSet, systemClock, type SetTimer } from './clock.js';
import { countDrop, emptyCounters, type PodCounters, type PodDropReason } from './counters.js';
import { curl, type CurlOptions, type CurlReport } from './curl.js';
import { HELLO_APP_PORT, serveHelloApp } from '../../hello-app.js';
import { IcmpRateLimiter, isUnicastHost, parseReceivedError } from './icmp-errors.js';
import {
  localErrorText,
  type OutgoingDatagram,
  type PingSocket,
  type PodKernel,
  type SendResult,
  type UdpErrorSocket,
} from './kernel.js';
import { PathMtuCache } from './path-mtu.js';
import { ping, type PingOptions, type PingReport } from './ping.js';
import { Reassembler } from './reassembly.js';
import { TcpStack } from './tcp-stack.js';
import { traceroute, type TracerouteOptions, type TracerouteReport } from './traceroute.js';

export interface PodOptions {
  /** The pod's name, which hello-app reports as its Hostname. */
  name: string;
  /** eth0's /32 address, as a uint32. */
  ip: number;
  /** eth0's MTU: 1480 in a Calico IPIP pod. */
  mtu: number;
  /** eth0 → the host's cali interface; every packet goes there (default route via 169.254.1.1). */
  transmit: (packet: Buffer) => void;
  /** Milliseconds since the Unix epoch; defaults to the monotonic clock offset to wall time. */
  now?: () => number;
  /** Defaults to setTimeout. */
  setTimer?: SetTimer;
  /** [0, 1), for ISNs, ephemeral ports, ping identifiers and IP IDs; defaults to Math.random. */
  random?: () => number;
  /** Serve the seed's hello-app on port 8080. */
  httpApp?: 'hello-app';
}

export type RawSendResult = { ok: true } | { ok: false; error: string };

/** The well-known echo service (RFC 862) the pod answers on UDP. */
const UDP_ECHO_PORT = 7;
const EPHEMERAL_FIRST = 32768;
const EPHEMERAL_COUNT = 60999 - 32768 + 1;

export class SimulatedPod {
  readonly name: string;
  readonly ip: number;
  readonly mtu: number;

  private readonly stats = emptyCounters();
  private readonly transmitPacket: (packet: Buffer) => void;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly setTimer: SetTimer;
  private readonly servesHelloApp: boolean;
  private readonly ipId: IpIdCounter;
  private closed = false;

  /*
   * Built on first use, by the getters of the same names without `lazy`: a node runs one pod per local workload, most
   * of them idle, and the maps, sets and closures of these parts were most of what an idle pod cost. None of them
   * draws a random number or reads the clock when built, so building them late changes nothing a pod does.
   */
  private lazyTimers: TimerSet | undefined;
  private lazyReassembler: Reassembler | undefined;
  private lazyPathMtu: PathMtuCache | undefined;
  private lazyIcmpLimiter: IcmpRateLimiter | undefined;
  private lazyTcp: TcpStack | undefined;
  private lazyKernel: PodKernel | undefined;
  /** Only the commands' sockets ever enter these; until one binds, nothing can match. */
  private pingSockets: Map<number, PingSocket> | undefined;
  private udpSockets: Map<number, UdpErrorSocket> | undefined;
  private closeHooks: Set<() => void> | undefined;

  /**
   * Packets wait here until the pod finishes what it is doing, as a kernel finishes one softirq before the next:
   * a host that delivers synchronously (pod → host → pod) must never re-enter a half-updated TCP state machine.
   */
  private readonly outbox: Buffer[] = [];
  private depth = 0;
  private flushing = false;

  constructor(options: PodOptions) {
    if (options.name === '') throw new RangeError('a pod needs a name');
    if (!Number.isInteger(options.ip) || options.ip < 0 || options.ip > 0xffffffff) {
      throw new RangeError(`bad pod IP ${options.ip}`);
    }
    if (!Number.isInteger(options.mtu) || options.mtu < IPV4_MIN_MTU || options.mtu > 0xffff) {
      throw new RangeError(`bad MTU ${options.mtu}`);
    }
    this.name = options.name;
    this.ip = options.ip >>> 0;
    this.mtu = options.mtu;
    this.transmitPacket = options.transmit;
    this.now = options.now ?? systemClock.now;
    this.random = options.random ?? Math.random;
    this.setTimer = options.setTimer ?? systemClock.setTimer;
    this.servesHelloApp = options.httpApp === 'hello-app';
    this.ipId = new IpIdCounter(Math.floor(this.random() * 0x10000));
  }

  private get timers(): TimerSet {
    return (this.lazyTimers ??= new TimerSet((callback, delayMs) => this.setTimer(() => this.run(callback), delayMs)));
  }

  private get reassembler(): Reassembler {
    return (this.lazyReassembler ??= new Reassembler(this.timers, (first) => this.reassemblyExpired(first)));
  }

  private get pathMtu(): PathMtuCache {
    return (this.lazyPathMtu ??= new PathMtuCache(this.mtu, this.now));
  }

  private get icmpLimiter(): IcmpRateLimiter {
    return (this.lazyIcmpLimiter ??= new IcmpRateLimiter(this.now));
  }

  private get tcp(): TcpStack {
    if (this.lazyTcp !== undefined) return this.lazyTcp;
    const tcp = new TcpStack({
      address: this.ip,
      mtu: this.mtu,
      timers: this.timers,
      now: this.now,
      random: this.random,
      send: (destination, segment, identification, tos) =>
        this.sendDatagram({
          destination,
          protocol: IP_PROTOCOL.TCP,
          payload: segment,
          tos,
          pmtuDiscovery: 'do',
          identification,
        }),
      pathMtu: (destination) => this.pathMtu.mtuTo(destination),
      drop: (reason) => this.drop(reason),
    });
    if (this.servesHelloApp) {
      tcp.listen(HELLO_APP_PORT, (connection) => serveHelloApp(connection, this.name, this.now));
    }
    return (this.lazyTcp = tcp);
  }

  private get kernel(): PodKernel {
    return (this.lazyKernel ??= {
      address: this.ip,
      timers: this.timers,
      tcp: this.tcp,
      now: this.now,
      random: this.random,
      sendDatagram: (datagram) => this.sendDatagram(datagram),
      bindPing: (identifier, socket) => this.bindPing(identifier, socket),
      bindUdp: (socket) => this.bindUdp(socket),
      onClose: (interrupt) => {
        const hooks = (this.closeHooks ??= new Set());
        hooks.add(interrupt);
        return () => hooks.delete(interrupt);
      },
    });
  }

  /** A snapshot: packets and bytes each way, and every drop by reason. */
  get counters(): PodCounters {
    return { ...this.stats, drops: { ...this.stats.drops } };
  }

  /** A packet the host delivers on eth0. Any bytes at all: what cannot be used is counted as a drop. */
  receive(packet: Buffer): void {
    if (this.closed) return;
    this.run(() => this.input(packet));
  }

  ping(destination: number, options?: PingOptions): Promise<PingReport> {
    return this.command(() => ping(this.kernel, destination, options));
  }

  curl(url: string, options?: CurlOptions): Promise<CurlReport> {
    return this.command(() => curl(this.kernel, url, options));
  }

  traceroute(destination: number, options?: TracerouteOptions): Promise<TracerouteReport> {
    return this.command(() => traceroute(this.kernel, destination, options));
  }

  /**
   * Sends a ready-made IPv4 packet as the pod's own, for tests: refused like EMSGSIZE when it has DF and exceeds
   * the path MTU, fragmented when it exceeds it without DF.
   */
  send(packet: Buffer): RawSendResult {
    if (this.closed) return { ok: false, error: 'pod is closed' };
    const checked = Ipv4View.check(packet);
    if (!checked.ok) return { ok: false, error: `invalid IPv4 packet (${checked.reason})` };
    const view = checked.value;
    const mtu = this.pathMtu.mtuTo(view.dst);
    if (view.totalLength > mtu && view.dontFragment) return { ok: false, error: localErrorText(mtu) };
    this.run(() => this.emitFragmented(Buffer.from(view.packet), mtu));
    return { ok: true };
  }

  /** Stops every timer; running commands end as if interrupted with Ctrl-C and resolve with what they have. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    // Through the fields, not the getters: closing must not build what was never used.
    for (const interrupt of [...(this.closeHooks ?? [])]) interrupt();
    this.closeHooks?.clear();
    this.lazyTimers?.cancelAll();
    this.lazyReassembler?.clear();
    this.outbox.length = 0;
  }

  private command<T>(start: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error(`pod ${this.name} is closed`));
    return this.run(start);
  }

  private run<T>(work: () => T): T {
    this.depth += 1;
    try {
      return work();
    } finally {
      this.depth -= 1;
      if (this.depth === 0) this.flush();
    }
  }

  private flush(): void {
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (let packet = this.outbox.shift(); packet !== undefined; packet = this.outbox.shift())
        this.transmitPacket(packet);
    } finally {
      this.flushing = false;
    }
  }

  private drop(reason: PodDropReason): void {
    countDrop(this.stats, reason);
  }

  // --- input ---

  private input(packet: Buffer): void {
    this.stats.rxPackets += 1;
    this.stats.rxBytes += packet.length;
    const checked = Ipv4View.check(packet);
    if (!checked.ok) return this.drop(checked.reason);
    let view = checked.value;
    if (view.dst !== this.ip) return this.drop('not-for-pod');
    if (view.isFragment) {
      const outcome = this.reassembler.add(view);
      if (outcome.kind === 'pending') return;
      if (outcome.kind === 'dropped') return this.drop(outcome.reason);
      this.stats.reassembled += 1;
      view = new Ipv4View(outcome.packet);
    }
    switch (view.protocol) {
      case IP_PROTOCOL.ICMP:
        return this.icmpInput(view);
      case IP_PROTOCOL.UDP:
        return this.udpInput(view);
      case IP_PROTOCOL.TCP:
        return this.tcp.receive(view);
      default:
        this.drop('unknown-protocol');
        this.sendError(view, PROTOCOL_UNREACHABLE);
    }
  }

  private icmpInput(view: Ipv4View): void {
    const decoded = icmp.decode(view.payload);
    if (!decoded.ok) return this.drop(decoded.reason);
    const message = decoded.value;
    switch (message.kind) {
      case 'echo-request':
        if (!isUnicastHost(view.src)) return this.drop('icmp-unmatched');
        return this.sendOwn(echoReply(view, message, this.ipId.next()), view.src);
      case 'echo-reply': {
        const socket = this.pingSockets?.get(message.identifier);
        if (socket === undefined) return this.drop('icmp-unmatched');
        socket.onEchoReply({
          from: view.src,
          ttl: view.ttl,
          sequence: message.sequence,
          icmpLength: view.payload.length,
        });
        return;
      }
      case 'destination-unreachable':
      case 'time-exceeded':
        return this.icmpErrorInput(view.src, message);
      default:
        return this.drop('icmp-unmatched');
    }
  }

  /** Finds the socket whose packet the error quotes; a 3/4 first lowers the path MTU, as `ip_rt_update_pmtu` does. */
  private icmpErrorInput(from: number, message: IcmpMessage): void {
    const error = parseReceivedError(from, message);
    if (error === undefined || error.quoted.src !== this.ip) return this.drop('icmp-unmatched');
    const { quoted } = error;
    if (error.type === ICMP_TYPE.DESTINATION_UNREACHABLE && error.code === UNREACHABLE_CODE.FRAGMENTATION_NEEDED) {
      if (this.pathMtu.learn(quoted.dst, error.nextHopMtu)) this.tcp.pathMtuReduced(quoted.dst);
    }
    switch (quoted.protocol) {
      case IP_PROTOCOL.ICMP: {
        const echo = new IcmpView(quoted.transport);
        const socket = echo.type === ICMP_TYPE.ECHO_REQUEST ? this.pingSockets?.get(echo.identifier) : undefined;
        if (socket === undefined) return this.drop('icmp-unmatched');
        return socket.onError(error, echo.sequence);
      }
      case IP_PROTOCOL.UDP: {
        const socket = this.udpSockets?.get(new UdpView(quoted.transport).srcPort);
        if (socket === undefined) return this.drop('icmp-unmatched');
        return socket.onError(error);
      }
      case IP_PROTOCOL.TCP:
        return this.tcp.icmpError(error);
      default:
        return this.drop('icmp-unmatched');
    }
  }

  private udpInput(view: Ipv4View): void {
    const decoded = udp.decode(view.payload, { src: view.src, dst: view.dst });
    if (!decoded.ok) return this.drop(decoded.reason);
    const datagram = decoded.value;
    if (datagram.dstPort === UDP_ECHO_PORT) {
      if (!isUnicastHost(view.src)) return;
      this.sendDatagram({
        destination: view.src,
        protocol: IP_PROTOCOL.UDP,
        payload: udp.encode(
          { srcPort: UDP_ECHO_PORT, dstPort: datagram.srcPort, payload: datagram.payload },
          { src: this.ip, dst: view.src },
        ),
        pmtuDiscovery: 'want',
      });
      return;
    }
    // A bound probe socket takes the datagram and ignores it, as traceroute's sockets do.
    if (this.udpSockets?.has(datagram.dstPort)) return;
    this.drop('udp-port-unreachable');
    this.sendError(view, PORT_UNREACHABLE);
  }

  private reassemblyExpired(first: Ipv4View | undefined): void {
    this.drop('reassembly-timeout');
    if (first !== undefined) this.sendError(first, REASSEMBLY_TIMEOUT);
  }

  /** `icmp_send()`: only when Linux would, and no faster than its per-destination token bucket allows. */
  private sendError(offending: Ipv4View, error: NodeIcmpError): void {
    if (!isUnicastHost(offending.src) || !mayAnswerWithError(offending)) return;
    if (!this.icmpLimiter.allow(offending.src)) {
      this.stats.icmpRateLimited += 1;
      return;
    }
    this.sendOwn(icmpErrorPacket(offending, error, this.ip, this.ipId.next()), offending.src);
  }

  // --- output ---

  /**
   * `ip_make_skb()` and friends: DF by the socket's PMTU mode, IP ID 0 for DF packets of an unconnected `do`
   * socket (vectors 5c) and the pod's counter otherwise, fragments at the path MTU when DF is clear.
   */
  private sendDatagram(datagram: OutgoingDatagram): SendResult {
    const mtu = this.pathMtu.mtuTo(datagram.destination);
    const fits = IPV4_MIN_HEADER_LENGTH + datagram.payload.length <= mtu;
    if (datagram.pmtuDiscovery === 'do' && !fits) return { ok: false, mtu };
    const dontFragment = datagram.pmtuDiscovery === 'do' || (datagram.pmtuDiscovery === 'want' && fits);
    const tos = datagram.tos ?? 0;
    const packet = ipv4.encode({
      dscp: dscpOf(tos),
      ecn: ecnOf(tos),
      identification: datagram.identification ?? (datagram.pmtuDiscovery === 'do' ? 0 : this.ipId.next()),
      dontFragment,
      ttl: datagram.ttl ?? LINUX_DEFAULT_TTL,
      protocol: datagram.protocol,
      src: this.ip,
      dst: datagram.destination,
      payload: datagram.payload,
    });
    this.emitFragmented(packet, mtu);
    return { ok: true };
  }

  /** An echo reply or ICMP error from ../reply-stack.ts (DF clear, as Linux sends them), fragmented at the path MTU. */
  private sendOwn(packet: Buffer, destination: number): void {
    this.emitFragmented(packet, this.pathMtu.mtuTo(destination));
  }

  private emitFragmented(packet: Buffer, mtu: number): void {
    if (packet.length <= mtu) return this.emit(packet);
    const pieces = fragment(packet, mtu);
    if (!pieces.ok) return;
    this.stats.fragmented += 1;
    for (const piece of pieces.value) this.emit(piece);
  }

  private emit(packet: Buffer): void {
    if (this.closed) return;
    this.stats.txPackets += 1;
    this.stats.txBytes += packet.length;
    this.outbox.push(packet);
  }

  private bindPing(identifier: number, socket: PingSocket): (() => void) | undefined {
    const sockets = (this.pingSockets ??= new Map());
    if (sockets.has(identifier)) return undefined;
    sockets.set(identifier, socket);
    return () => {
      if (sockets.get(identifier) === socket) sockets.delete(identifier);
    };
  }

  private bindUdp(socket: UdpErrorSocket): { port: number; unbind: () => void } | undefined {
    const sockets = (this.udpSockets ??= new Map());
    const start = Math.floor(this.random() * EPHEMERAL_COUNT);
    for (let i = 0; i < EPHEMERAL_COUNT; i++) {
      const port = EPHEMERAL_FIRST + ((start + i) % EPHEMERAL_COUNT);
      if (sockets.has(port)) continue;
      sockets.set(port, socket);
      return {
        port,
        unbind: () => {
          if (sockets.get(port) === socket) sockets.delete(port);
        },
      };
    }
    return undefined;
  }
}

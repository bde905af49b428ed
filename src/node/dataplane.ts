/**
 * One node's forwarding engine: what the Linux kernel of a Calico node in IPIP mode does with a packet between its
 * pods' cali veths, tunl0 and eth0 (ip_route_input, ip_forward, ipip_rcv/ip_tunnel_xmit, icmp_send), with Felix's
 * two filters that matter here (pod anti-spoofing, the IPIP source allow-list). The vectors README's 17 rules are
 * the specification; the comments cite them.
 *
 * Re-entrancy: pod `deliver` callbacks, the underlay, taps and listeners may call back into the dataplane
 * synchronously. The two scratch views are therefore never read after any callback has run.
 */
import type { Ipv4Address } from '../routing/address.js';
import type { Route, UnicastNextHop } from '../routing/route.js';
import { RouteTable } from '../routing/table.js';
import { fragment } from '../wire/fragment.js';
import { icmp } from '../wire/icmp.js';
import { IPIP_OVERHEAD, decapsulateEcn, encapsulate, type TunnelHeader } from '../wire/ipip.js';
import { ipv4ToString } from '../wire/ipv4-text.js';
import { IPV4_MAX_TOTAL_LENGTH, IP_PROTOCOL, Ipv4View } from '../wire/ipv4.js';
import { udp } from '../wire/udp.js';
import { Counters, type DataplaneDropReason, type DataplaneStats, type InterfaceStats } from './counters.js';
import {
  NET_UNREACHABLE,
  PORT_UNREACHABLE,
  PROTOCOL_UNREACHABLE,
  TTL_EXCEEDED,
  echoReply,
  icmpErrorPacket,
  mayAnswerWithError,
  setSource,
  type NodeIcmpError,
} from './reply-stack.js';

export const UNDERLAY_INTERFACE = 'eth0';
export const TUNNEL_INTERFACE = 'tunl0';

export interface PodAttachment {
  readonly name: string;
  readonly ip: Ipv4Address;
  /** The host side of the pod's veth, `cali…`. */
  readonly hostInterface: string;
}

export interface NodeConfig {
  readonly name: string;
  /** eth0's address: the outer source of everything this node tunnels. */
  readonly nodeIp: Ipv4Address;
  /** tunl0's /32, the source of what the node sends into the tunnel itself (rules 14, 15). */
  readonly tunnelAddress?: Ipv4Address;
  readonly tunnelMtu: number;
  /**
   * Felix's routes: the connected eth0 route, remote blocks via tunl0 onlink, own blocks blackhole, pods' /32s. Read
   * once, route by route, so a felix that makes them as they are read never has all of them alive at once.
   */
  readonly routes: Iterable<Route>;
  /** Felix's allow-list of IPIP sources ("Drop IPIP packets from non-Calico hosts"). */
  readonly clusterNodeIps: readonly Ipv4Address[];
  readonly pods: readonly PodAttachment[];
  /** Apply the allow-list (default true). The kernel alone accepts IPIP from anyone (rule 9). */
  readonly enforceIpipSourceAllowList?: boolean;
}

/** A raw IPIP socket with IP_HDRINCL: `packet` includes its outer header; `destination` is the next hop. */
export interface UnderlayTx {
  send(packet: Buffer, destination: number): void;
}

/**
 * What a capture on an interface sees: eth0 the outer packets exactly as sent and received, tunl0 the inner ones
 * after decapsulation / before encapsulation, a cali interface the pod's side. The event and its `packet` are only
 * valid during the listener call (the dataplane reuses the one and changes some bytes of the other in place):
 * copy what is to be kept.
 */
export interface TapEvent {
  interfaceName: string;
  direction: 'rx' | 'tx';
  packet: Buffer;
  /** When the packet's trip through the node began: every tap of one trip shows the same time. */
  readonly timestampNs: bigint;
}

type TapListener = (event: TapEvent) => void;

/**
 * The clock is read only when a listener asks for the time, so that a capture dropping records (over its CPU budget)
 * does not pay for a clock read per packet.
 */
class ReusedTapEvent implements TapEvent {
  interfaceName = '';
  direction: TapEvent['direction'] = 'rx';
  packet: Buffer = Buffer.alloc(0);
  declare readonly timestampNs: bigint;

  constructor(tripTime: () => bigint) {
    // An own, enumerable getter: a listener that copies the event with `{ ...event }` gets the time too.
    Object.defineProperty(this, 'timestampNs', { get: tripTime, enumerable: true });
  }
}

interface TapSubscription {
  readonly listener: TapListener;
  /** undefined: every interface. */
  readonly interfaces: ReadonlySet<string> | undefined;
}

export interface DataplaneOptions {
  /** Nanoseconds since the Unix epoch, for tap timestamps. */
  now?: () => bigint;
  /** Kernel-style log lines (`ip_tunnel: non-ECT from …`) and listener failures. */
  log?: (line: string) => void;
}

export {
  DATAPLANE_DROP_REASONS,
  DATAPLANE_EVENTS,
  unaccounted,
  type DataplaneDropReason,
  type DataplaneEvent,
  type DataplaneStats,
  type InterfaceStats,
} from './counters.js';

interface DevicePort {
  readonly kind: 'underlay' | 'tunnel';
  readonly name: string;
  readonly stats: InterfaceStats;
  /** The tap listeners that selected this interface, kept per port so that an untapped hop costs one length check. */
  taps: readonly TapListener[];
}

interface PodPort {
  readonly kind: 'pod';
  readonly name: string;
  readonly stats: InterfaceStats;
  taps: readonly TapListener[];
  readonly podName: string;
  readonly ip: number;
  deliver?: (packet: Buffer) => void;
}

type Port = DevicePort | PodPort;

/** The outer source of a packet that did not come out of the tunnel, and the address of an absent tunl0. */
const NONE = -1;
const UNSPECIFIED = 0;
const LIMITED_BROADCAST = 0xffffffff;
/** The smallest MTU IPv4 allows (RFC 791): a 60-byte header plus one 8-byte fragment unit. */
const MIN_MTU = 68;
/** Beyond this an encapsulated packet would not fit IPv4's 16-bit total length. */
const MAX_TUNNEL_MTU = IPV4_MAX_TOTAL_LENGTH - IPIP_OVERHEAD;
/** Linux's `net_ratelimit()` for messages packets cause: a burst of 10 per 5 s, then a count of what was held back. */
const LOG_BURST = 10;
const LOG_INTERVAL_NS = 5_000_000_000n;

function isMulticast(address: number): boolean {
  return address >>> 28 === 0xe;
}

/** 0.0.0.0/8 and 127.0.0.0/8, which `ip_route_input_slow` refuses in either direction. */
function isZeroOrLoopback(address: number): boolean {
  const first = address >>> 24;
  return first === 0 || first === 127;
}

function defaultNow(): () => bigint {
  const epochOffset = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
  return () => epochOffset + process.hrtime.bigint();
}

function exactCopy(bytes: Buffer, length: number): Buffer {
  const copy = Buffer.allocUnsafe(length);
  bytes.copy(copy, 0, 0, length);
  return copy;
}

export class Dataplane {
  private readonly counters = new Counters();
  private readonly routes = new RouteTable();
  private readonly nodeIp: number;
  private readonly tunnelIp: number;
  private readonly subnetBroadcast: number;
  private readonly tunnelMtu: number;
  private readonly underlayMtu: number;
  private readonly allowList: ReadonlySet<number> | undefined;
  private readonly eth0: DevicePort;
  private readonly tunl0: DevicePort;
  private readonly ports = new Map<string, Port>();
  private readonly podsByName = new Map<string, PodPort>();
  private readonly podsByInterface = new Map<string, PodPort>();
  private readonly tunnelHeader: TunnelHeader;
  private readonly now: () => bigint;
  private readonly log: (line: string) => void;
  private taps: readonly TapSubscription[] = [];
  /** One event object for every tap: a capture of every interface makes several per packet. */
  private readonly tapEvent = new ReusedTapEvent(() => (this.tripTimeNs ??= this.now()));
  /**
   * One clock read per packet's trip through the node, shared by every tap of that trip (rx on cali, tx on tunl0,
   * tx on eth0 happen within the same call), so a capture adds at most one BigInt clock read per packet, not per hop.
   */
  private tripTimeNs: bigint | undefined;
  private localListeners: readonly ((packet: Buffer) => void)[] = [];
  /** The node's IP ID counter, shared by outer headers and its own packets (the vectors show consecutive IDs). */
  private nextIpId = Math.floor(Math.random() * 0x10000);
  private readonly view = new Ipv4View(Buffer.alloc(0));
  private readonly outer = new Ipv4View(Buffer.alloc(0));
  /** Anyone who can send to the node can make it log: `logPacket` keeps that to what the kernel would print. */
  private logWindowStart: bigint | undefined;
  private logsInWindow = 0;
  private logsSuppressed = 0;

  constructor(
    readonly config: NodeConfig,
    private readonly underlay: UnderlayTx,
    options: DataplaneOptions = {},
  ) {
    const { tunnelMtu } = config;
    if (!Number.isInteger(tunnelMtu) || tunnelMtu < MIN_MTU || tunnelMtu > MAX_TUNNEL_MTU) {
      throw new RangeError(`${config.name}: tunnel MTU ${tunnelMtu} is outside ${MIN_MTU}..${MAX_TUNNEL_MTU}`);
    }
    this.nodeIp = config.nodeIp.value;
    this.tunnelIp = config.tunnelAddress?.value ?? NONE;
    this.tunnelMtu = tunnelMtu;
    this.underlayMtu = tunnelMtu + IPIP_OVERHEAD;
    this.allowList =
      config.enforceIpipSourceAllowList === false ? undefined : new Set(config.clusterNodeIps.map((ip) => ip.value));
    this.tunnelHeader = { src: this.nodeIp, dst: 0, id: 0 };
    this.now = options.now ?? defaultNow();
    this.log = options.log ?? (() => {});

    this.eth0 = this.addPort<DevicePort>({
      kind: 'underlay',
      name: UNDERLAY_INTERFACE,
      stats: this.counters.interface(UNDERLAY_INTERFACE),
      taps: [],
    });
    this.tunl0 = this.addPort<DevicePort>({
      kind: 'tunnel',
      name: TUNNEL_INTERFACE,
      stats: this.counters.interface(TUNNEL_INTERFACE),
      taps: [],
    });
    for (const pod of config.pods) {
      if (this.ports.has(pod.hostInterface) || this.podsByName.has(pod.name)) {
        throw new Error(`${config.name}: pod ${pod.name} (${pod.hostInterface}) is not unique`);
      }
      const port = this.addPort<PodPort>({
        kind: 'pod',
        name: pod.hostInterface,
        stats: this.counters.interface(pod.hostInterface),
      taps: [],
        podName: pod.name,
        ip: pod.ip.value,
      });
      this.podsByName.set(pod.name, port);
      this.podsByInterface.set(port.name, port);
    }
    let connected: Route | undefined;
    for (const route of config.routes) {
      this.routes.add(route);
      if (connected === undefined && this.isConnectedSubnet(route)) connected = route;
    }
    this.subnetBroadcast = connected?.destination.last().value ?? LIMITED_BROADCAST;
  }

  /** Every route, in the order `ip route` prints them: made on each call, as the table keeps next hops only. */
  listRoutes(): Route[] {
    return this.routes.routes();
  }

  /** Host → pod over its cali veth; a pod not attached yet is a veth whose peer is down. */
  attachPod(podName: string, deliver: (packet: Buffer) => void): void {
    const port = this.podsByName.get(podName);
    if (port === undefined) throw new Error(`${this.config.name} has no pod ${podName}`);
    port.deliver = deliver;
  }

  /** Pod → host: received on the pod's cali interface. */
  fromPod(podName: string, packet: Buffer): void {
    this.counters.received++;
    this.tripTimeNs = undefined;
    const port = this.podsByName.get(podName);
    if (port === undefined) return this.drop('unknown-pod');
    this.receiveFromPod(port, packet);
  }

  /** Received on eth0 by the raw IPIP socket, outer header included. */
  fromUnderlay(packet: Buffer): void {
    this.counters.received++;
    this.tripTimeNs = undefined;
    this.receiveFromUnderlay(packet);
  }

  /**
   * A packet for the tests and the injection command: on `eth0` as if from the wire, on `tunl0` as if just
   * decapsulated (from no particular node), on a cali interface or pod name as if sent by that pod.
   */
  inject(interfaceName: string, packet: Buffer): void {
    this.counters.received++;
    this.tripTimeNs = undefined;
    if (interfaceName === UNDERLAY_INTERFACE) return this.receiveFromUnderlay(packet);
    if (interfaceName === TUNNEL_INTERFACE) return this.receiveOnTunnel(packet, 0, NONE, 0);
    const port = this.podsByInterface.get(interfaceName) ?? this.podsByName.get(interfaceName);
    if (port === undefined) return this.drop('unknown-interface');
    this.receiveFromPod(port, packet);
  }

  /**
   * The node's own stack sending `packet` (a complete IPv4 packet, sent with its own TTL and never decremented).
   * A source of 0.0.0.0 is filled in as the kernel does for an unbound socket: the route's source, which towards a
   * remote pod is the tunl0 address (rule 14).
   */
  sendFromNode(packet: Buffer): void {
    this.counters.originated++;
    this.tripTimeNs = undefined;
    const checked = new Ipv4View(packet);
    const invalid = checked.validate();
    if (invalid !== undefined) return this.drop(invalid);
    const own = new Ipv4View(Buffer.from(checked.packet));
    if (own.src === UNSPECIFIED) {
      const source = this.sourceTowards(own.dst);
      if (source !== undefined) setSource(own, source);
    }
    this.route(own, undefined, true, NONE);
  }

  /** Every packet the node's own stack takes in (echo replies for its pings included); valid during the call. */
  onLocal(listener: (packet: Buffer) => void): () => void {
    this.localListeners = [...this.localListeners, listener];
    return () => {
      this.localListeners = this.localListeners.filter((candidate) => candidate !== listener);
    };
  }

  /**
   * Calls `listener` for every packet seen on `interfaces` (default: every interface). The selection is made here,
   * before any event exists, so that a capture of eth0 costs the other interfaces' hops nothing.
   */
  onTap(listener: TapListener, interfaces?: Iterable<string>): () => void {
    const subscription: TapSubscription = { listener, interfaces: interfaces === undefined ? undefined : new Set(interfaces) };
    this.setTaps([...this.taps, subscription]);
    return () => this.setTaps(this.taps.filter((candidate) => candidate !== subscription));
  }

  /** Copy-on-write, so that a listener may unsubscribe while an event is being dispatched. */
  private setTaps(taps: readonly TapSubscription[]): void {
    this.taps = taps;
    for (const port of this.ports.values()) {
      port.taps = taps.filter(({ interfaces }) => interfaces === undefined || interfaces.has(port.name)).map(({ listener }) => listener);
    }
  }

  stats(): DataplaneStats {
    return this.counters.snapshot();
  }

  private addPort<P extends Port>(port: P): P {
    this.ports.set(port.name, port);
    return port;
  }

  /** eth0's connected subnet, whose directed broadcast the kernel's local table holds as a broadcast route. */
  private isConnectedSubnet(route: Route): boolean {
    return (
      route.kind === 'unicast' &&
      route.dev === UNDERLAY_INTERFACE &&
      route.gateway === undefined &&
      route.destination.length < 31 &&
      route.destination.contains(this.nodeIp)
    );
  }

  private receiveFromPod(port: PodPort, packet: Buffer): void {
    this.receive(port, packet);
    const view = this.view.attach(packet);
    const invalid = view.validate();
    if (invalid !== undefined) return this.drop(invalid, port);
    if (view.src !== port.ip) return this.drop('spoofed-source', port);
    this.route(view, port, false, NONE);
  }

  private receiveFromUnderlay(packet: Buffer): void {
    this.receive(this.eth0, packet);
    const outer = this.outer.attach(packet);
    const invalid = outer.validate();
    if (invalid !== undefined) return this.drop(invalid, this.eth0);
    if (outer.dst !== this.nodeIp) return this.drop('not-for-this-node', this.eth0);
    if (outer.protocol !== IP_PROTOCOL.IPIP) return this.drop('not-ipip', this.eth0);
    // The kernel reassembles before ipip_rcv; a raw socket hands over what it reassembled, so a piece here is junk.
    if (outer.isFragment) return this.drop('outer-fragment', this.eth0);
    const peer = outer.src;
    if (this.isMartianSource(peer)) return this.drop('martian-source', this.eth0);
    if (this.allowList !== undefined && !this.allowList.has(peer)) return this.drop('unknown-ipip-source', this.eth0);
    const end = outer.totalLength;
    const bounded = packet.length === end ? packet : packet.subarray(0, end);
    this.receiveOnTunnel(bounded, outer.headerLength, peer, (outer.dscp << 2) | outer.ecn);
  }

  /**
   * tunl0's receive half (ip_tunnel_rcv): `bytes[offset…]` is the inner packet, `peer` the outer source (NONE for an
   * injected one), `outerTos` the outer TOS byte for the RFC 6040 table (rule 10). The outer DSCP goes nowhere.
   */
  private receiveOnTunnel(bytes: Buffer, offset: number, peer: number, outerTos: number): void {
    const inner = this.view.attach(bytes, offset);
    const invalid = inner.validate();
    if (invalid !== undefined) return this.drop(invalid, this.tunl0);
    if (inner.protocol === IP_PROTOCOL.IPIP) return this.drop('nested-ipip', this.tunl0);
    const innerEcn = inner.ecn;
    const ecn = decapsulateEcn(outerTos & 3, innerEcn);
    if (ecn.kind === 'drop' || ecn.nonEctLogged) {
      this.logPacket(`ip_tunnel: non-ECT from ${ipv4ToString(peer)} with TOS=0x${outerTos.toString(16)}`);
    }
    if (ecn.kind === 'drop') return this.drop('ecn-non-ect-ce', this.tunl0);
    if (ecn.nonEctLogged) this.counters.event('non-ect-logged');

    // The pod gets its own bytes: the receive buffer belongs to the socket, and the eth0 tap showed it unchanged.
    const length = inner.totalLength;
    const packet = Buffer.allocUnsafe(length);
    bytes.copy(packet, 0, offset, offset + length);
    if (ecn.innerEcn !== innerEcn) this.view.attach(packet).markCongestionExperienced();
    this.receive(this.tunl0, packet);

    const view = this.view.attach(packet);
    if (peer !== NONE && !this.routesBackThrough(view.src, peer)) this.counters.event('asymmetric-inner-source');
    this.route(view, this.tunl0, true, peer);
  }

  /** True when replies to `source` would be tunnelled to `peer`: the usual case for pod traffic between nodes. */
  private routesBackThrough(source: number, peer: number): boolean {
    const route = this.routes.lookup(source);
    return route?.kind === 'unicast' && route.dev === TUNNEL_INTERFACE && route.gateway?.value === peer;
  }

  /**
   * The routing decision (ip_route_input + ip_forward, or ip_route_output for the node's own packets when `inbound`
   * is undefined). `view` is at offset 0 of its buffer; `owned` says the bytes are the dataplane's to change and
   * exactly `totalLength` long; `peer` is the outer source of a decapsulated packet.
   */
  private route(view: Ipv4View, inbound: Port | undefined, owned: boolean, peer: number): void {
    const dst = view.dst;
    if (inbound !== undefined && this.isMartianSource(view.src)) return this.drop('martian-source', inbound);
    // Local addresses win over every route, the blackholed block included (rule 13, 9b).
    if (this.isLocal(dst)) return this.deliverLocally(view, inbound);
    if (dst === LIMITED_BROADCAST || dst === this.subnetBroadcast || isMulticast(dst)) {
      return this.consume(view.packet);
    }
    if (isZeroOrLoopback(dst)) return this.drop('martian-destination', inbound);

    const route = this.routes.lookup(dst);
    if (route === undefined) return this.reject(view, inbound, 'no-route', NET_UNREACHABLE);
    // The kernel's ip_error() answers EINVAL, a blackhole, with nothing at all (rule 13).
    if (route.kind === 'blackhole') return this.drop('blackhole', inbound);
    const egress = this.ports.get(route.dev);
    if (egress === undefined) return this.drop('unknown-interface', inbound);
    const nextHop = route.gateway?.value ?? dst;
    if (egress.kind !== 'pod' && (nextHop === this.nodeIp || (egress === this.tunl0 && nextHop === peer))) {
      return this.drop('routing-loop', inbound);
    }

    const forwarding = inbound !== undefined;
    if (forwarding && view.ttl <= 1) return this.reject(view, inbound, 'ttl-expired', TTL_EXCEEDED);
    const mtu = this.mtuOf(egress);
    if (view.totalLength > mtu && view.dontFragment) {
      return this.reject(view, inbound, 'frag-needed', { kind: 'fragmentation-needed', nextHopMtu: mtu });
    }
    this.transmit(view, egress, nextHop, owned, forwarding);
  }

  private mtuOf(egress: Port): number {
    switch (egress.kind) {
      case 'tunnel':
        return this.tunnelMtu;
      case 'underlay':
        return this.underlayMtu;
      case 'pod':
        // A veth takes whatever the sending pod's MTU let through; the pod layer enforces that.
        return IPV4_MAX_TOTAL_LENGTH;
    }
  }

  /** Out of `egress`, TTL decremented when `forwarding` (the DF and TTL checks are behind us). */
  private transmit(view: Ipv4View, egress: Port, nextHop: number, owned: boolean, forwarding: boolean): void {
    if (egress.kind === 'pod') return this.deliverToPod(egress, view, owned, forwarding);
    const length = view.totalLength;
    const exact = view.buffer.length === length ? view.buffer : view.buffer.subarray(0, length);
    if (length <= this.mtuOf(egress)) {
      const sent =
        egress === this.tunl0
          ? this.sendEncapsulated(exact, nextHop, forwarding)
          : this.sendPlain(forwarding && !owned ? exactCopy(exact, length) : exact, nextHop, forwarding);
      return this.forwarded(sent);
    }
    // Rule 7: fragment the inner packet (never the outer one), each piece its own IPIP packet.
    const whole = owned ? exact : exactCopy(exact, length);
    if (forwarding) view.attach(whole).decrementTtl();
    const pieces = fragment(whole, this.mtuOf(egress));
    if (!pieces.ok) return this.drop(pieces.reason);
    let sent = true;
    for (const piece of pieces.value) {
      const pieceSent =
        egress === this.tunl0 ? this.sendEncapsulated(piece, nextHop, false) : this.sendPlain(piece, nextHop, false);
      sent &&= pieceSent;
    }
    this.forwarded(sent);
  }

  private forwarded(sent: boolean): void {
    if (sent) this.counters.forwarded++;
    else this.drop('tx-error');
  }

  /**
   * tunl0's transmit half (rules 1-6): outer header from wire's `encapsulate`, the node's next IP ID. When
   * forwarding, the decrement is applied after encapsulating, to the inner header and to the outer one that
   * inherited its TTL: the same bytes as decrement-then-encapsulate, without touching the sender's buffer.
   */
  private sendEncapsulated(inner: Buffer, gateway: number, forwarding: boolean): boolean {
    const packet = Buffer.allocUnsafe(IPIP_OVERHEAD + inner.length);
    this.tunnelHeader.dst = gateway;
    this.tunnelHeader.id = this.ipId();
    encapsulate(inner, this.tunnelHeader, packet, 0);
    if (forwarding) {
      this.view.attach(packet, IPIP_OVERHEAD).decrementTtl();
      this.view.attach(packet).decrementTtl();
    }
    this.tunl0.stats.txPackets++;
    this.tunl0.stats.txBytes += inner.length;
    if (this.isTapped(this.tunl0)) this.tap(this.tunl0, 'tx', packet.subarray(IPIP_OVERHEAD));
    return this.sendPlain(packet, gateway, false);
  }

  /** Out of eth0 as is, `packet` being exactly the bytes to send and, when `forwarding`, the dataplane's own. */
  private sendPlain(packet: Buffer, nextHop: number, forwarding: boolean): boolean {
    if (forwarding) this.view.attach(packet).decrementTtl();
    this.tap(this.eth0, 'tx', packet);
    try {
      this.underlay.send(packet, nextHop);
    } catch (error) {
      this.eth0.stats.txDropped++;
      this.logPacket(`${this.config.name}: underlay send to ${ipv4ToString(nextHop)} failed: ${String(error)}`);
      return false;
    }
    this.eth0.stats.txPackets++;
    this.eth0.stats.txBytes += packet.length;
    return true;
  }

  private deliverToPod(pod: PodPort, view: Ipv4View, owned: boolean, forwarding: boolean): void {
    const deliver = pod.deliver;
    if (deliver === undefined) {
      pod.stats.txDropped++;
      return this.drop('pod-not-attached');
    }
    const length = view.totalLength;
    const packet = owned ? view.buffer : exactCopy(view.buffer, length);
    if (forwarding) view.attach(packet).decrementTtl();
    this.tap(pod, 'tx', packet);
    try {
      deliver(packet);
    } catch (error) {
      pod.stats.txDropped++;
      this.logPacket(`${this.config.name}: delivery to ${pod.podName} failed: ${String(error)}`);
      return this.drop('tx-error');
    }
    pod.stats.txPackets++;
    pod.stats.txBytes += length;
    this.counters.delivered++;
  }

  /**
   * The node's own stack (ip_local_deliver): it answers echo requests, refuses UDP with port unreachable and other
   * protocols with protocol unreachable, runs no TCP and does not reassemble.
   */
  private deliverLocally(view: Ipv4View, inbound: Port | undefined): void {
    if (view.isFragment) return this.drop('fragment-to-node', inbound);
    const packet = view.packet;
    let answer: Buffer | undefined;
    switch (view.protocol) {
      case IP_PROTOCOL.ICMP: {
        const message = icmp.decode(view.payload);
        if (!message.ok) return this.drop(message.reason, inbound);
        if (message.value.kind === 'echo-request') answer = echoReply(view, message.value, this.ipId());
        break;
      }
      case IP_PROTOCOL.UDP: {
        const datagram = udp.decode(view.payload, { src: view.src, dst: view.dst });
        if (!datagram.ok) return this.drop(datagram.reason, inbound);
        answer = this.errorAbout(view, PORT_UNREACHABLE, view.dst);
        break;
      }
      case IP_PROTOCOL.TCP:
        return this.drop('tcp-to-node', inbound);
      default:
        answer = this.errorAbout(view, PROTOCOL_UNREACHABLE, view.dst);
    }
    this.consume(packet);
    if (answer !== undefined) this.originate(answer);
  }

  private consume(packet: Buffer): void {
    this.counters.consumed++;
    for (const listener of this.localListeners) {
      try {
        listener(packet);
      } catch (error) {
        this.logPacket(`${this.config.name}: local listener failed: ${String(error)}`);
      }
    }
  }

  /** Drops a packet the node was forwarding and tells its sender why; the node's own packets get no ICMP. */
  private reject(view: Ipv4View, inbound: Port | undefined, reason: DataplaneDropReason, error: NodeIcmpError): void {
    const answer = inbound === undefined ? undefined : this.errorAbout(view, error);
    this.drop(reason, inbound);
    if (answer !== undefined) this.originate(answer);
  }

  /**
   * The ICMP error about `offending`, unless `icmp_send()` would stay silent. Its source is the offending packet's
   * destination when that is one of the node's addresses, else the route-selected source towards its sender (rule 15).
   */
  private errorAbout(offending: Ipv4View, error: NodeIcmpError, localSource?: number): Buffer | undefined {
    if (!mayAnswerWithError(offending)) return undefined;
    const source = localSource ?? this.sourceTowards(offending.src);
    if (source === undefined) return undefined;
    return icmpErrorPacket(offending, error, source, this.ipId());
  }

  private originate(packet: Buffer): void {
    this.counters.originated++;
    this.route(new Ipv4View(packet), undefined, true, NONE);
  }

  /**
   * The source the kernel picks for a packet to `destination` (`fib_select` / `inet_select_addr`): a route's `src`,
   * else tunl0's address out of tunl0, else the node IP, the first global address of an address-less cali veth.
   */
  private sourceTowards(destination: number): number | undefined {
    if (this.isLocal(destination)) return destination;
    const route = this.routes.lookup(destination);
    if (route?.kind !== 'unicast') return undefined;
    return this.preferredSource(route);
  }

  private preferredSource(route: UnicastNextHop): number {
    if (route.source !== undefined) return route.source.value;
    return route.dev === TUNNEL_INTERFACE && this.tunnelIp !== NONE ? this.tunnelIp : this.nodeIp;
  }

  private isLocal(address: number): boolean {
    return address === this.nodeIp || address === this.tunnelIp;
  }

  /** `ip_route_input_slow` and `fib_validate_source`: no packet may come from these. */
  private isMartianSource(address: number): boolean {
    return (
      isZeroOrLoopback(address) ||
      isMulticast(address) ||
      address === LIMITED_BROADCAST ||
      address === this.subnetBroadcast ||
      this.isLocal(address)
    );
  }

  /** A line a packet caused, rate limited as `net_ratelimit()` does: a flood of such packets cannot flood the log. */
  private logPacket(line: string): void {
    const now = this.now();
    if (this.logWindowStart === undefined || now - this.logWindowStart >= LOG_INTERVAL_NS) {
      if (this.logsSuppressed > 0) this.log(`net_ratelimit: ${this.logsSuppressed} callbacks suppressed`);
      this.logWindowStart = now;
      this.logsInWindow = 0;
      this.logsSuppressed = 0;
    }
    if (this.logsInWindow < LOG_BURST) {
      this.logsInWindow++;
      this.log(line);
    } else {
      this.logsSuppressed++;
    }
  }

  private ipId(): number {
    this.nextIpId = (this.nextIpId + 1) & 0xffff;
    return this.nextIpId;
  }

  private receive(port: Port, packet: Buffer): void {
    port.stats.rxPackets++;
    port.stats.rxBytes += packet.length;
    this.tap(port, 'rx', packet);
  }

  private drop(reason: DataplaneDropReason, inbound?: Port): void {
    this.counters.drop(reason);
    if (inbound !== undefined) inbound.stats.rxDropped++;
  }

  private isTapped(port: Port): boolean {
    return port.taps.length > 0;
  }

  private tap(port: Port, direction: TapEvent['direction'], packet: Buffer): void {
    const listeners = port.taps;
    if (listeners.length === 0) return;
    const event = this.tapEvent;
    for (const listener of listeners) {
      // Set for each listener: one that calls back into the dataplane may have had the event reused meanwhile.
      event.interfaceName = port.name;
      event.direction = direction;
      event.packet = packet;
      try {
        listener(event);
      } catch (error) {
        this.logPacket(`${this.config.name}: tap listener failed: ${String(error)}`);
      }
    }
  }
}


/**
 * One node's forwarding engine: what the Linux kernel of a Calico node in IPIP mode does with a packet between its
 * pods' cali veths, tunl0 and eth0 (ip_route_input, ip_forward, ipip_rcv/ip_tunnel_xmit, icmp_send), with Felix's
 * two filters that matter here (pod anti-spoofing, the IPIP source allow-list). The vectors README's 17 rules are
 * the specification; the comments cite them.
 *
 * Re-entrancy: pod `deliver` callbacks, the underlay, taps and listeners may call back into the dataplane
 * synchronously. The two scratch views are therefore never read after any callback has run.
 */
import type { Ipv4Address } from '../../routing/address.js';
import type { Route } from '../../routing/route.js';
import { RouteTable } from '../../routing/table.js';
import { fragment } from '../../wire/fragment.js';
import { IPIP_OVERHEAD, encapsulate, type TunnelHeader } from '../../wire/ipip.js';
import { ipv4ToString } from '../../wire/ipv4-text.js';
import { IPV4_MAX_TOTAL_LENGTH, Ipv4View } from '../../wire/ipv4.js';
import { IPV4_MIN_MTU, IpIdCounter } from '../../wire/linux-defaults.js';
import type { UnderlayTx } from '../underlay/index.js';
import { Counters, type DataplaneDropReason, type DataplaneStats, type InterfaceStats } from '../counters.js';
import { TUNNEL_INTERFACE, UNDERLAY_INTERFACE } from '../interface-names.js';
import { LocalStack } from './local-stack.js';
import { LIMITED_BROADCAST, isMulticast, isZeroOrLoopback } from '../martians.js';
import { RateLimitedLog } from '../rate-limited-log.js';
import { NET_UNREACHABLE, TTL_EXCEEDED, type NodeIcmpError } from './reply-stack.js';
import { epochClock, TapHub, type TapListener, type TapPoint } from '../tap-hub.js';
import { decapsulateInner, refuseIpip, type IpipIngressPolicy } from '../tunnel-ingress.js';

export { TUNNEL_INTERFACE, UNDERLAY_INTERFACE } from '../interface-names.js';
export type { TapEvent } from '../tap-hub.js';

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

export type { UnderlayTx } from '../underlay/index.js';

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
} from '../counters.js';

interface DevicePort extends TapPoint {
  readonly kind: 'underlay' | 'tunnel';
  readonly stats: InterfaceStats;
}

interface PodPort extends TapPoint {
  readonly kind: 'pod';
  readonly stats: InterfaceStats;
  readonly podName: string;
  readonly ip: number;
  deliver?: (packet: Buffer) => void;
  /** Names the pod in the line a throwing `deliver` is logged with; made once, so that a delivery builds no string. */
  readonly deliveryFailing: string;
}

type Port = DevicePort | PodPort;

/**
 * What a send does to the TTL. Only a forwarded packet's is decremented, and once: the pieces of a fragmented packet
 * and an encapsulated packet's outer send get it already decremented.
 */
type TtlChange = 'decrement-ttl' | 'keep-ttl';

/** `inbound` undefined: the node's own packet, which keeps its TTL. */
function ttlChangeOf(inbound: Port | undefined): TtlChange {
  return inbound === undefined ? 'keep-ttl' : 'decrement-ttl';
}

/**
 * Whether a packet is its sender's buffer, which the dataplane copies before changing a byte. Only a pod's is: every
 * other one the dataplane made itself (a decapsulated copy, the node's own packets).
 */
function isBorrowed(inbound: Port | undefined): boolean {
  return inbound?.kind === 'pod';
}

/** Beyond this an encapsulated packet would not fit IPv4's 16-bit total length. */
const MAX_TUNNEL_MTU = IPV4_MAX_TOTAL_LENGTH - IPIP_OVERHEAD;

function exactCopy(bytes: Buffer, length: number): Buffer {
  const copy = Buffer.allocUnsafe(length);
  bytes.copy(copy, 0, 0, length);
  return copy;
}

export class Dataplane {
  private readonly counters = new Counters();
  private readonly routes = new RouteTable();
  private readonly nodeIp: number;
  private readonly subnetBroadcast: number;
  private readonly tunnelMtu: number;
  private readonly underlayMtu: number;
  private readonly ingress: IpipIngressPolicy;
  private readonly eth0: DevicePort;
  private readonly tunl0: DevicePort;
  private readonly ports = new Map<string, Port>();
  private readonly podsByName = new Map<string, PodPort>();
  private readonly podsByInterface = new Map<string, PodPort>();
  private readonly tunnelHeader: TunnelHeader;
  /** The node's IP ID counter, shared by outer headers and its own packets (the vectors show consecutive IDs). */
  private readonly ipIds = new IpIdCounter(Math.floor(Math.random() * 0x10000));
  private readonly log: RateLimitedLog;
  private readonly taps: TapHub;
  private readonly local: LocalStack;
  private readonly view = new Ipv4View(Buffer.alloc(0));
  private readonly outer = new Ipv4View(Buffer.alloc(0));

  constructor(
    readonly config: NodeConfig,
    private readonly underlay: UnderlayTx,
    options: DataplaneOptions = {},
  ) {
    const { tunnelMtu } = config;
    if (!Number.isInteger(tunnelMtu) || tunnelMtu < IPV4_MIN_MTU || tunnelMtu > MAX_TUNNEL_MTU) {
      throw new RangeError(`${config.name}: tunnel MTU ${tunnelMtu} is outside ${IPV4_MIN_MTU}..${MAX_TUNNEL_MTU}`);
    }
    this.nodeIp = config.nodeIp.value;
    this.tunnelMtu = tunnelMtu;
    this.underlayMtu = tunnelMtu + IPIP_OVERHEAD;
    this.ingress = {
      nodeIp: this.nodeIp,
      allowList:
        config.enforceIpipSourceAllowList === false ? undefined : new Set(config.clusterNodeIps.map((ip) => ip.value)),
      isMartianSource: (address) => this.isMartianSource(address),
    };
    this.tunnelHeader = { src: this.nodeIp, dst: 0, id: 0 };
    const now = options.now ?? epochClock();
    this.log = new RateLimitedLog(options.log ?? (() => {}), now);

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
        deliveryFailing: `${config.name}: delivery to ${pod.name}`,
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
    this.taps = new TapHub([...this.ports.values()], now, this.log, config.name);
    const addresses = { name: config.name, nodeIp: this.nodeIp, tunnelAddress: config.tunnelAddress?.value };
    this.local = new LocalStack(addresses, this.routes, this.ipIds, this.log);
  }

  /** The node's routes as BGP now makes them (the pods' and the node's own are among them, unchanged). */
  setRoutes(routes: Iterable<Route>): void {
    this.routes.sync(routes);
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
    this.beginTrip('received');
    const port = this.podsByName.get(podName);
    if (port === undefined) return this.drop('unknown-pod');
    this.receiveFromPod(port, packet);
  }

  /** Received on eth0 by the raw IPIP socket, outer header included. */
  fromUnderlay(packet: Buffer): void {
    this.beginTrip('received');
    this.receiveFromUnderlay(packet);
  }

  /**
   * A packet for the tests and the injection command: on `eth0` as if from the wire, on `tunl0` as if just
   * decapsulated (from no particular node), on a cali interface or pod name as if sent by that pod.
   */
  inject(interfaceName: string, packet: Buffer): void {
    this.beginTrip('received');
    if (interfaceName === UNDERLAY_INTERFACE) return this.receiveFromUnderlay(packet);
    // From no node: no outer source, and an outer TOS of 0 (Not-ECT), which leaves the inner ECN as it is.
    if (interfaceName === TUNNEL_INTERFACE) return this.receiveOnTunnel(packet, 0, undefined, 0);
    const port = this.podsByInterface.get(interfaceName) ?? this.podsByName.get(interfaceName);
    if (port === undefined) return this.drop('unknown-interface');
    this.receiveFromPod(port, packet);
  }

  /**
   * The node's own stack sending `packet` (a complete IPv4 packet, sent with its own TTL and never decremented), its
   * source filled in when it is 0.0.0.0 (`LocalStack.bindSource`).
   */
  sendFromNode(packet: Buffer): void {
    this.beginTrip('originated');
    const checked = new Ipv4View(packet);
    const invalid = checked.validate();
    if (invalid !== undefined) return this.drop(invalid);
    const own = new Ipv4View(Buffer.from(checked.packet));
    this.local.bindSource(own);
    this.route(own);
  }

  /** Every packet the node's own stack takes in (echo replies for its pings included); valid during the call. */
  onLocal(listener: (packet: Buffer) => void): () => void {
    return this.local.onPacket(listener);
  }

  /** Calls `listener` for every packet seen on `interfaces` (default: every interface); see `TapHub.subscribe`. */
  onTap(listener: TapListener, interfaces?: Iterable<string>): () => void {
    return this.taps.subscribe(listener, interfaces);
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
    this.route(view, port);
  }

  private receiveFromUnderlay(packet: Buffer): void {
    this.receive(this.eth0, packet);
    const outer = this.outer.attach(packet);
    const refused = refuseIpip(outer, this.ingress);
    if (refused !== undefined) return this.drop(refused, this.eth0);
    const end = outer.totalLength;
    const bounded = packet.length === end ? packet : packet.subarray(0, end);
    this.receiveOnTunnel(bounded, outer.headerLength, outer.src, outer.tos);
  }

  /**
   * tunl0's receive half (`decapsulateInner`), then the routing decision: `peer` is the outer source (undefined for
   * an injected packet), `outerTos` the outer TOS byte for the RFC 6040 table (rule 10).
   */
  private receiveOnTunnel(bytes: Buffer, offset: number, peer: number | undefined, outerTos: number): void {
    const packet = decapsulateInner(bytes, offset, peer, outerTos, this.view, this.log, this.counters);
    if (typeof packet === 'string') return this.drop(packet, this.tunl0);
    this.receive(this.tunl0, packet);
    const view = this.view.attach(packet);
    if (peer !== undefined && !this.routesBackThrough(view.src, peer)) this.counters.event('asymmetric-inner-source');
    this.route(view, this.tunl0, peer);
  }

  /** True when replies to `source` would be tunnelled to `peer`: the usual case for pod traffic between nodes. */
  private routesBackThrough(source: number, peer: number): boolean {
    const route = this.routes.lookup(source);
    return route?.kind === 'unicast' && route.dev === TUNNEL_INTERFACE && route.gateway?.value === peer;
  }

  /**
   * The routing decision: ip_route_input + ip_forward for a packet received on `inbound`, ip_route_output for the
   * node's own (no `inbound`). `peer` is the outer source of a decapsulated packet. `view` is at offset 0 of its
   * buffer; only a pod's packet is the sender's buffer (see `isBorrowed`), any other is the dataplane's to change
   * and exactly `totalLength` long.
   */
  private route(view: Ipv4View, inbound?: Port, peer?: number): void {
    const dst = view.dst;
    if (inbound !== undefined && this.isMartianSource(view.src)) return this.drop('martian-source', inbound);
    // Local addresses win over every route, the blackholed block included (rule 13, 9b).
    if (this.local.owns(dst)) return this.deliverLocally(view, inbound);
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
    this.transmit(view, inbound, egress, nextHop);
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

  /** Out of `egress`, TTL decremented when forwarding (the DF and TTL checks are behind us). */
  private transmit(view: Ipv4View, inbound: Port | undefined, egress: Port, nextHop: number): void {
    if (egress.kind === 'pod') return this.deliverToPod(egress, view, inbound);
    const length = view.totalLength;
    const exact = view.buffer.length === length ? view.buffer : view.buffer.subarray(0, length);
    if (length <= this.mtuOf(egress)) {
      // Encapsulating copies the packet anyway; a plain send decrements the TTL in place, never in a pod's buffer.
      const packet = egress === this.eth0 && isBorrowed(inbound) ? exactCopy(exact, length) : exact;
      return this.forwarded(this.sendOut(egress, packet, nextHop, ttlChangeOf(inbound)));
    }
    // Rule 7: fragment the inner packet (never the outer one), each piece its own IPIP packet.
    const whole = isBorrowed(inbound) ? exactCopy(exact, length) : exact;
    if (inbound !== undefined) view.attach(whole).decrementTtl();
    const pieces = fragment(whole, this.mtuOf(egress));
    if (!pieces.ok) return this.drop(pieces.reason);
    let sent = true;
    for (const piece of pieces.value) {
      const pieceSent = this.sendOut(egress, piece, nextHop, 'keep-ttl');
      sent &&= pieceSent;
    }
    this.forwarded(sent);
  }

  private forwarded(sent: boolean): void {
    if (sent) this.counters.forwarded++;
    else this.drop('tx-error');
  }

  private sendOut(egress: DevicePort, packet: Buffer, nextHop: number, ttl: TtlChange): boolean {
    return egress === this.tunl0 ? this.sendEncapsulated(packet, nextHop, ttl) : this.sendPlain(packet, nextHop, ttl);
  }

  /**
   * tunl0's transmit half (rules 1-6): outer header from wire's `encapsulate`, the node's next IP ID. A decrement is
   * applied after encapsulating, to the inner header and to the outer one that inherited its TTL: the same bytes as
   * decrement-then-encapsulate, without touching the sender's buffer.
   */
  private sendEncapsulated(inner: Buffer, gateway: number, ttl: TtlChange): boolean {
    const packet = Buffer.allocUnsafe(IPIP_OVERHEAD + inner.length);
    this.tunnelHeader.dst = gateway;
    this.tunnelHeader.id = this.ipIds.next();
    encapsulate(inner, this.tunnelHeader, packet, 0);
    if (ttl === 'decrement-ttl') {
      this.view.attach(packet, IPIP_OVERHEAD).decrementTtl();
      this.view.attach(packet).decrementTtl();
    }
    this.tunl0.stats.txPackets++;
    this.tunl0.stats.txBytes += inner.length;
    if (this.taps.isTapped(this.tunl0)) this.taps.emit(this.tunl0, 'tx', packet.subarray(IPIP_OVERHEAD));
    const sent = this.sendPlain(packet, gateway, 'keep-ttl');
    if (sent) this.counters.tunnelSent(gateway, packet.length);
    return sent;
  }

  /** Out of eth0 as is, `packet` being exactly the bytes to send and, when its TTL is to change, the dataplane's own. */
  private sendPlain(packet: Buffer, nextHop: number, ttl: TtlChange): boolean {
    if (ttl === 'decrement-ttl') this.view.attach(packet).decrementTtl();
    this.taps.emit(this.eth0, 'tx', packet);
    // Not `log.call`: the underlay takes the next hop too, and the line names it.
    try {
      this.underlay.send(packet, nextHop);
    } catch (error) {
      this.eth0.stats.txDropped++;
      this.log.failure(`${this.config.name}: underlay send to ${ipv4ToString(nextHop)}`, error);
      return false;
    }
    this.eth0.stats.txPackets++;
    this.eth0.stats.txBytes += packet.length;
    return true;
  }

  private deliverToPod(pod: PodPort, view: Ipv4View, inbound: Port | undefined): void {
    const deliver = pod.deliver;
    if (deliver === undefined) {
      pod.stats.txDropped++;
      return this.drop('pod-not-attached');
    }
    const length = view.totalLength;
    const packet = isBorrowed(inbound) ? exactCopy(view.buffer, length) : view.buffer;
    if (inbound !== undefined) view.attach(packet).decrementTtl();
    this.taps.emit(pod, 'tx', packet);
    if (!this.log.call(deliver, packet, pod.deliveryFailing)) {
      pod.stats.txDropped++;
      return this.drop('tx-error');
    }
    pod.stats.txPackets++;
    pod.stats.txBytes += length;
    this.counters.delivered++;
  }

  private deliverLocally(view: Ipv4View, inbound: Port | undefined): void {
    const delivery = this.local.deliver(view);
    if (!delivery.ok) return this.drop(delivery.reason, inbound);
    this.consume(view.packet);
    if (delivery.answer !== undefined) this.originate(delivery.answer);
  }

  private consume(packet: Buffer): void {
    this.counters.consumed++;
    this.local.takeIn(packet);
  }

  /** Drops a packet the node was forwarding and tells its sender why; the node's own packets get no ICMP. */
  private reject(view: Ipv4View, inbound: Port | undefined, reason: DataplaneDropReason, error: NodeIcmpError): void {
    const answer = inbound === undefined ? undefined : this.local.errorAbout(view, error);
    this.drop(reason, inbound);
    if (answer !== undefined) this.originate(answer);
  }

  /** An answer the node's stack made while handling a packet: part of that packet's trip. */
  private originate(packet: Buffer): void {
    this.counters.originated++;
    this.route(new Ipv4View(packet));
  }

  /** `ip_route_input_slow` and `fib_validate_source`: no packet may come from these. */
  private isMartianSource(address: number): boolean {
    return (
      isZeroOrLoopback(address) ||
      isMulticast(address) ||
      address === LIMITED_BROADCAST ||
      address === this.subnetBroadcast ||
      this.local.owns(address)
    );
  }

  /** Where every packet's trip through the node begins: counted once, and a new time for its taps. */
  private beginTrip(origin: 'received' | 'originated'): void {
    this.counters[origin]++;
    this.taps.beginTrip();
  }

  private receive(port: Port, packet: Buffer): void {
    port.stats.rxPackets++;
    port.stats.rxBytes += packet.length;
    this.taps.emit(port, 'rx', packet);
  }

  private drop(reason: DataplaneDropReason, inbound?: Port): void {
    this.counters.drop(reason);
    if (inbound !== undefined) inbound.stats.rxDropped++;
  }
}

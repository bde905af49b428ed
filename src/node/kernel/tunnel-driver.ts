/**
 * The kernel-backed node's tunl0 driver: the one part of a Calico node's data path this host's kernel cannot do (it
 * has no ipip module), done by the agent between a TUN device named tunl0 and the raw IPIP socket on eth0.
 *
 * - Out: the kernel routed a packet into tunl0 (`via NODE dev tunl0 onlink`), decremented its TTL if it forwarded
 *   it, fragmented or refused it at tunl0's MTU. A TUN device hands over the packet without the route's gateway, so
 *   the driver finds the remote node by longest-prefix match over the same tunnel routes, and encapsulates with the
 *   wire rules (outer TTL, DF and ECN from the inner header, the driver's IP IDs). It never touches the TTL again.
 * - In: IPIP from the raw socket goes through the same checks as in the userspace node (tunnel-ingress.ts), Felix's
 *   allow-list included, and the inner packet is written into tunl0 for the kernel to route and deliver.
 *
 * Counters and taps cover the two interfaces the driver sees (eth0's IPIP, tunl0); the kernel owns the rest.
 */
import type { Ipv4Address } from '../../routing/address.js';
import type { Route } from '../../routing/route.js';
import { RouteTable } from '../../routing/table.js';
import { IPIP_OVERHEAD, encapsulate, type TunnelHeader } from '../../wire/ipip.js';
import { ipv4ToString } from '../../wire/ipv4-text.js';
import { Ipv4View } from '../../wire/ipv4.js';
import { IpIdCounter } from '../../wire/linux-defaults.js';
import { Counters, type DataplaneDropReason, type DataplaneStats } from '../counters.js';
import type { UnderlayTx } from '../underlay/index.js';
import { TUNNEL_INTERFACE, UNDERLAY_INTERFACE } from '../interface-names.js';
import { LIMITED_BROADCAST, isMulticast, isZeroOrLoopback } from '../martians.js';
import { RateLimitedLog } from '../rate-limited-log.js';
import { epochClock, TapHub, type TapListener, type TapPoint } from '../tap-hub.js';
import { decapsulateInner, refuseIpip, type IpipIngressPolicy } from '../tunnel-ingress.js';

/** The TUN device: `send` writes one packet into the kernel as received on tunl0. */
export interface TunTx {
  send(packet: Buffer): void;
}

export interface TunnelDriverConfig {
  readonly name: string;
  readonly nodeIp: Ipv4Address;
  readonly tunnelMtu: number;
  /** The node's routes; the driver keeps those via tunl0, which say which node each remote block is behind. */
  readonly routes: Iterable<Route>;
  readonly clusterNodeIps: readonly Ipv4Address[];
  /** Apply Felix's allow-list (default true). */
  readonly enforceIpipSourceAllowList?: boolean;
}

export interface TunnelDriverOptions {
  now?: () => bigint;
  log?: (line: string) => void;
}

interface DevicePort extends TapPoint {
  readonly stats: ReturnType<Counters['interface']>;
}

/** The routes via tunl0 with a gateway: which node each remote block is behind. */
function tunnelRoutes(routes: Iterable<Route>): RouteTable {
  const table = new RouteTable();
  for (const route of routes) {
    if (route.kind === 'unicast' && route.dev === TUNNEL_INTERFACE && route.gateway !== undefined) table.add(route);
  }
  return table;
}

export class TunnelDriver {
  private readonly counters = new Counters();
  private routes = new RouteTable();
  private readonly nodeIp: number;
  private ingress: IpipIngressPolicy;
  private readonly eth0: DevicePort;
  private readonly tunl0: DevicePort;
  private readonly tunnelHeader: TunnelHeader;
  private readonly ipIds = new IpIdCounter(Math.floor(Math.random() * 0x10000));
  private readonly log: RateLimitedLog;
  private readonly taps: TapHub;
  private readonly view = new Ipv4View(Buffer.alloc(0));

  constructor(
    readonly config: TunnelDriverConfig,
    private readonly underlay: UnderlayTx,
    private readonly tun: TunTx,
    options: TunnelDriverOptions = {},
  ) {
    this.nodeIp = config.nodeIp.value;
    this.ingress = this.ingressPolicy(config.clusterNodeIps);
    this.routes = tunnelRoutes(config.routes);
    this.tunnelHeader = { src: this.nodeIp, dst: 0, id: 0 };
    const now = options.now ?? epochClock();
    this.log = new RateLimitedLog(options.log ?? (() => {}), now);
    this.eth0 = { name: UNDERLAY_INTERFACE, taps: [], stats: this.counters.interface(UNDERLAY_INTERFACE) };
    this.tunl0 = { name: TUNNEL_INTERFACE, taps: [], stats: this.counters.interface(TUNNEL_INTERFACE) };
    this.taps = new TapHub([this.eth0, this.tunl0], now, this.log, config.name);
  }

  /** After a reload: the routes and the nodes the spec now has; counters and taps carry on. */
  setRoutes(routes: Iterable<Route>, clusterNodeIps: readonly Ipv4Address[]): void {
    this.routes = tunnelRoutes(routes);
    this.ingress = this.ingressPolicy(clusterNodeIps);
  }

  /** The tunnel routes the driver encapsulates by, in `ip route` order. */
  listRoutes(): Route[] {
    return this.routes.routes();
  }

  /** A packet the kernel sent into tunl0: encapsulated towards the node its destination's block is behind. */
  fromTun(packet: Buffer): void {
    this.beginTrip();
    const view = this.view.attach(packet);
    this.tunl0.stats.txPackets++;
    this.tunl0.stats.txBytes += packet.length;
    this.taps.emit(this.tunl0, 'tx', packet);
    const invalid = view.validate();
    if (invalid !== undefined) return this.refuseFromKernel(invalid);
    const route = this.routes.lookup(view.dst);
    // A route via tunl0 that is not Calico's (a user's `ip route add … dev tunl0`): no node to tunnel to.
    if (route?.kind !== 'unicast' || route.gateway === undefined) return this.refuseFromKernel('no-route');
    const gateway = route.gateway.value;
    if (gateway === this.nodeIp) return this.refuseFromKernel('routing-loop');
    const length = view.totalLength;
    // The kernel enforces tunl0's MTU before a packet reaches us; a larger one means the device's MTU was raised.
    if (length > this.config.tunnelMtu) return this.refuseFromKernel('frag-needed');
    const inner = packet.length === length ? packet : packet.subarray(0, length);
    const outer = Buffer.allocUnsafe(IPIP_OVERHEAD + length);
    this.tunnelHeader.dst = gateway;
    this.tunnelHeader.id = this.ipIds.next();
    encapsulate(inner, this.tunnelHeader, outer, 0);
    this.taps.emit(this.eth0, 'tx', outer);
    try {
      this.underlay.send(outer, gateway);
    } catch (error) {
      this.eth0.stats.txDropped++;
      this.log.failure(`${this.config.name}: underlay send to ${ipv4ToString(gateway)}`, error);
      return this.drop('tx-error');
    }
    this.eth0.stats.txPackets++;
    this.eth0.stats.txBytes += outer.length;
    this.counters.tunnelSent(gateway, outer.length);
    this.counters.forwarded++;
  }

  /** Received on eth0 by the raw IPIP socket, outer header included: decapsulated into tunl0. */
  fromUnderlay(packet: Buffer): void {
    this.beginTrip();
    this.eth0.stats.rxPackets++;
    this.eth0.stats.rxBytes += packet.length;
    this.taps.emit(this.eth0, 'rx', packet);
    const outer = this.view.attach(packet);
    const refused = refuseIpip(outer, this.ingress);
    if (refused !== undefined) return this.drop(refused, this.eth0);
    const peer = outer.src;
    // The inner packet may claim no more than the outer one carries: bytes past the outer total length are padding.
    const end = outer.totalLength;
    const bounded = packet.length === end ? packet : packet.subarray(0, end);
    const inner = decapsulateInner(bounded, outer.headerLength, peer, outer.tos, this.view, this.log, this.counters);
    if (typeof inner === 'string') return this.drop(inner, this.tunl0);
    this.intoKernel(inner);
  }

  /**
   * A packet for the tests and the injection command: on eth0 as if from the wire, on tunl0 as if just decapsulated
   * (from no particular node). Every other interface is the kernel's: inject there with the real tools.
   */
  inject(interfaceName: string, packet: Buffer): void {
    if (interfaceName === UNDERLAY_INTERFACE) return this.fromUnderlay(packet);
    this.beginTrip();
    if (interfaceName !== TUNNEL_INTERFACE) return this.drop('unknown-interface');
    const inner = decapsulateInner(packet, 0, undefined, 0, this.view, this.log, this.counters);
    if (typeof inner === 'string') return this.drop(inner, this.tunl0);
    this.intoKernel(inner);
  }

  onTap(listener: TapListener, interfaces?: Iterable<string>): () => void {
    return this.taps.subscribe(listener, interfaces);
  }

  stats(): DataplaneStats {
    return this.counters.snapshot();
  }

  /** Into tunl0's receive queue: from here the kernel routes it (rp_filter, the cali /32s, the blackhole). */
  private intoKernel(packet: Buffer): void {
    this.tunl0.stats.rxPackets++;
    this.tunl0.stats.rxBytes += packet.length;
    this.taps.emit(this.tunl0, 'rx', packet);
    try {
      this.tun.send(packet);
    } catch (error) {
      this.tunl0.stats.rxDropped++;
      this.log.failure(`${this.config.name}: write to ${TUNNEL_INTERFACE}`, error);
      return this.drop('tx-error');
    }
    this.counters.delivered++;
  }

  private ingressPolicy(clusterNodeIps: readonly Ipv4Address[]): IpipIngressPolicy {
    return {
      nodeIp: this.nodeIp,
      allowList:
        this.config.enforceIpipSourceAllowList === false ? undefined : new Set(clusterNodeIps.map((ip) => ip.value)),
      // The kernel owns every other local address here: what reaches them never came through the tunnel.
      isMartianSource: (address) =>
        address === this.nodeIp || address === LIMITED_BROADCAST || isMulticast(address) || isZeroOrLoopback(address),
    };
  }

  private beginTrip(): void {
    this.counters.received++;
    this.taps.beginTrip();
  }

  /** A packet the kernel sent into tunl0 that goes no further: tunl0 failed to transmit it (tx_errors on ipip). */
  private refuseFromKernel(reason: DataplaneDropReason): void {
    this.counters.drop(reason);
    this.tunl0.stats.txDropped++;
  }

  private drop(reason: DataplaneDropReason, inbound?: DevicePort): void {
    this.counters.drop(reason);
    if (inbound !== undefined) inbound.stats.rxDropped++;
  }
}

/**
 * The dataplane's bookkeeping: `ip -s link`-style interface counters, one counter per drop reason, and the outcome
 * totals whose balance is the dataplane's accounting invariant:
 *
 *   received + originated === delivered + forwarded + consumed + dropped
 *
 * `received` counts packets entering the node (eth0 rx, a cali rx, `inject`); `originated` counts packets the node's
 * own stack builds (`sendFromNode`, echo replies, ICMP errors). Each of them ends exactly once: handed to a pod
 * (`delivered`), sent out of eth0, tunnelled or not (`forwarded`, once per packet however many fragments it became),
 * ended in the node's own stack (`consumed`), or dropped with one reason.
 */
import { ipv4ToString } from '../wire/ipv4-text.js';
import { DROP_REASONS } from '../wire/result.js';

/** Reasons of the node layer, after the wire layer's parse failures (which keep their own names). */
const NODE_DROP_REASONS = [
  /** eth0: the outer destination is not this node's IP (the raw socket sees the whole segment's IPIP). */
  'not-for-this-node',
  /** Felix's "Drop IPIP packets from non-Calico hosts" (`enforceIpipSourceAllowList`). */
  'unknown-ipip-source',
  /** Felix's per-workload rule: a pod may only send from its own address. */
  'spoofed-source',
  /** The kernel's input route refuses 0/8, 127/8, multicast and broadcast sources (`ip_route_input_slow`). */
  'martian-source',
  /** … and 0/8 or 127/8 destinations. */
  'martian-destination',
  /** `fromPod` named no configured pod. */
  'unknown-pod',
  /** `inject` named no interface of this node, or a route names a device the node does not have. */
  'unknown-interface',
  /** The route's cali interface belongs to a pod with no `attachPod` yet (a veth whose peer is down). */
  'pod-not-attached',
  /** Delivering to a pod or sending on the underlay threw. */
  'tx-error',
  /** A `blackhole` route: silence, no ICMP (vectors rule 13). */
  'blackhole',
  /** No route at all: ICMP 3/0 to the sender. */
  'no-route',
  /** TTL ≤ 1 on a packet to forward: ICMP 11/0 to the sender. */
  'ttl-expired',
  /** DF set and longer than the egress MTU: ICMP 3/4 to the sender (vectors rule 8). */
  'frag-needed',
  /** The next hop is this node itself, or a tunnelled packet would go straight back to the node it came from. */
  'routing-loop',
  /** The node's stack runs no TCP; the kernel would answer RST, ours counts and drops. */
  'tcp-to-node',
  /** The node's stack does not reassemble, so fragments addressed to the node end here. */
  'fragment-to-node',
] as const;

export const DATAPLANE_DROP_REASONS = [...DROP_REASONS, ...NODE_DROP_REASONS] as const;

export type DataplaneDropReason = (typeof DATAPLANE_DROP_REASONS)[number];

/** Things worth counting that are not outcomes: the packet carries on. */
export const DATAPLANE_EVENTS = [
  /** Accepted IPIP whose inner source does not route back through the outer source (vectors case 10). */
  'asymmetric-inner-source',
  /** Outer ECT over a Not-ECT inner packet: delivered, but the kernel logs "non-ECT from …" (vectors rule 10). */
  'non-ect-logged',
] as const;

export type DataplaneEvent = (typeof DATAPLANE_EVENTS)[number];

/**
 * `ip -s link` columns. Here `rxDropped` counts packets received on the interface that the node then dropped (for
 * tunl0 that includes packets refused during decapsulation, which the kernel counts as rx_errors without
 * rx_packets), and `txDropped` packets the interface failed to hand on.
 */
export interface InterfaceStats {
  rxPackets: number;
  rxBytes: number;
  rxDropped: number;
  txPackets: number;
  txBytes: number;
  txDropped: number;
}

/** IPIP to and from one peer node: outer packets and bytes, as eth0 carried them. */
export interface TunnelStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
}

export interface DataplaneStats {
  interfaces: Record<string, InterfaceStats>;
  /** By the peer's underlay address: the tunnels' share of eth0's counters (the lab page's rates). */
  tunnels: Record<string, TunnelStats>;
  drops: Record<DataplaneDropReason, number>;
  events: Record<DataplaneEvent, number>;
  received: number;
  originated: number;
  delivered: number;
  forwarded: number;
  consumed: number;
  /** The sum of `drops`. */
  dropped: number;
}

/** Packets in minus packets accounted for: 0 whenever the dataplane is idle. */
export function unaccounted(stats: DataplaneStats): number {
  return stats.received + stats.originated - (stats.delivered + stats.forwarded + stats.consumed + stats.dropped);
}

function zeroed<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((key) => [key, 0])) as Record<K, number>;
}

/** Mutable counters; the dataplane keeps a reference to each interface's object so the hot path never looks one up. */
export class Counters {
  received = 0;
  originated = 0;
  delivered = 0;
  forwarded = 0;
  consumed = 0;
  private readonly drops = zeroed(DATAPLANE_DROP_REASONS);
  private readonly events = zeroed(DATAPLANE_EVENTS);
  private readonly interfaces = new Map<string, InterfaceStats>();
  private readonly tunnels = new Map<number, TunnelStats>();

  interface(name: string): InterfaceStats {
    let stats = this.interfaces.get(name);
    if (stats === undefined) {
      stats = { rxPackets: 0, rxBytes: 0, rxDropped: 0, txPackets: 0, txBytes: 0, txDropped: 0 };
      this.interfaces.set(name, stats);
    }
    return stats;
  }

  private tunnel(peer: number): TunnelStats {
    let stats = this.tunnels.get(peer);
    if (stats === undefined) {
      stats = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0 };
      this.tunnels.set(peer, stats);
    }
    return stats;
  }

  /** An outer packet sent to `peer`. */
  tunnelSent(peer: number, bytes: number): void {
    const stats = this.tunnel(peer);
    stats.txPackets++;
    stats.txBytes += bytes;
  }

  /** An outer packet from `peer`, decapsulated. */
  tunnelReceived(peer: number, bytes: number): void {
    const stats = this.tunnel(peer);
    stats.rxPackets++;
    stats.rxBytes += bytes;
  }

  drop(reason: DataplaneDropReason): void {
    this.drops[reason]++;
  }

  event(name: DataplaneEvent): void {
    this.events[name]++;
  }

  snapshot(): DataplaneStats {
    const drops = { ...this.drops };
    return {
      interfaces: Object.fromEntries([...this.interfaces].map(([name, stats]) => [name, { ...stats }])),
      tunnels: Object.fromEntries([...this.tunnels].map(([peer, stats]) => [ipv4ToString(peer), { ...stats }])),
      drops,
      events: { ...this.events },
      received: this.received,
      originated: this.originated,
      delivered: this.delivered,
      forwarded: this.forwarded,
      consumed: this.consumed,
      dropped: Object.values<number>(drops).reduce((sum, count) => sum + count, 0),
    };
  }
}

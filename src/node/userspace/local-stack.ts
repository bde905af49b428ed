/**
 * The node's own IP stack, the part of the kernel that is neither forwarding nor the tunnel: the addresses the node
 * owns, what it answers to packets addressed to it (ip_local_deliver), the ICMP errors it sends (`icmp_send()`), and
 * the source address it picks for what it sends. It builds answers; the dataplane routes them.
 */
import type { RouteTable } from '../../routing/table.js';
import type { UnicastNextHop } from '../../routing/route.js';
import { icmp } from '../../wire/icmp.js';
import { IP_PROTOCOL, type Ipv4View } from '../../wire/ipv4.js';
import type { IpIdCounter } from '../../wire/linux-defaults.js';
import { udp } from '../../wire/udp.js';
import type { DataplaneDropReason } from '../counters.js';
import { TUNNEL_INTERFACE } from '../interface-names.js';
import type { RateLimitedLog } from '../rate-limited-log.js';
import {
  PORT_UNREACHABLE,
  PROTOCOL_UNREACHABLE,
  echoReply,
  icmpErrorPacket,
  mayAnswerWithError,
  setSource,
  type NodeIcmpError,
} from './reply-stack.js';

const UNSPECIFIED = 0;

export interface LocalAddresses {
  /** The node's name, for log lines. */
  readonly name: string;
  /** eth0's address. */
  readonly nodeIp: number;
  /** tunl0's /32, when it has one. */
  readonly tunnelAddress: number | undefined;
}

/** What the stack made of a packet addressed to the node: taken in, with the answer to send if any, or refused. */
export type LocalDelivery =
  | { readonly ok: true; readonly answer: Buffer | undefined }
  | { readonly ok: false; readonly reason: DataplaneDropReason };

// Frozen, so that the outcomes without an answer never allocate.
const TAKEN_SILENTLY: LocalDelivery = Object.freeze({ ok: true, answer: undefined });
const TCP_REFUSED: LocalDelivery = Object.freeze({ ok: false, reason: 'tcp-to-node' });
const FRAGMENT_REFUSED: LocalDelivery = Object.freeze({ ok: false, reason: 'fragment-to-node' });

type LocalListener = (packet: Buffer) => void;

export class LocalStack {
  private readonly nodeIp: number;
  /** The source of what the node sends out of tunl0: tunl0's address, or the node IP when tunl0 has none. */
  private readonly tunnelSource: number;
  private listeners: readonly LocalListener[] = [];
  private readonly listenerFailing: string;

  constructor(
    addresses: LocalAddresses,
    private readonly routes: RouteTable,
    /** Shared with the tunnel's outer headers: the vectors show one node's IDs consecutive across both. */
    private readonly ipIds: IpIdCounter,
    private readonly log: RateLimitedLog,
  ) {
    this.nodeIp = addresses.nodeIp;
    this.tunnelSource = addresses.tunnelAddress ?? addresses.nodeIp;
    this.listenerFailing = `${addresses.name}: local listener`;
  }

  owns(address: number): boolean {
    return address === this.nodeIp || address === this.tunnelSource;
  }

  /**
   * A source of 0.0.0.0 is filled in as the kernel does for an unbound socket: the route's source, which towards a
   * remote pod is the tunl0 address (rule 14).
   */
  bindSource(packet: Ipv4View): void {
    if (packet.src !== UNSPECIFIED) return;
    const source = this.sourceTowards(packet.dst);
    if (source !== undefined) setSource(packet, source);
  }

  /**
   * ip_local_deliver: the stack answers echo requests, refuses UDP with port unreachable and other protocols with
   * protocol unreachable, runs no TCP and does not reassemble.
   */
  deliver(view: Ipv4View): LocalDelivery {
    if (view.isFragment) return FRAGMENT_REFUSED;
    switch (view.protocol) {
      case IP_PROTOCOL.ICMP: {
        const message = icmp.decode(view.payload);
        if (!message.ok) return message;
        if (message.value.kind !== 'echo-request') return TAKEN_SILENTLY;
        return { ok: true, answer: echoReply(view, message.value, this.ipIds.next()) };
      }
      case IP_PROTOCOL.UDP: {
        const datagram = udp.decode(view.payload, { src: view.src, dst: view.dst });
        if (!datagram.ok) return datagram;
        return { ok: true, answer: this.errorAbout(view, PORT_UNREACHABLE, view.dst) };
      }
      case IP_PROTOCOL.TCP:
        return TCP_REFUSED;
      default:
        return { ok: true, answer: this.errorAbout(view, PROTOCOL_UNREACHABLE, view.dst) };
    }
  }

  /**
   * The ICMP error about `offending`, unless `icmp_send()` would stay silent. Its source is the offending packet's
   * destination when that is one of the node's addresses, else the route-selected source towards its sender (rule 15).
   */
  errorAbout(offending: Ipv4View, error: NodeIcmpError, localSource?: number): Buffer | undefined {
    if (!mayAnswerWithError(offending)) return undefined;
    const source = localSource ?? this.sourceTowards(offending.src);
    if (source === undefined) return undefined;
    return icmpErrorPacket(offending, error, source, this.ipIds.next());
  }

  /** Every packet the node's own stack takes in (echo replies for its pings included); valid during the call. */
  onPacket(listener: LocalListener): () => void {
    this.listeners = [...this.listeners, listener];
    return () => {
      this.listeners = this.listeners.filter((candidate) => candidate !== listener);
    };
  }

  /** Shows `packet`, taken in, to the listeners. */
  takeIn(packet: Buffer): void {
    for (const listener of this.listeners) this.log.call(listener, packet, this.listenerFailing);
  }

  /**
   * The source the kernel picks for a packet to `destination` (`fib_select` / `inet_select_addr`): a route's `src`,
   * else tunl0's address out of tunl0, else the node IP, the first global address of an address-less cali veth.
   */
  private sourceTowards(destination: number): number | undefined {
    if (this.owns(destination)) return destination;
    const route = this.routes.lookup(destination);
    if (route?.kind !== 'unicast') return undefined;
    return this.preferredSource(route);
  }

  private preferredSource(route: UnicastNextHop): number {
    if (route.source !== undefined) return route.source.value;
    return route.dev === TUNNEL_INTERFACE ? this.tunnelSource : this.nodeIp;
  }
}

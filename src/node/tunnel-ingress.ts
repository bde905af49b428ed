/**
 * What a Calico node does with an IPIP packet from eth0 up to the inner packet, in both dataplanes: the raw socket's
 * checks, Felix's allow-list ("Drop IPIP packets from non-Calico hosts") and tunl0's receive half (ipip_rcv,
 * ip_tunnel_rcv and its RFC 6040 ECN table, vectors rule 10). What happens to the inner packet next differs: the
 * userspace dataplane routes it itself, the kernel-backed one writes it into tunl0 for the kernel to route.
 */
import { ipv4ToString } from '../wire/ipv4-text.js';
import { decapsulateEcn } from '../wire/ipip.js';
import { IP_PROTOCOL, type Ipv4View } from '../wire/ipv4.js';
import type { Counters, DataplaneDropReason } from './counters.js';
import type { RateLimitedLog } from './rate-limited-log.js';

export interface IpipIngressPolicy {
  /** eth0's address: the raw socket sees every IPIP packet on the segment that reaches the container. */
  readonly nodeIp: number;
  /** The cluster's node addresses; undefined: accept IPIP from anyone, as the kernel alone does (rule 9). */
  readonly allowList: ReadonlySet<number> | undefined;
  /** `ip_route_input_slow` and `fib_validate_source`: sources no packet may come from. */
  isMartianSource(address: number): boolean;
}

/** Why an IPIP packet from eth0 (`outer`, at its buffer's offset 0) is refused before decapsulation, if it is. */
export function refuseIpip(outer: Ipv4View, policy: IpipIngressPolicy): DataplaneDropReason | undefined {
  const invalid = outer.validate();
  if (invalid !== undefined) return invalid;
  if (outer.dst !== policy.nodeIp) return 'not-for-this-node';
  if (outer.protocol !== IP_PROTOCOL.IPIP) return 'not-ipip';
  // The kernel reassembles before ipip_rcv; a raw socket hands over what it reassembled, so a piece here is junk.
  if (outer.isFragment) return 'outer-fragment';
  if (policy.isMartianSource(outer.src)) return 'martian-source';
  if (policy.allowList !== undefined && !policy.allowList.has(outer.src)) return 'unknown-ipip-source';
  return undefined;
}

/**
 * tunl0's receive half: `bytes[offset…]` is the inner packet, `peer` the outer source (undefined for an injected
 * one), `outerTos` the outer TOS byte. Returns the inner packet in a buffer of its own (the receive buffer belongs to
 * the socket, and the eth0 tap showed it unchanged), CE marked where the table says, or why it was dropped. The outer
 * DSCP goes nowhere. `view` is scratch, attached to the returned packet on success.
 */
export function decapsulateInner(
  bytes: Buffer,
  offset: number,
  peer: number | undefined,
  outerTos: number,
  view: Ipv4View,
  log: RateLimitedLog,
  counters: Counters,
): Buffer | DataplaneDropReason {
  const inner = view.attach(bytes, offset);
  const invalid = inner.validate();
  if (invalid !== undefined) return invalid;
  if (inner.protocol === IP_PROTOCOL.IPIP) return 'nested-ipip';
  const innerEcn = inner.ecn;
  const ecn = decapsulateEcn(outerTos & 3, innerEcn);
  // Only a received packet's outer ECN can drop or log: an injected packet's is Not-ECT, and it has no peer to name.
  if (peer !== undefined && (ecn.kind === 'drop' || ecn.nonEctLogged)) {
    log.write(`ip_tunnel: non-ECT from ${ipv4ToString(peer)} with TOS=0x${outerTos.toString(16)}`);
  }
  if (ecn.kind === 'drop') return 'ecn-non-ect-ce';
  if (ecn.nonEctLogged) counters.event('non-ect-logged');
  const length = inner.totalLength;
  const packet = Buffer.allocUnsafe(length);
  bytes.copy(packet, 0, offset, offset + length);
  view.attach(packet);
  if (ecn.innerEcn !== innerEcn) view.markCongestionExperienced();
  if (peer !== undefined) counters.tunnelReceived(peer, offset + length);
  return packet;
}

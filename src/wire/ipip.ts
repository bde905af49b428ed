/**
 * IPv4-in-IPv4 (RFC 2003) as Linux's catch-all `tunl0` (`ttl inherit`, `tos 0`, `nopmtudisc`) does it, which is what
 * Calico's IPIP mode runs on; the rules are the vectors README's 1-6 and 9-10.
 */
import { ECN, IP_PROTOCOL, IPV4_MAX_TOTAL_LENGTH, IPV4_MIN_HEADER_LENGTH, Ipv4View } from './ipv4.js';
import { dropped, parsed, type Parsed } from './result.js';

/** The outer header never carries options, so the tunnel costs exactly this much MTU. */
export const IPIP_OVERHEAD = IPV4_MIN_HEADER_LENGTH;

export interface TunnelHeader {
  src: number;
  dst: number;
  /** A fresh ID per outer packet (the caller's counter): the kernel never copies the inner one. */
  id: number;
}

/**
 * Outer ECN on encapsulation (`INET_ECN_encapsulate()`, RFC 6040 §4.1 normal mode): copied, except that CE becomes
 * ECT(0) so congestion marked before the tunnel is not counted again by the decapsulator.
 */
export function encapsulationEcn(innerEcn: number): number {
  return innerEcn === ECN.CE ? ECN.ECT0 : innerEcn;
}

// Encapsulation writes through these instead of allocating a view per packet; nothing here re-enters.
const innerScratch = new Ipv4View(Buffer.alloc(0));
const outerScratch = new Ipv4View(Buffer.alloc(0));

/**
 * Prepends the outer header to `inner`, an IPv4 packet ready to leave (already TTL-decremented, fragmented to fit).
 * Outer: IHL 5, protocol 4, TTL = inner TTL, DSCP 0, ECN per `encapsulationEcn`, DF = inner DF, never MF or an
 * offset, the given ID and a valid checksum.
 *
 * `inner` is exactly the packet's bytes. Without `out` the result is a new Buffer. With `out` it is written at
 * `out[offset…]` without allocating, and the number of bytes written is returned; `inner` may already sit at
 * `out[offset + 20…]` (headroom left by the caller), where the copy leaves it as it is.
 */
export function encapsulate(inner: Buffer, header: TunnelHeader): Buffer;
export function encapsulate(inner: Buffer, header: TunnelHeader, out: Buffer, offset?: number): number;
export function encapsulate(inner: Buffer, header: TunnelHeader, out?: Buffer, offset = 0): Buffer | number {
  const totalLength = IPIP_OVERHEAD + inner.length;
  if (inner.length < IPV4_MIN_HEADER_LENGTH) throw new RangeError(`inner packet of ${inner.length} bytes`);
  if (totalLength > IPV4_MAX_TOTAL_LENGTH) throw new RangeError(`outer packet of ${totalLength} bytes`);
  const target = out ?? Buffer.allocUnsafe(totalLength);
  if (target.length - offset < totalLength) throw new RangeError(`${totalLength} bytes do not fit the output buffer`);

  const innerView = innerScratch.attach(inner);
  const outer = outerScratch.attach(target, offset);
  outer.version = 4;
  outer.ihl = IPIP_OVERHEAD / 4;
  outer.dscp = 0;
  outer.ecn = encapsulationEcn(innerView.ecn);
  outer.totalLength = totalLength;
  outer.identification = header.id;
  outer.reservedFlag = false;
  outer.dontFragment = innerView.dontFragment;
  outer.moreFragments = false;
  outer.fragmentOffset = 0;
  outer.ttl = innerView.ttl;
  outer.protocol = IP_PROTOCOL.IPIP;
  outer.src = header.src;
  outer.dst = header.dst;
  outer.fillChecksum();
  target.set(inner, offset + IPIP_OVERHEAD);
  return out === undefined ? target : totalLength;
}

/**
 * One cell of the decapsulation ECN table (Linux `__INET_ECN_decapsulate()`). It follows RFC 6040 §4.2 (figure 4)
 * except in one cell: an ECT(1) outer over an ECT(0) inner leaves ECT(0), where RFC 6040 would write ECT(1).
 * `nonEctLogged` marks the cells where the kernel logs "non-ECT from … with TOS=…" (outer ECT, inner Not-ECT) and
 * still delivers; it logs the same line for the drop (outer CE, inner Not-ECT) and counts a frame error.
 */
export type EcnDecapsulation = { kind: 'ok'; innerEcn: number; nonEctLogged: boolean } | { kind: 'drop' };

const ECN_DROP: EcnDecapsulation = Object.freeze({ kind: 'drop' });

function ecnCell(outerEcn: number, innerEcn: number): EcnDecapsulation {
  if (innerEcn === ECN.NOT_ECT) {
    if (outerEcn === ECN.CE) return ECN_DROP;
    return { kind: 'ok', innerEcn, nonEctLogged: outerEcn !== ECN.NOT_ECT };
  }
  return { kind: 'ok', innerEcn: outerEcn === ECN.CE ? ECN.CE : innerEcn, nonEctLogged: false };
}

// All 16 answers built once: decapsulation consults this per packet.
const ECN_TABLE: readonly EcnDecapsulation[] = Array.from({ length: 16 }, (_, cell) =>
  Object.freeze(ecnCell(cell >> 2, cell & 3)),
);

export function decapsulateEcn(outerEcn: number, innerEcn: number): EcnDecapsulation {
  return ECN_TABLE[((outerEcn & 3) << 2) | (innerEcn & 3)];
}

export interface Decapsulated {
  outer: Ipv4View;
  /** The inner packet, inside the outer buffer; its `packet` getter gives exactly its bytes. */
  inner: Ipv4View;
  /** The kernel would log "non-ECT from <outer src> with TOS=<outer TOS>" for this packet. */
  nonEctLogged: boolean;
}

/**
 * Validates an IPIP packet and its inner IPv4 packet and applies the ECN table: outer CE sets CE on an ECT inner
 * packet (in place, with its checksum updated), and drops a Not-ECT one ('ecn-non-ect-ce'). The outer DSCP, TTL, DF
 * and ID play no part, and any outer source is accepted: the peer check is Felix's, not the kernel's.
 *
 * Outer fragments are refused ('outer-fragment'): the kernel reassembles before the tunnel sees them, so the node
 * does too and passes the joined packet.
 */
export function decapsulate(bytes: Buffer): Parsed<Decapsulated> {
  const checkedOuter = Ipv4View.check(bytes);
  if (!checkedOuter.ok) return checkedOuter;
  const outer = checkedOuter.value;
  if (outer.protocol !== IP_PROTOCOL.IPIP) return dropped('not-ipip');
  if (outer.isFragment) return dropped('outer-fragment');

  const checkedInner = Ipv4View.check(outer.payload);
  if (!checkedInner.ok) return checkedInner;
  const inner = checkedInner.value;
  if (inner.protocol === IP_PROTOCOL.IPIP) return dropped('nested-ipip');

  const ecn = decapsulateEcn(outer.ecn, inner.ecn);
  if (ecn.kind === 'drop') return dropped('ecn-non-ect-ce');
  if (ecn.innerEcn === ECN.CE && inner.ecn !== ECN.CE) inner.markCongestionExperienced();
  return parsed({ outer, inner, nonEctLogged: ecn.nonEctLogged });
}

/**
 * IPv4 (RFC 791) at two levels, as smoltcp's `wire` does it: `Ipv4View`, a checked zero-copy view for the per-packet
 * path, and `ipv4.encode`/`decode`/`encodingLength` over the plain `Ipv4Packet` for building and inspecting packets.
 * The codec writes and reads through the view, so every field's position and width is defined once, below.
 *
 * `ip-packet` is not used: it rejects IHL > 5 and leaves the checksum to the caller, and options plus checksums are
 * exactly what this layer must get right.
 */
import { internetChecksum, updateChecksum } from './checksum.js';
import { paddedHeaderLength } from './options.js';
import { checkedView, parsed, type DropReason, type Parsed } from './result.js';

/** Byte offsets of the fixed header fields (RFC 791 §3.1). */
export const IPV4_FIELD = {
  versionIhl: 0,
  tos: 1,
  totalLength: 2,
  identification: 4,
  flagsFragmentOffset: 6,
  ttl: 8,
  protocol: 9,
  headerChecksum: 10,
  src: 12,
  dst: 16,
} as const;

export const IPV4_MIN_HEADER_LENGTH = 20;
export const IPV4_MAX_HEADER_LENGTH = 60;
export const IPV4_MAX_TOTAL_LENGTH = 0xffff;

export const IP_PROTOCOL = { ICMP: 1, IPIP: 4, TCP: 6, UDP: 17 } as const;

/** The two low bits of the TOS byte (RFC 3168 §5). */
export const ECN = { NOT_ECT: 0, ECT1: 1, ECT0: 2, CE: 3 } as const;

const ECN_MASK = 0x03;
const DSCP_SHIFT = 2;

/** The TOS byte is the DSCP (RFC 2474, its high six bits) followed by the ECN field (RFC 3168, its low two). */
export function tosOf(dscp: number, ecn: number): number {
  return ((dscp << DSCP_SHIFT) | (ecn & ECN_MASK)) & 0xff;
}
export function dscpOf(tos: number): number {
  return (tos & 0xff) >> DSCP_SHIFT;
}
export function ecnOf(tos: number): number {
  return tos & ECN_MASK;
}

const FLAG_RESERVED = 0x8000;
const FLAG_DONT_FRAGMENT = 0x4000;
const FLAG_MORE_FRAGMENTS = 0x2000;
const FRAGMENT_OFFSET_MASK = 0x1fff;
/** The fragment offset field counts 8-byte units. */
export const FRAGMENT_UNIT = 8;

/**
 * A view over one IPv4 packet at `buffer[offset…]`. Construct it directly only over bytes you are writing; untrusted
 * bytes go through `Ipv4View.check` (or `attach(…).validate()` to reuse one view without allocating), after which
 * every getter stays inside the buffer.
 *
 * Setters write only their own field: callers that change header fields call `fillChecksum()` afterwards, except for
 * `decrementTtl()` and `markCongestionExperienced()`, which update the checksum incrementally as routers do.
 * Values are truncated to the field's width.
 */
export class Ipv4View {
  constructor(
    public buffer: Buffer,
    public offset = 0,
  ) {}

  static check(buffer: Buffer, offset = 0): Parsed<Ipv4View> {
    return checkedView(new Ipv4View(buffer, offset));
  }

  attach(buffer: Buffer, offset = 0): this {
    this.buffer = buffer;
    this.offset = offset;
    return this;
  }

  /** Bytes after `totalLength` (link-layer padding) are allowed and ignored, as the kernel trims them. */
  validate(): DropReason | undefined {
    const available = this.buffer.length - this.offset;
    if (available < 1) return 'truncated';
    if (this.version !== 4) return 'not-ipv4';
    if (this.ihl < 5) return 'bad-ihl';
    if (available < Math.max(IPV4_MIN_HEADER_LENGTH, this.headerLength)) return 'truncated';
    const totalLength = this.totalLength;
    if (totalLength < this.headerLength || totalLength > available) return 'total-length-mismatch';
    if (!this.verifyChecksum()) return 'bad-checksum';
    return undefined;
  }

  get version(): number {
    return this.buffer[this.offset + IPV4_FIELD.versionIhl] >> 4;
  }
  set version(value: number) {
    this.setBits(IPV4_FIELD.versionIhl, 0xf0, value << 4);
  }

  /** Header length in 32-bit words, 5..15. */
  get ihl(): number {
    return this.buffer[this.offset + IPV4_FIELD.versionIhl] & 0x0f;
  }
  set ihl(value: number) {
    this.setBits(IPV4_FIELD.versionIhl, 0x0f, value);
  }

  get headerLength(): number {
    return this.ihl * 4;
  }

  /** The whole TOS byte, DSCP and ECN together, as a socket's IP_TOS and `icmp_send()` see it. */
  get tos(): number {
    return this.buffer[this.offset + IPV4_FIELD.tos];
  }
  set tos(value: number) {
    this.buffer[this.offset + IPV4_FIELD.tos] = value;
  }

  get dscp(): number {
    return dscpOf(this.tos);
  }
  set dscp(value: number) {
    this.tos = tosOf(value, this.ecn);
  }

  get ecn(): number {
    return ecnOf(this.tos);
  }
  set ecn(value: number) {
    this.tos = tosOf(this.dscp, value);
  }

  get totalLength(): number {
    return this.buffer.readUInt16BE(this.offset + IPV4_FIELD.totalLength);
  }
  set totalLength(value: number) {
    this.buffer.writeUInt16BE(value & 0xffff, this.offset + IPV4_FIELD.totalLength);
  }

  get identification(): number {
    return this.buffer.readUInt16BE(this.offset + IPV4_FIELD.identification);
  }
  set identification(value: number) {
    this.buffer.writeUInt16BE(value & 0xffff, this.offset + IPV4_FIELD.identification);
  }

  get reservedFlag(): boolean {
    return (this.flagsFragmentOffset & FLAG_RESERVED) !== 0;
  }
  set reservedFlag(on: boolean) {
    this.setFlag(FLAG_RESERVED, on);
  }

  get dontFragment(): boolean {
    return (this.flagsFragmentOffset & FLAG_DONT_FRAGMENT) !== 0;
  }
  set dontFragment(on: boolean) {
    this.setFlag(FLAG_DONT_FRAGMENT, on);
  }

  get moreFragments(): boolean {
    return (this.flagsFragmentOffset & FLAG_MORE_FRAGMENTS) !== 0;
  }
  set moreFragments(on: boolean) {
    this.setFlag(FLAG_MORE_FRAGMENTS, on);
  }

  /** The raw field, in 8-byte units as on the wire; see `fragmentByteOffset`. */
  get fragmentOffset(): number {
    return this.flagsFragmentOffset & FRAGMENT_OFFSET_MASK;
  }
  set fragmentOffset(units: number) {
    this.flagsFragmentOffset = (this.flagsFragmentOffset & ~FRAGMENT_OFFSET_MASK) | (units & FRAGMENT_OFFSET_MASK);
  }

  get fragmentByteOffset(): number {
    return this.fragmentOffset * FRAGMENT_UNIT;
  }

  /** True for every piece of a fragmented datagram, first and last included. */
  get isFragment(): boolean {
    return (this.flagsFragmentOffset & (FLAG_MORE_FRAGMENTS | FRAGMENT_OFFSET_MASK)) !== 0;
  }

  get ttl(): number {
    return this.buffer[this.offset + IPV4_FIELD.ttl];
  }
  set ttl(value: number) {
    this.buffer[this.offset + IPV4_FIELD.ttl] = value;
  }

  get protocol(): number {
    return this.buffer[this.offset + IPV4_FIELD.protocol];
  }
  set protocol(value: number) {
    this.buffer[this.offset + IPV4_FIELD.protocol] = value;
  }

  get headerChecksum(): number {
    return this.buffer.readUInt16BE(this.offset + IPV4_FIELD.headerChecksum);
  }
  set headerChecksum(value: number) {
    this.buffer.writeUInt16BE(value & 0xffff, this.offset + IPV4_FIELD.headerChecksum);
  }

  get src(): number {
    return this.buffer.readUInt32BE(this.offset + IPV4_FIELD.src);
  }
  set src(address: number) {
    this.buffer.writeUInt32BE(address >>> 0, this.offset + IPV4_FIELD.src);
  }

  get dst(): number {
    return this.buffer.readUInt32BE(this.offset + IPV4_FIELD.dst);
  }
  set dst(address: number) {
    this.buffer.writeUInt32BE(address >>> 0, this.offset + IPV4_FIELD.dst);
  }

  /** Option bytes between the fixed header and the payload (aliases the buffer). */
  get options(): Buffer {
    return this.buffer.subarray(this.offset + IPV4_MIN_HEADER_LENGTH, this.offset + this.headerLength);
  }

  /** The header as a slice (aliases the buffer). */
  get header(): Buffer {
    return this.buffer.subarray(this.offset, this.offset + this.headerLength);
  }

  /** The payload up to `totalLength`, link padding excluded (aliases the buffer). */
  get payload(): Buffer {
    return this.buffer.subarray(this.offset + this.headerLength, this.offset + this.totalLength);
  }

  /** The whole packet, header and payload, up to `totalLength` (aliases the buffer). */
  get packet(): Buffer {
    return this.buffer.subarray(this.offset, this.offset + this.totalLength);
  }

  verifyChecksum(): boolean {
    return internetChecksum(this.buffer, this.offset, this.offset + this.headerLength) === 0;
  }

  fillChecksum(): void {
    this.headerChecksum = 0;
    this.headerChecksum = internetChecksum(this.buffer, this.offset, this.offset + this.headerLength);
  }

  /** The forwarding decrement; the caller has already refused TTL ≤ 1, so a TTL of 0 here is a bug. */
  decrementTtl(): void {
    const ttl = this.ttl;
    if (ttl === 0) throw new RangeError('decrementTtl on a packet with TTL 0');
    const protocol = this.protocol;
    this.ttl = ttl - 1;
    this.headerChecksum = updateChecksum(this.headerChecksum, (ttl << 8) | protocol, ((ttl - 1) << 8) | protocol);
  }

  /** Sets ECN to CE, as a congested router or an RFC 6040 decapsulator does (Linux `IP_ECN_set_ce`). */
  markCongestionExperienced(): void {
    const before = this.buffer.readUInt16BE(this.offset + IPV4_FIELD.versionIhl);
    this.ecn = ECN.CE;
    const after = this.buffer.readUInt16BE(this.offset + IPV4_FIELD.versionIhl);
    this.headerChecksum = updateChecksum(this.headerChecksum, before, after);
  }

  toPacket(): DecodedIpv4Packet {
    return {
      version: 4,
      ihl: this.ihl,
      dscp: this.dscp,
      ecn: this.ecn,
      totalLength: this.totalLength,
      identification: this.identification,
      reservedFlag: this.reservedFlag,
      dontFragment: this.dontFragment,
      moreFragments: this.moreFragments,
      fragmentOffset: this.fragmentByteOffset,
      ttl: this.ttl,
      protocol: this.protocol,
      headerChecksum: this.headerChecksum,
      src: this.src,
      dst: this.dst,
      options: this.options,
      payload: this.payload,
    };
  }

  private get flagsFragmentOffset(): number {
    return this.buffer.readUInt16BE(this.offset + IPV4_FIELD.flagsFragmentOffset);
  }
  private set flagsFragmentOffset(value: number) {
    this.buffer.writeUInt16BE(value & 0xffff, this.offset + IPV4_FIELD.flagsFragmentOffset);
  }

  private setFlag(mask: number, on: boolean): void {
    const word = this.flagsFragmentOffset;
    this.flagsFragmentOffset = on ? word | mask : word & ~mask;
  }

  private setBits(field: number, mask: number, value: number): void {
    const at = this.offset + field;
    this.buffer[at] = (this.buffer[at] & ~mask) | (value & mask);
  }
}

/** An IPv4 packet to build. Omitted fields are 0/false/empty; the length, IHL and checksum are derived. */
export interface Ipv4Packet {
  dscp?: number;
  ecn?: number;
  identification: number;
  reservedFlag?: boolean;
  dontFragment?: boolean;
  moreFragments?: boolean;
  /** In bytes (a multiple of 8), unlike the view's raw field. */
  fragmentOffset?: number;
  ttl: number;
  protocol: number;
  src: number;
  dst: number;
  /** Raw option bytes, never interpreted; encode pads them with zeros (End of Option List) to a 32-bit boundary. */
  options?: Buffer;
  payload: Buffer;
}

/** Every header field as received; `options` and `payload` alias the decoded buffer. */
export interface DecodedIpv4Packet extends Required<Ipv4Packet> {
  version: 4;
  ihl: number;
  totalLength: number;
  headerChecksum: number;
}

function headerLengthFor(packet: Ipv4Packet): number {
  return paddedHeaderLength('IPv4', IPV4_MIN_HEADER_LENGTH, IPV4_MAX_HEADER_LENGTH, packet.options?.length ?? 0);
}

function encodingLength(packet: Ipv4Packet): number {
  return headerLengthFor(packet) + packet.payload.length;
}

function encode(packet: Ipv4Packet): Buffer {
  const headerLength = headerLengthFor(packet);
  const totalLength = headerLength + packet.payload.length;
  if (totalLength > IPV4_MAX_TOTAL_LENGTH) throw new RangeError(`IPv4 packet of ${totalLength} bytes`);
  const fragmentOffset = packet.fragmentOffset ?? 0;
  if (fragmentOffset % FRAGMENT_UNIT !== 0 || fragmentOffset / FRAGMENT_UNIT > FRAGMENT_OFFSET_MASK) {
    throw new RangeError(`fragment offset ${fragmentOffset} is not a multiple of 8 below 65536`);
  }
  const out = Buffer.alloc(totalLength);
  const view = new Ipv4View(out);
  view.version = 4;
  view.ihl = headerLength / 4;
  view.dscp = packet.dscp ?? 0;
  view.ecn = packet.ecn ?? 0;
  view.totalLength = totalLength;
  view.identification = packet.identification;
  view.reservedFlag = packet.reservedFlag ?? false;
  view.dontFragment = packet.dontFragment ?? false;
  view.moreFragments = packet.moreFragments ?? false;
  view.fragmentOffset = fragmentOffset / FRAGMENT_UNIT;
  view.ttl = packet.ttl;
  view.protocol = packet.protocol;
  view.src = packet.src;
  view.dst = packet.dst;
  packet.options?.copy(out, IPV4_MIN_HEADER_LENGTH);
  packet.payload.copy(out, headerLength);
  view.fillChecksum();
  return out;
}

function decode(bytes: Buffer): Parsed<DecodedIpv4Packet> {
  const checked = Ipv4View.check(bytes);
  return checked.ok ? parsed(checked.value.toPacket()) : checked;
}

/** The plain-object codec (mafintosh style): `encode` computes the checksum, `decode` verifies it. */
export const ipv4 = { encode, decode, encodingLength };

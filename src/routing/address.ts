/**
 * Immutable IPv4 addresses and prefixes, in the spirit of Go's net/netip: values, not mutable objects,
 * with `contains` and `masked`. The uint32 form is what the hot path and the wire layer use.
 */

const DOTTED_QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export class Ipv4Address {
  private constructor(readonly value: number) {}

  static fromUint32(value: number): Ipv4Address {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
      throw new RangeError(`not a 32-bit address: ${value}`);
    }
    return new Ipv4Address(value >>> 0);
  }

  /** Returns undefined for anything but a canonical dotted quad (no leading zeros, each octet 0..255). */
  static tryParse(text: string): Ipv4Address | undefined {
    const match = DOTTED_QUAD.exec(text);
    if (!match) return undefined;
    let value = 0;
    for (let i = 1; i <= 4; i++) {
      const octet = match[i];
      if (octet.length > 1 && octet.startsWith('0')) return undefined;
      const n = Number(octet);
      if (n > 255) return undefined;
      value = value * 256 + n;
    }
    return new Ipv4Address(value);
  }

  static parse(text: string): Ipv4Address {
    const address = Ipv4Address.tryParse(text);
    if (!address) throw new SyntaxError(`not an IPv4 address: ${JSON.stringify(text)}`);
    return address;
  }

  equals(other: Ipv4Address): boolean {
    return this.value === other.value;
  }

  compare(other: Ipv4Address): number {
    return this.value - other.value;
  }

  /** The address `delta` places further on, e.g. the n-th address of a block. */
  add(delta: number): Ipv4Address {
    return Ipv4Address.fromUint32(this.value + delta);
  }

  octets(): [number, number, number, number] {
    const v = this.value;
    return [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
  }

  toString(): string {
    return this.octets().join('.');
  }

  toJSON(): string {
    return this.toString();
  }
}

/** The netmask of a prefix length as uint32; a shift by 32 is a no-op in JS, so /0 is special. */
export function maskOf(length: number): number {
  return length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
}

/**
 * The address is kept as a number, not an Ipv4Address: an agent holds a prefix for every Calico block of the cluster
 * (100,000 in a large one), and an address object inside each cost nearly as much as the prefix itself.
 */
export class Ipv4Prefix {
  private constructor(
    /** The address as int32 (`value | 0`): a uint32 above 2^31 would be boxed in a heap number of its own. */
    private readonly bits: number,
    readonly length: number,
  ) {}

  static of(address: Ipv4Address, length: number): Ipv4Prefix {
    if (!Number.isInteger(length) || length < 0 || length > 32) {
      throw new RangeError(`prefix length must be 0..32, got ${length}`);
    }
    return new Ipv4Prefix(address.value | 0, length);
  }

  /** Accepts `a.b.c.d/len`, and a bare address as a /32 (as `ip route` prints host routes). */
  static tryParse(text: string): Ipv4Prefix | undefined {
    const slash = text.indexOf('/');
    const address = Ipv4Address.tryParse(slash < 0 ? text : text.slice(0, slash));
    if (!address) return undefined;
    if (slash < 0) return new Ipv4Prefix(address.value | 0, 32);
    const lengthText = text.slice(slash + 1);
    // Like netip.ParsePrefix: a length is canonical decimal too, so `/08` is as wrong as `08.1.2.3`.
    if (!/^(0|[1-9]\d?)$/.test(lengthText)) return undefined;
    const length = Number(lengthText);
    return length <= 32 ? new Ipv4Prefix(address.value | 0, length) : undefined;
  }

  static parse(text: string): Ipv4Prefix {
    const prefix = Ipv4Prefix.tryParse(text);
    if (!prefix) throw new SyntaxError(`not an IPv4 prefix: ${JSON.stringify(text)}`);
    return prefix;
  }

  /** The address as written, host bits included. */
  get address(): Ipv4Address {
    return Ipv4Address.fromUint32(this.addressValue);
  }

  /** `address.value` without building the address: the uint32 that sorting and lookups want. */
  get addressValue(): number {
    return this.bits >>> 0;
  }

  get mask(): number {
    return maskOf(this.length);
  }

  get netmask(): Ipv4Address {
    return Ipv4Address.fromUint32(this.mask);
  }

  /** The number of addresses the prefix covers (2^32 for /0, so a plain number, not uint32). */
  get size(): number {
    return 2 ** (32 - this.length);
  }

  /** The canonical form, with host bits cleared. */
  masked(): Ipv4Prefix {
    const bits = this.bits & this.mask;
    return bits === this.bits ? this : new Ipv4Prefix(bits, this.length);
  }

  isMasked(): boolean {
    return (this.bits & this.mask) === this.bits;
  }

  first(): Ipv4Address {
    return Ipv4Address.fromUint32((this.bits & this.mask) >>> 0);
  }

  last(): Ipv4Address {
    return Ipv4Address.fromUint32((this.bits | ~this.mask) >>> 0);
  }

  /** Takes a uint32 or its int32 view alike: only the bits count. */
  contains(address: Ipv4Address | number): boolean {
    const value = typeof address === 'number' ? address : address.value;
    return ((value ^ this.bits) & this.mask) === 0;
  }

  overlaps(other: Ipv4Prefix): boolean {
    return ((this.bits ^ other.bits) & maskOf(Math.min(this.length, other.length))) === 0;
  }

  equals(other: Ipv4Prefix): boolean {
    return this.length === other.length && this.bits === other.bits;
  }

  toString(): string {
    return `${this.address}/${this.length}`;
  }

  toJSON(): string {
    return this.toString();
  }
}

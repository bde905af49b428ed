/**
 * UDP (RFC 768) with the pseudo-header checksum: `UdpView`, a checked zero-copy view, and the `udp` codec that reads
 * and writes through it, so the field table below is the only place a field's position is written.
 */
import { internetChecksum, pseudoHeaderSum, updateChecksumWord32 } from './checksum.js';
import { IP_PROTOCOL } from './ipv4.js';
import { IpPayloadView } from './payload-view.js';
import { checkedView, dropped, parsed, type DropReason, type Parsed } from './result.js';

/** Byte offsets of the header fields (RFC 768). */
export const UDP_FIELD = { srcPort: 0, dstPort: 2, length: 4, checksum: 6 } as const;
export const UDP_HEADER_LENGTH = 8;
const UDP_MAX_LENGTH = 0xffff;

/** A checksum field of 0 means the sender computed none (RFC 768). */
const NO_CHECKSUM = 0;

/** The IPv4 addresses the UDP/TCP checksum covers. */
export interface PseudoHeader {
  src: number;
  dst: number;
}

/** A view over one UDP datagram, the IP payload at `buffer[offset, end)`; see `IpPayloadView` for when to check. */
export class UdpView extends IpPayloadView {
  static check(buffer: Buffer, offset = 0, end = buffer.length): Parsed<UdpView> {
    return checkedView(new UdpView(buffer, offset, end));
  }

  /** The header is there and the length field covers it and no more than there is; the checksum is not checked. */
  validate(): DropReason | undefined {
    if (this.byteLength < UDP_HEADER_LENGTH) return 'truncated';
    const length = this.length;
    if (length < UDP_HEADER_LENGTH || length > this.byteLength) return 'bad-udp-length';
    return undefined;
  }

  get srcPort(): number {
    return this.read16(UDP_FIELD.srcPort);
  }
  set srcPort(value: number) {
    this.write16(UDP_FIELD.srcPort, value);
  }

  get dstPort(): number {
    return this.read16(UDP_FIELD.dstPort);
  }
  set dstPort(value: number) {
    this.write16(UDP_FIELD.dstPort, value);
  }

  /** Header and payload; bytes after it in the IP payload are not the datagram's. */
  get length(): number {
    return this.read16(UDP_FIELD.length);
  }
  set length(value: number) {
    this.write16(UDP_FIELD.length, value);
  }

  get checksum(): number {
    return this.read16(UDP_FIELD.checksum);
  }
  set checksum(value: number) {
    this.write16(UDP_FIELD.checksum, value);
  }

  /** The payload up to the length field's end (aliases the buffer). */
  get payload(): Buffer {
    return this.buffer.subarray(this.offset + UDP_HEADER_LENGTH, this.offset + this.length);
  }

  /** True when the datagram carries no checksum, as RFC 768 lets a sender choose. */
  verifyChecksum({ src, dst }: PseudoHeader): boolean {
    return this.checksum === NO_CHECKSUM || this.computeChecksum(src, dst) === 0;
  }

  /** Always computes one, as Linux does. */
  fillChecksum({ src, dst }: PseudoHeader): void {
    this.checksum = 0;
    this.storeComputed(this.computeChecksum(src, dst));
  }

  /** Keeps the checksum valid after an address of its pseudo-header changed (RFC 1624); "no checksum" stays so. */
  updateChecksumForAddress(before: number, after: number): void {
    const checksum = this.checksum;
    if (checksum !== NO_CHECKSUM) this.storeComputed(updateChecksumWord32(checksum, before, after));
  }

  toDatagram(): DecodedUdpDatagram {
    return {
      srcPort: this.srcPort,
      dstPort: this.dstPort,
      length: this.length,
      checksum: this.checksum,
      payload: this.payload,
    };
  }

  /** A computed 0 goes out as 0xffff, the same sum in ones' complement, because 0 in the field means "none". */
  private storeComputed(checksum: number): void {
    this.checksum = checksum === NO_CHECKSUM ? 0xffff : checksum;
  }

  private computeChecksum(src: number, dst: number): number {
    const length = this.length;
    const end = this.offset + length;
    return internetChecksum(this.buffer, this.offset, end, pseudoHeaderSum(src, dst, IP_PROTOCOL.UDP, length));
  }
}

export interface UdpDatagram {
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

/** Every header field as received; `checksum` 0 means the sender sent none. `payload` aliases the input. */
export interface DecodedUdpDatagram extends UdpDatagram {
  length: number;
  checksum: number;
}

function encodingLength(datagram: UdpDatagram): number {
  return UDP_HEADER_LENGTH + datagram.payload.length;
}

function encode(datagram: UdpDatagram, pseudoHeader: PseudoHeader): Buffer {
  const length = encodingLength(datagram);
  if (length > UDP_MAX_LENGTH) throw new RangeError(`UDP datagram of ${length} bytes`);
  const out = Buffer.alloc(length);
  const view = new UdpView(out);
  view.srcPort = datagram.srcPort;
  view.dstPort = datagram.dstPort;
  view.length = length;
  datagram.payload.copy(out, UDP_HEADER_LENGTH);
  view.fillChecksum(pseudoHeader);
  return out;
}

/** Decodes the IP payload `bytes`; anything after the UDP length field's end is ignored. */
function decode(bytes: Buffer, pseudoHeader: PseudoHeader): Parsed<DecodedUdpDatagram> {
  const checked = UdpView.check(bytes);
  if (!checked.ok) return checked;
  if (!checked.value.verifyChecksum(pseudoHeader)) return dropped('bad-udp-checksum');
  return parsed(checked.value.toDatagram());
}

export const udp = { encode, decode, encodingLength };

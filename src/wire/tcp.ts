/**
 * TCP segments (RFC 9293 §3.1) with the pseudo-header checksum: `TcpView`, a checked zero-copy view, the `tcp` codec
 * that reads and writes through it, and the options a Linux host exchanges (`tcpOptions`). Options stay bytes in the
 * segment codec; each field's position is written once, in the tables below.
 */
import { internetChecksum, pseudoHeaderSum, updateChecksumWord32 } from './checksum.js';
import { IP_PROTOCOL } from './ipv4.js';
import { OPTION_END, OPTION_NOP, forEachOption, paddedHeaderLength } from './options.js';
import { IpPayloadView } from './payload-view.js';
import { checkedView, dropped, parsed, type DropReason, type Parsed } from './result.js';
import type { PseudoHeader } from './udp.js';

/** Byte offsets of the fixed header fields (RFC 9293 §3.1). */
export const TCP_FIELD = {
  srcPort: 0,
  dstPort: 2,
  sequence: 4,
  acknowledgment: 8,
  dataOffsetReserved: 12,
  flags: 13,
  window: 14,
  checksum: 16,
  urgentPointer: 18,
} as const;
export const TCP_MIN_HEADER_LENGTH = 20;
const TCP_MAX_HEADER_LENGTH = 60;

/** Bits of the flags byte; combine with `|`. */
export const TCP_FLAG = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
} as const;

/**
 * A view over one TCP segment, the whole IP payload at `buffer[offset, end)` (TCP has no length field of its own);
 * see `IpPayloadView` for when to check.
 */
export class TcpView extends IpPayloadView {
  static check(buffer: Buffer, offset = 0, end = buffer.length): Parsed<TcpView> {
    return checkedView(new TcpView(buffer, offset, end));
  }

  /** The fixed header is there and the data offset points inside the segment; the checksum is not checked. */
  validate(): DropReason | undefined {
    if (this.byteLength < TCP_MIN_HEADER_LENGTH) return 'truncated';
    const headerLength = this.headerLength;
    if (headerLength < TCP_MIN_HEADER_LENGTH || headerLength > this.byteLength) return 'bad-data-offset';
    return undefined;
  }

  get srcPort(): number {
    return this.read16(TCP_FIELD.srcPort);
  }
  set srcPort(value: number) {
    this.write16(TCP_FIELD.srcPort, value);
  }

  get dstPort(): number {
    return this.read16(TCP_FIELD.dstPort);
  }
  set dstPort(value: number) {
    this.write16(TCP_FIELD.dstPort, value);
  }

  get sequence(): number {
    return this.read32(TCP_FIELD.sequence);
  }
  set sequence(value: number) {
    this.write32(TCP_FIELD.sequence, value);
  }

  get acknowledgment(): number {
    return this.read32(TCP_FIELD.acknowledgment);
  }
  set acknowledgment(value: number) {
    this.write32(TCP_FIELD.acknowledgment, value);
  }

  /** Header length in 32-bit words. */
  get dataOffset(): number {
    return this.buffer[this.offset + TCP_FIELD.dataOffsetReserved] >> 4;
  }
  set dataOffset(words: number) {
    this.setBits(TCP_FIELD.dataOffsetReserved, 0xf0, words << 4);
  }

  /** The low nibble of byte 12 (reserved bits; the historic NS flag is its lowest bit). */
  get reserved(): number {
    return this.buffer[this.offset + TCP_FIELD.dataOffsetReserved] & 0x0f;
  }
  set reserved(value: number) {
    this.setBits(TCP_FIELD.dataOffsetReserved, 0x0f, value);
  }

  get headerLength(): number {
    return this.dataOffset * 4;
  }

  get flags(): number {
    return this.buffer[this.offset + TCP_FIELD.flags];
  }
  set flags(value: number) {
    this.buffer[this.offset + TCP_FIELD.flags] = value;
  }

  get window(): number {
    return this.read16(TCP_FIELD.window);
  }
  set window(value: number) {
    this.write16(TCP_FIELD.window, value);
  }

  get checksum(): number {
    return this.read16(TCP_FIELD.checksum);
  }
  set checksum(value: number) {
    this.write16(TCP_FIELD.checksum, value);
  }

  get urgentPointer(): number {
    return this.read16(TCP_FIELD.urgentPointer);
  }
  set urgentPointer(value: number) {
    this.write16(TCP_FIELD.urgentPointer, value);
  }

  /** Option bytes between the fixed header and the payload (aliases the buffer). */
  get options(): Buffer {
    return this.buffer.subarray(this.offset + TCP_MIN_HEADER_LENGTH, this.offset + this.headerLength);
  }

  /** Everything after the header (aliases the buffer). */
  get payload(): Buffer {
    return this.buffer.subarray(this.offset + this.headerLength, this.end);
  }

  verifyChecksum({ src, dst }: PseudoHeader): boolean {
    return this.computeChecksum(src, dst) === 0;
  }

  fillChecksum({ src, dst }: PseudoHeader): void {
    this.checksum = 0;
    this.checksum = this.computeChecksum(src, dst);
  }

  /** Keeps the checksum valid after an address of its pseudo-header changed (RFC 1624). */
  updateChecksumForAddress(before: number, after: number): void {
    this.checksum = updateChecksumWord32(this.checksum, before, after);
  }

  toSegment(): DecodedTcpSegment {
    return {
      srcPort: this.srcPort,
      dstPort: this.dstPort,
      sequence: this.sequence,
      acknowledgment: this.acknowledgment,
      dataOffset: this.dataOffset,
      reserved: this.reserved,
      flags: this.flags,
      window: this.window,
      checksum: this.checksum,
      urgentPointer: this.urgentPointer,
      options: this.options,
      payload: this.payload,
    };
  }

  private computeChecksum(src: number, dst: number): number {
    const sum = pseudoHeaderSum(src, dst, IP_PROTOCOL.TCP, this.byteLength);
    return internetChecksum(this.buffer, this.offset, this.end, sum);
  }

  private setBits(field: number, mask: number, value: number): void {
    const at = this.offset + field;
    this.buffer[at] = (this.buffer[at] & ~mask) | (value & mask);
  }
}

export interface TcpSegment {
  srcPort: number;
  dstPort: number;
  sequence: number;
  acknowledgment: number;
  /** The low nibble of byte 12 (reserved bits; the historic NS flag is its lowest bit). */
  reserved?: number;
  flags: number;
  window: number;
  urgentPointer?: number;
  /** Raw option bytes; encode pads them with zeros (End of Option List) to a 32-bit boundary. */
  options?: Buffer;
  payload: Buffer;
}

/** Every header field as received; `options` and `payload` alias the input. */
export interface DecodedTcpSegment extends Required<TcpSegment> {
  /** Header length in 32-bit words. */
  dataOffset: number;
  checksum: number;
}

function headerLengthFor(segment: TcpSegment): number {
  return paddedHeaderLength('TCP', TCP_MIN_HEADER_LENGTH, TCP_MAX_HEADER_LENGTH, segment.options?.length ?? 0);
}

function encodingLength(segment: TcpSegment): number {
  return headerLengthFor(segment) + segment.payload.length;
}

function encode(segment: TcpSegment, pseudoHeader: PseudoHeader): Buffer {
  const headerLength = headerLengthFor(segment);
  const out = Buffer.alloc(headerLength + segment.payload.length);
  const view = new TcpView(out);
  view.srcPort = segment.srcPort;
  view.dstPort = segment.dstPort;
  view.sequence = segment.sequence;
  view.acknowledgment = segment.acknowledgment;
  view.dataOffset = headerLength / 4;
  view.reserved = segment.reserved ?? 0;
  view.flags = segment.flags;
  view.window = segment.window;
  view.urgentPointer = segment.urgentPointer ?? 0;
  segment.options?.copy(out, TCP_MIN_HEADER_LENGTH);
  segment.payload.copy(out, headerLength);
  view.fillChecksum(pseudoHeader);
  return out;
}

/** Decodes the IP payload `bytes`, all of which is the segment. */
function decode(bytes: Buffer, pseudoHeader: PseudoHeader): Parsed<DecodedTcpSegment> {
  const checked = TcpView.check(bytes);
  if (!checked.ok) return checked;
  if (!checked.value.verifyChecksum(pseudoHeader)) return dropped('bad-tcp-checksum');
  return parsed(checked.value.toSegment());
}

export const tcp = { encode, decode, encodingLength };

/** Option kinds (RFC 9293 §3.2, RFC 7323 §2-3). */
export const TCP_OPTION = {
  END: OPTION_END,
  NOP: OPTION_NOP,
  MSS: 2,
  WINDOW_SCALE: 3,
  TIMESTAMP: 8,
} as const;

/** Each option's own length byte, kind and length included. */
const OPTION_LENGTH = { MSS: 4, WINDOW_SCALE: 3, TIMESTAMP: 10 } as const;
/** Where an option's value starts, after its kind and length bytes; a timestamp's echo follows its value. */
const OPTION_VALUE_AT = 2;
const TIMESTAMP_ECHO_AT = 6;

/**
 * The room each option takes in a Linux segment, NOP padding included (`TCPOLEN_*_ALIGNED`): what the MSS a sender
 * may fill shrinks by.
 */
export const TCP_OPTION_SPACE = { MSS: 4, TIMESTAMP: 12, WINDOW_SCALE: 4 } as const;

/** The options a Linux host with SACK off sends and takes; each is absent when the segment lacks it. */
export interface TcpOptions {
  mss?: number;
  /** The shift count as sent; RFC 7323 §2.3's clamp to 14 is the receiver's business. */
  windowScale?: number;
  timestamp?: { value: number; echo: number };
}

/** The Maximum Segment Size option's value, or undefined when absent (or after a malformed option). */
export function tcpMss(options: Buffer): number | undefined {
  let mss: number | undefined;
  forEachOption(options, 0, options.length, (kind, at, length) => {
    if (kind !== TCP_OPTION.MSS || length !== OPTION_LENGTH.MSS) return true;
    mss = options.readUInt16BE(at + OPTION_VALUE_AT);
    return false;
  });
  return mss;
}

/** A malformed option ends the list and what came before it counts, as `forEachOption` walks it. */
function decodeOptions(options: Buffer): TcpOptions {
  const decoded: TcpOptions = { mss: tcpMss(options) };
  forEachOption(options, 0, options.length, (kind, at, length) => {
    if (kind === TCP_OPTION.WINDOW_SCALE && length === OPTION_LENGTH.WINDOW_SCALE) {
      decoded.windowScale = options[at + OPTION_VALUE_AT];
    }
    if (kind === TCP_OPTION.TIMESTAMP && length === OPTION_LENGTH.TIMESTAMP) {
      decoded.timestamp = {
        value: options.readUInt32BE(at + OPTION_VALUE_AT),
        echo: options.readUInt32BE(at + TIMESTAMP_ECHO_AT),
      };
    }
  });
  return decoded;
}

function optionsEncodingLength(options: TcpOptions): number {
  return (
    (options.mss === undefined ? 0 : TCP_OPTION_SPACE.MSS) +
    (options.timestamp === undefined ? 0 : TCP_OPTION_SPACE.TIMESTAMP) +
    (options.windowScale === undefined ? 0 : TCP_OPTION_SPACE.WINDOW_SCALE)
  );
}

/** In `tcp_options_write()`'s order and padding with SACK off: MSS, then NOP NOP timestamp, then NOP window scale. */
function encodeOptions(options: TcpOptions): Buffer {
  const out = Buffer.alloc(optionsEncodingLength(options));
  let next = 0;
  /** Writes NOPs up to the option's aligned space, then its kind and length; returns where its value goes. */
  const place = (kind: number, length: number, space: number): number => {
    const at = next + space - length;
    out.fill(TCP_OPTION.NOP, next, at);
    out[at] = kind;
    out[at + 1] = length;
    next += space;
    return at;
  };
  if (options.mss !== undefined) {
    const at = place(TCP_OPTION.MSS, OPTION_LENGTH.MSS, TCP_OPTION_SPACE.MSS);
    out.writeUInt16BE(options.mss, at + OPTION_VALUE_AT);
  }
  if (options.timestamp !== undefined) {
    const at = place(TCP_OPTION.TIMESTAMP, OPTION_LENGTH.TIMESTAMP, TCP_OPTION_SPACE.TIMESTAMP);
    out.writeUInt32BE(options.timestamp.value >>> 0, at + OPTION_VALUE_AT);
    out.writeUInt32BE(options.timestamp.echo >>> 0, at + TIMESTAMP_ECHO_AT);
  }
  if (options.windowScale !== undefined) {
    const at = place(TCP_OPTION.WINDOW_SCALE, OPTION_LENGTH.WINDOW_SCALE, TCP_OPTION_SPACE.WINDOW_SCALE);
    out[at + OPTION_VALUE_AT] = options.windowScale;
  }
  return out;
}

/** The option codec: `encode` lays options out as Linux does, `decode` reads any layout. */
export const tcpOptions = { encode: encodeOptions, decode: decodeOptions, encodingLength: optionsEncodingLength };

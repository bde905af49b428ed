/** TCP segments (RFC 9293 §3.1) with the pseudo-header checksum; options are kept as bytes. */
import { internetChecksum, pseudoHeaderSum } from './checksum.js';
import { IP_PROTOCOL } from './ipv4.js';
import { forEachOption, paddedHeaderLength } from './options.js';
import { dropped, parsed, type Parsed } from './result.js';
import type { PseudoHeader } from './udp.js';

const FIELD = {
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
export const TCP_FLAG = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80 } as const;

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

function encode(segment: TcpSegment, { src, dst }: PseudoHeader): Buffer {
  const headerLength = headerLengthFor(segment);
  const out = Buffer.alloc(headerLength + segment.payload.length);
  out.writeUInt16BE(segment.srcPort, FIELD.srcPort);
  out.writeUInt16BE(segment.dstPort, FIELD.dstPort);
  out.writeUInt32BE(segment.sequence >>> 0, FIELD.sequence);
  out.writeUInt32BE(segment.acknowledgment >>> 0, FIELD.acknowledgment);
  out[FIELD.dataOffsetReserved] = ((headerLength / 4) << 4) | ((segment.reserved ?? 0) & 0x0f);
  out[FIELD.flags] = segment.flags;
  out.writeUInt16BE(segment.window, FIELD.window);
  out.writeUInt16BE(segment.urgentPointer ?? 0, FIELD.urgentPointer);
  segment.options?.copy(out, TCP_MIN_HEADER_LENGTH);
  segment.payload.copy(out, headerLength);
  out.writeUInt16BE(internetChecksum(out, 0, out.length, pseudoHeaderSum(src, dst, IP_PROTOCOL.TCP, out.length)), FIELD.checksum);
  return out;
}

/** Decodes the IP payload `bytes`, all of which is the segment (TCP has no length field of its own). */
function decode(bytes: Buffer, { src, dst }: PseudoHeader): Parsed<DecodedTcpSegment> {
  if (bytes.length < TCP_MIN_HEADER_LENGTH) return dropped('truncated');
  const dataOffset = bytes[FIELD.dataOffsetReserved] >> 4;
  const headerLength = dataOffset * 4;
  if (headerLength < TCP_MIN_HEADER_LENGTH || headerLength > bytes.length) return dropped('bad-data-offset');
  if (internetChecksum(bytes, 0, bytes.length, pseudoHeaderSum(src, dst, IP_PROTOCOL.TCP, bytes.length)) !== 0) {
    return dropped('bad-tcp-checksum');
  }
  return parsed({
    srcPort: bytes.readUInt16BE(FIELD.srcPort),
    dstPort: bytes.readUInt16BE(FIELD.dstPort),
    sequence: bytes.readUInt32BE(FIELD.sequence),
    acknowledgment: bytes.readUInt32BE(FIELD.acknowledgment),
    dataOffset,
    reserved: bytes[FIELD.dataOffsetReserved] & 0x0f,
    flags: bytes[FIELD.flags],
    window: bytes.readUInt16BE(FIELD.window),
    checksum: bytes.readUInt16BE(FIELD.checksum),
    urgentPointer: bytes.readUInt16BE(FIELD.urgentPointer),
    options: bytes.subarray(TCP_MIN_HEADER_LENGTH, headerLength),
    payload: bytes.subarray(headerLength),
  });
}

export const tcp = { encode, decode, encodingLength };

const OPTION_MSS = 2;
const MSS_OPTION_LENGTH = 4;

/** The Maximum Segment Size option's value, or undefined when absent (or after a malformed option). */
export function tcpMss(options: Buffer): number | undefined {
  let mss: number | undefined;
  forEachOption(options, 0, options.length, (kind, at, length) => {
    if (kind !== OPTION_MSS || length !== MSS_OPTION_LENGTH) return true;
    mss = options.readUInt16BE(at + 2);
    return false;
  });
  return mss;
}

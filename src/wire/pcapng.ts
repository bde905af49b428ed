/**
 * Capture files, as bytes only (the caller writes them): pcapng (draft-ietf-opsawg-pcapng) for the emulator's taps,
 * with named interfaces and nanosecond timestamps, classic pcap for tools that want it, and a small pcapng reader
 * for tests and replay.
 */
import { dropped, parsed, type Parsed } from './result.js';

export const LINKTYPE = { ETHERNET: 1, RAW: 101, IPV4: 228 } as const;

export interface CaptureInterface {
  linkType: number;
  /** `if_name`: what Wireshark shows as the interface, e.g. `eth0`, `tunl0`. */
  name?: string;
  description?: string;
}

export interface CapturedPacket {
  /** Index into the capture's `interfaces`. */
  interfaceId: number;
  /** Nanoseconds since the Unix epoch. */
  timestampNs: bigint;
  data: Buffer;
  /** The length on the wire when `data` was cut short; defaults to `data.length`. */
  originalLength?: number;
  /** epb_flags' direction, which Wireshark shows as `frame.packet_flags_direction`; absent when unknown. */
  direction?: 'inbound' | 'outbound';
}

export interface Capture {
  interfaces: CaptureInterface[];
  packets: CapturedPacket[];
}

const BLOCK_TYPE = { SECTION_HEADER: 0x0a0d0d0a, INTERFACE_DESCRIPTION: 1, ENHANCED_PACKET: 6 } as const;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
const OPTION_CODE = { END: 0, SHB_USERAPPL: 4, IF_NAME: 2, IF_DESCRIPTION: 3, IF_TSRESOL: 9, EPB_FLAGS: 2 } as const;
/** epb_flags bits 0-1. */
const DIRECTION_FLAGS = { inbound: 1, outbound: 2 } as const;
/** if_tsresol 9: timestamps count 10^-9 s. */
const NANOSECOND_RESOLUTION = 9;
/** The default when an interface has no if_tsresol: microseconds. */
const DEFAULT_RESOLUTION = 6;
const BLOCK_HEADER_LENGTH = 8;
const BLOCK_TRAILER_LENGTH = 4;
const MIN_BLOCK_LENGTH = BLOCK_HEADER_LENGTH + BLOCK_TRAILER_LENGTH;
const SHB_FIXED_LENGTH = 16;
const IDB_FIXED_LENGTH = 8;
const EPB_FIXED_LENGTH = 20;
/** epb_flags (a 4-byte option) and the end-of-options marker. */
const EPB_FLAGS_LENGTH = 4 + 4 + 4;

type BlockOption = readonly [code: number, value: Buffer];

const pad4 = (length: number) => (length + 3) & ~3;

/** A block: header, the fixed fields (padded), options with their end marker, trailing total length. */
function encodeBlock(type: number, fixed: readonly Buffer[], options: readonly BlockOption[]): Buffer {
  const fixedLength = fixed.reduce((sum, part) => sum + part.length, 0);
  const optionsLength = options.length === 0 ? 0 : options.reduce((sum, [, value]) => sum + 4 + pad4(value.length), 4);
  const total = BLOCK_HEADER_LENGTH + pad4(fixedLength) + optionsLength + BLOCK_TRAILER_LENGTH;
  const out = Buffer.alloc(total);
  out.writeUInt32LE(type, 0);
  out.writeUInt32LE(total, 4);
  let at = BLOCK_HEADER_LENGTH;
  for (const part of fixed) at += part.copy(out, at);
  at = BLOCK_HEADER_LENGTH + pad4(fixedLength);
  for (const [code, value] of options) {
    out.writeUInt16LE(code, at);
    out.writeUInt16LE(value.length, at + 2);
    value.copy(out, at + 4);
    at += 4 + pad4(value.length);
  }
  out.writeUInt32LE(total, total - BLOCK_TRAILER_LENGTH);
  return out;
}

/** Section Header Block, little-endian, section length unknown (-1), naming this program in shb_userappl. */
function sectionHeader(): Buffer {
  const fixed = Buffer.alloc(SHB_FIXED_LENGTH);
  fixed.writeUInt32LE(BYTE_ORDER_MAGIC, 0);
  fixed.writeUInt16LE(1, 4);
  fixed.writeUInt16LE(0, 6);
  fixed.writeBigInt64LE(-1n, 8);
  return encodeBlock(BLOCK_TYPE.SECTION_HEADER, [fixed], [[OPTION_CODE.SHB_USERAPPL, Buffer.from('ipip-lab')]]);
}

/** Interface Description Block with nanosecond timestamps and no snap length. */
function interfaceDescription(iface: CaptureInterface): Buffer {
  const fixed = Buffer.alloc(IDB_FIXED_LENGTH);
  fixed.writeUInt16LE(iface.linkType, 0);
  const options: BlockOption[] = [];
  if (iface.name !== undefined) options.push([OPTION_CODE.IF_NAME, Buffer.from(iface.name)]);
  if (iface.description !== undefined) options.push([OPTION_CODE.IF_DESCRIPTION, Buffer.from(iface.description)]);
  options.push([OPTION_CODE.IF_TSRESOL, Buffer.of(NANOSECOND_RESOLUTION)]);
  return encodeBlock(BLOCK_TYPE.INTERFACE_DESCRIPTION, [fixed], options);
}

/** The bytes `writeEnhancedPacket` writes for `packet`. */
function enhancedPacketLength(packet: Pick<CapturedPacket, 'data' | 'direction'>): number {
  const options = packet.direction === undefined ? 0 : EPB_FLAGS_LENGTH;
  return BLOCK_HEADER_LENGTH + EPB_FIXED_LENGTH + pad4(packet.data.length) + options + BLOCK_TRAILER_LENGTH;
}

/** Splits a timestamp into its two 32-bit halves without BigInt arithmetic, which allocates. */
const timestampHalves = new DataView(new ArrayBuffer(8));

const dataViewOf = (target: Buffer): DataView => new DataView(target.buffer, target.byteOffset, target.byteLength);

/**
 * Writes an Enhanced Packet Block at `offset` and returns its length. Every byte of the block is written, padding
 * included, so `target` may be a reused buffer that was never zeroed: a capture's hot path appends records to one
 * buffer instead of allocating a block per packet, and passes `view`, a DataView over exactly `target`, made once
 * for that buffer. The interface must have been described with nanosecond resolution, as `interfaceDescription` is.
 */
function writeEnhancedPacket(
  target: Buffer,
  offset: number,
  packet: CapturedPacket,
  view = dataViewOf(target),
): number {
  const { data } = packet;
  const total = enhancedPacketLength(packet);
  // DataView setters are inlined by the compiler; Buffer's bounds-checked writes cost several times more here.
  timestampHalves.setBigUint64(0, packet.timestampNs, true);
  view.setUint32(offset, BLOCK_TYPE.ENHANCED_PACKET, true);
  view.setUint32(offset + 4, total, true);
  view.setUint32(offset + 8, packet.interfaceId, true);
  view.setUint32(offset + 12, timestampHalves.getUint32(4, true), true);
  view.setUint32(offset + 16, timestampHalves.getUint32(0, true), true);
  view.setUint32(offset + 20, data.length, true);
  view.setUint32(offset + 24, packet.originalLength ?? data.length, true);
  let at = offset + BLOCK_HEADER_LENGTH + EPB_FIXED_LENGTH;
  target.set(data, at);
  at += data.length;
  for (const end = offset + BLOCK_HEADER_LENGTH + EPB_FIXED_LENGTH + pad4(data.length); at < end;) target[at++] = 0;
  if (packet.direction !== undefined) {
    view.setUint16(at, OPTION_CODE.EPB_FLAGS, true);
    view.setUint16(at + 2, 4, true);
    view.setUint32(at + 4, packet.direction === 'inbound' ? DIRECTION_FLAGS.inbound : DIRECTION_FLAGS.outbound, true);
    view.setUint32(at + 8, OPTION_CODE.END, true);
    at += EPB_FLAGS_LENGTH;
  }
  view.setUint32(at, total, true);
  return total;
}

/** Enhanced Packet Block, in a buffer of its own. */
function enhancedPacket(packet: CapturedPacket): Buffer {
  const out = Buffer.allocUnsafe(enhancedPacketLength(packet));
  writeEnhancedPacket(out, 0, packet);
  return out;
}

function encode(capture: Capture): Buffer {
  return Buffer.concat([
    sectionHeader(),
    ...capture.interfaces.map(interfaceDescription),
    ...capture.packets.map(enhancedPacket),
  ]);
}

/** Converts a timestamp in if_tsresol units to nanoseconds. */
function toNanoseconds(units: bigint, resolution: number): bigint {
  const exponent = BigInt(resolution & 0x7f);
  if (resolution & 0x80) return (units * 1_000_000_000n) >> exponent;
  return exponent <= 9n ? units * 10n ** (9n - exponent) : units / 10n ** (exponent - 9n);
}

/**
 * Reads Section Header, Interface Description and Enhanced Packet Blocks of either byte order, skipping any other
 * block; several sections are read as one capture, their interfaces numbered on. Packet data aliases the input.
 * Malformed input gives 'bad-pcapng', a file cut mid-block 'truncated'.
 */
function decode(bytes: Buffer): Parsed<Capture> {
  const interfaces: CaptureInterface[] = [];
  const resolutions: number[] = [];
  const packets: CapturedPacket[] = [];
  let littleEndian = true;
  const u16 = (at: number) => (littleEndian ? bytes.readUInt16LE(at) : bytes.readUInt16BE(at));
  const u32 = (at: number) => (littleEndian ? bytes.readUInt32LE(at) : bytes.readUInt32BE(at));

  /** Calls `visit` per option in `[start, end)`; false when an option overruns its block. */
  const readOptions = (start: number, end: number, visit: (code: number, value: Buffer) => void): boolean => {
    for (let at = start; at + 4 <= end;) {
      const code = u16(at);
      const length = u16(at + 2);
      if (code === OPTION_CODE.END) return true;
      if (at + 4 + length > end) return false;
      visit(code, bytes.subarray(at + 4, at + 4 + length));
      at += 4 + pad4(length);
    }
    return true;
  };
  const text = (value: Buffer) => value.toString('utf8').replace(/\0+$/, '');

  if (bytes.length === 0) return dropped('truncated');
  let sectionFirstInterface = 0;
  for (let at = 0; at < bytes.length;) {
    if (bytes.length - at < MIN_BLOCK_LENGTH) return dropped('truncated');
    // The section header's type reads the same in both byte orders; its magic tells which one follows.
    if (bytes.readUInt32LE(at) === BLOCK_TYPE.SECTION_HEADER) {
      if (bytes.length - at < BLOCK_HEADER_LENGTH + SHB_FIXED_LENGTH) return dropped('truncated');
      if (bytes.readUInt32LE(at + BLOCK_HEADER_LENGTH) === BYTE_ORDER_MAGIC) littleEndian = true;
      else if (bytes.readUInt32BE(at + BLOCK_HEADER_LENGTH) === BYTE_ORDER_MAGIC) littleEndian = false;
      else return dropped('bad-pcapng');
    } else if (at === 0) {
      return dropped('bad-pcapng');
    }
    const type = u32(at);
    const total = u32(at + 4);
    if (total < MIN_BLOCK_LENGTH || total % 4 !== 0) return dropped('bad-pcapng');
    if (total > bytes.length - at) return dropped('truncated');
    if (u32(at + total - BLOCK_TRAILER_LENGTH) !== total) return dropped('bad-pcapng');
    const body = at + BLOCK_HEADER_LENGTH;
    const bodyEnd = at + total - BLOCK_TRAILER_LENGTH;

    switch (type) {
      case BLOCK_TYPE.SECTION_HEADER:
        if (bodyEnd - body < SHB_FIXED_LENGTH || u16(body + 4) !== 1) return dropped('bad-pcapng');
        sectionFirstInterface = interfaces.length;
        break;
      case BLOCK_TYPE.INTERFACE_DESCRIPTION: {
        if (bodyEnd - body < IDB_FIXED_LENGTH) return dropped('bad-pcapng');
        const iface: CaptureInterface = { linkType: u16(body) };
        let resolution = DEFAULT_RESOLUTION;
        const wellFormed = readOptions(body + IDB_FIXED_LENGTH, bodyEnd, (code, value) => {
          if (code === OPTION_CODE.IF_NAME) iface.name = text(value);
          else if (code === OPTION_CODE.IF_DESCRIPTION) iface.description = text(value);
          else if (code === OPTION_CODE.IF_TSRESOL && value.length === 1) resolution = value[0];
        });
        if (!wellFormed) return dropped('bad-pcapng');
        interfaces.push(iface);
        resolutions.push(resolution);
        break;
      }
      case BLOCK_TYPE.ENHANCED_PACKET: {
        if (bodyEnd - body < EPB_FIXED_LENGTH) return dropped('bad-pcapng');
        const interfaceId = sectionFirstInterface + u32(body);
        const capturedLength = u32(body + 12);
        const dataStart = body + EPB_FIXED_LENGTH;
        if (interfaceId >= interfaces.length || capturedLength > bodyEnd - dataStart) return dropped('bad-pcapng');
        const units = (BigInt(u32(body + 4)) << 32n) | BigInt(u32(body + 8));
        const packet: CapturedPacket = {
          interfaceId,
          timestampNs: toNanoseconds(units, resolutions[interfaceId]),
          data: bytes.subarray(dataStart, dataStart + capturedLength),
          originalLength: u32(body + 16),
        };
        const wellFormed = readOptions(dataStart + pad4(capturedLength), bodyEnd, (code, value) => {
          if (code !== OPTION_CODE.EPB_FLAGS || value.length !== 4) return;
          const direction = (littleEndian ? value.readUInt32LE(0) : value.readUInt32BE(0)) & 3;
          if (direction === DIRECTION_FLAGS.inbound) packet.direction = 'inbound';
          else if (direction === DIRECTION_FLAGS.outbound) packet.direction = 'outbound';
        });
        if (!wellFormed) return dropped('bad-pcapng');
        packets.push(packet);
        break;
      }
    }
    at += total;
  }
  return parsed({ interfaces, packets });
}

/** pcapng: streaming block builders for a tap that writes as it goes, and whole-capture encode/decode. */
export const pcapng = {
  sectionHeader,
  interfaceDescription,
  enhancedPacket,
  enhancedPacketLength,
  writeEnhancedPacket,
  encode,
  decode,
};

const PCAP_NANOSECOND_MAGIC = 0xa1b23c4d;
const PCAP_DEFAULT_SNAP_LENGTH = 262144;
const PCAP_RECORD_HEADER_LENGTH = 16;

/** Classic pcap global header (little-endian, version 2.4, nanosecond timestamps); one link type per file. */
function globalHeader(linkType: number, snapLength = PCAP_DEFAULT_SNAP_LENGTH): Buffer {
  const out = Buffer.alloc(24);
  out.writeUInt32LE(PCAP_NANOSECOND_MAGIC, 0);
  out.writeUInt16LE(2, 4);
  out.writeUInt16LE(4, 6);
  out.writeUInt32LE(snapLength, 16);
  out.writeUInt32LE(linkType, 20);
  return out;
}

type PcapRecord = Omit<CapturedPacket, 'interfaceId' | 'direction'>;

const recordLength = (packet: Pick<CapturedPacket, 'data'>): number => PCAP_RECORD_HEADER_LENGTH + packet.data.length;

/** Writes a record header and its packet at `offset` and returns the length: every byte, as writeEnhancedPacket. */
function writeRecord(target: Buffer, offset: number, packet: PcapRecord, view = dataViewOf(target)): number {
  const { data, timestampNs } = packet;
  view.setUint32(offset, Number(timestampNs / 1_000_000_000n), true);
  view.setUint32(offset + 4, Number(timestampNs % 1_000_000_000n), true);
  view.setUint32(offset + 8, data.length, true);
  view.setUint32(offset + 12, packet.originalLength ?? data.length, true);
  target.set(data, offset + PCAP_RECORD_HEADER_LENGTH);
  return PCAP_RECORD_HEADER_LENGTH + data.length;
}

function record(packet: PcapRecord): Buffer {
  const out = Buffer.allocUnsafe(recordLength(packet));
  writeRecord(out, 0, packet);
  return out;
}

function encodePcap(capture: { linkType: number; packets: PcapRecord[] }): Buffer {
  return Buffer.concat([globalHeader(capture.linkType), ...capture.packets.map(record)]);
}

/** Classic pcap (`--format pcap`). */
export const pcap = { globalHeader, record, recordLength, writeRecord, encode: encodePcap };

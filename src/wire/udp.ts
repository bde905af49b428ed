/** UDP (RFC 768) with the pseudo-header checksum. */
import { internetChecksum, pseudoHeaderSum } from './checksum.js';
import { IP_PROTOCOL } from './ipv4.js';
import { dropped, parsed, type Parsed } from './result.js';

const FIELD = { srcPort: 0, dstPort: 2, length: 4, checksum: 6 } as const;
export const UDP_HEADER_LENGTH = 8;

/** The IPv4 addresses the UDP/TCP checksum covers. */
export interface PseudoHeader {
  src: number;
  dst: number;
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

/** Always computes the checksum, as Linux does; a computed 0 is sent as 0xffff because 0 means "none". */
function encode(datagram: UdpDatagram, { src, dst }: PseudoHeader): Buffer {
  const length = encodingLength(datagram);
  const out = Buffer.alloc(length);
  out.writeUInt16BE(datagram.srcPort, FIELD.srcPort);
  out.writeUInt16BE(datagram.dstPort, FIELD.dstPort);
  out.writeUInt16BE(length, FIELD.length);
  datagram.payload.copy(out, UDP_HEADER_LENGTH);
  const checksum = internetChecksum(out, 0, length, pseudoHeaderSum(src, dst, IP_PROTOCOL.UDP, length));
  out.writeUInt16BE(checksum === 0 ? 0xffff : checksum, FIELD.checksum);
  return out;
}

/** Decodes the IP payload `bytes`; anything after the UDP length field's end is ignored. */
function decode(bytes: Buffer, { src, dst }: PseudoHeader): Parsed<DecodedUdpDatagram> {
  if (bytes.length < UDP_HEADER_LENGTH) return dropped('truncated');
  const length = bytes.readUInt16BE(FIELD.length);
  if (length < UDP_HEADER_LENGTH || length > bytes.length) return dropped('bad-udp-length');
  const checksum = bytes.readUInt16BE(FIELD.checksum);
  if (checksum !== 0 && internetChecksum(bytes, 0, length, pseudoHeaderSum(src, dst, IP_PROTOCOL.UDP, length)) !== 0) {
    return dropped('bad-udp-checksum');
  }
  return parsed({
    srcPort: bytes.readUInt16BE(FIELD.srcPort),
    dstPort: bytes.readUInt16BE(FIELD.dstPort),
    length,
    checksum,
    payload: bytes.subarray(UDP_HEADER_LENGTH, length),
  });
}

export const udp = { encode, decode, encodingLength };

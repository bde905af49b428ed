/**
 * ICMPv4 (RFC 792): echo, destination unreachable, time exceeded, and the error builders a node needs, with the
 * quote length Linux uses as an option.
 */
import { internetChecksum } from './checksum.js';
import { IPV4_MIN_HEADER_LENGTH } from './ipv4.js';
import { dropped, parsed, type Parsed } from './result.js';

const FIELD = { type: 0, code: 1, checksum: 2, restOfHeader: 4, identifier: 4, sequence: 6, nextHopMtu: 6 } as const;
export const ICMP_HEADER_LENGTH = 8;

export const ICMP_TYPE = {
  ECHO_REPLY: 0,
  DESTINATION_UNREACHABLE: 3,
  ECHO_REQUEST: 8,
  TIME_EXCEEDED: 11,
} as const;

/** Destination unreachable codes (RFC 792, RFC 1122 §3.2.2.1, RFC 1812 §5.2.7.1). */
export const UNREACHABLE_CODE = {
  NET: 0,
  HOST: 1,
  PROTOCOL: 2,
  PORT: 3,
  FRAGMENTATION_NEEDED: 4,
  SOURCE_ROUTE_FAILED: 5,
  NET_UNKNOWN: 6,
  HOST_UNKNOWN: 7,
  SOURCE_HOST_ISOLATED: 8,
  NET_PROHIBITED: 9,
  HOST_PROHIBITED: 10,
  NET_TOS: 11,
  HOST_TOS: 12,
  COMMUNICATION_PROHIBITED: 13,
  HOST_PRECEDENCE_VIOLATION: 14,
  PRECEDENCE_CUTOFF: 15,
} as const;

export const TIME_EXCEEDED_CODE = { TTL: 0, REASSEMBLY: 1 } as const;

export type IcmpMessage =
  | { kind: 'echo-request' | 'echo-reply'; identifier: number; sequence: number; data: Buffer }
  /** `nextHopMtu` is meaningful for code 4 (RFC 1191) and 0 otherwise. */
  | { kind: 'destination-unreachable'; code: number; nextHopMtu: number; quoted: Buffer }
  | { kind: 'time-exceeded'; code: number; quoted: Buffer }
  /** Any other type, kept whole: `restOfHeader` is bytes 4-7. */
  | { kind: 'other'; type: number; code: number; restOfHeader: number; data: Buffer };

function encodingLength(message: IcmpMessage): number {
  return ICMP_HEADER_LENGTH + ('quoted' in message ? message.quoted : message.data).length;
}

function encode(message: IcmpMessage): Buffer {
  const out = Buffer.alloc(encodingLength(message));
  switch (message.kind) {
    case 'echo-request':
    case 'echo-reply':
      out[FIELD.type] = message.kind === 'echo-request' ? ICMP_TYPE.ECHO_REQUEST : ICMP_TYPE.ECHO_REPLY;
      out.writeUInt16BE(message.identifier, FIELD.identifier);
      out.writeUInt16BE(message.sequence, FIELD.sequence);
      message.data.copy(out, ICMP_HEADER_LENGTH);
      break;
    case 'destination-unreachable':
      out[FIELD.type] = ICMP_TYPE.DESTINATION_UNREACHABLE;
      out[FIELD.code] = message.code;
      out.writeUInt16BE(message.nextHopMtu, FIELD.nextHopMtu);
      message.quoted.copy(out, ICMP_HEADER_LENGTH);
      break;
    case 'time-exceeded':
      out[FIELD.type] = ICMP_TYPE.TIME_EXCEEDED;
      out[FIELD.code] = message.code;
      message.quoted.copy(out, ICMP_HEADER_LENGTH);
      break;
    case 'other':
      out[FIELD.type] = message.type;
      out[FIELD.code] = message.code;
      out.writeUInt32BE(message.restOfHeader >>> 0, FIELD.restOfHeader);
      message.data.copy(out, ICMP_HEADER_LENGTH);
      break;
  }
  out.writeUInt16BE(internetChecksum(out), FIELD.checksum);
  return out;
}

/** Decodes one ICMP message (the whole IP payload); data and quotes alias the input. */
function decode(bytes: Buffer): Parsed<IcmpMessage> {
  if (bytes.length < ICMP_HEADER_LENGTH) return dropped('truncated');
  if (internetChecksum(bytes) !== 0) return dropped('bad-icmp-checksum');
  const type = bytes[FIELD.type];
  const code = bytes[FIELD.code];
  const body = bytes.subarray(ICMP_HEADER_LENGTH);
  switch (type) {
    case ICMP_TYPE.ECHO_REQUEST:
    case ICMP_TYPE.ECHO_REPLY:
      if (code === 0) {
        return parsed({
          kind: type === ICMP_TYPE.ECHO_REQUEST ? 'echo-request' : 'echo-reply',
          identifier: bytes.readUInt16BE(FIELD.identifier),
          sequence: bytes.readUInt16BE(FIELD.sequence),
          data: body,
        });
      }
      break;
    case ICMP_TYPE.DESTINATION_UNREACHABLE:
      return parsed({
        kind: 'destination-unreachable',
        code,
        nextHopMtu: code === UNREACHABLE_CODE.FRAGMENTATION_NEEDED ? bytes.readUInt16BE(FIELD.nextHopMtu) : 0,
        quoted: body,
      });
    case ICMP_TYPE.TIME_EXCEEDED:
      return parsed({ kind: 'time-exceeded', code, quoted: body });
  }
  return parsed({ kind: 'other', type, code, restOfHeader: bytes.readUInt32BE(FIELD.restOfHeader), data: body });
}

/** The plain-object codec: `encode` computes the checksum, `decode` verifies it ('bad-icmp-checksum'). */
export const icmp = { encode, decode, encodingLength };

/**
 * How much of the offending packet an error quotes. `rfc792`: its IP header plus the first 8 payload bytes.
 * `linux`: as much as keeps the whole ICMP packet within 576 bytes (`icmp_send()`: room = min(route MTU, 576) minus
 * the error's IP header and ICMP header), so a small packet is quoted whole, as in the ttl2 vector.
 */
export type QuoteMode = 'rfc792' | 'linux';

/** The minimum datagram every IPv4 host accepts (RFC 791), which Linux uses as the ceiling for ICMP errors. */
const LINUX_ICMP_ERROR_MAX_PACKET = 576;

export interface ErrorOptions {
  quote?: QuoteMode;
  /** Header length of the IP packet that will carry the error, which counts against the 576-byte room. */
  errorHeaderLength?: number;
}

/** The quoted part of `offending` (a valid IPv4 packet, exactly as received; aliases it). */
export function quoteOf(offending: Buffer, { quote = 'rfc792', errorHeaderLength = IPV4_MIN_HEADER_LENGTH }: ErrorOptions = {}): Buffer {
  const limit =
    quote === 'linux'
      ? LINUX_ICMP_ERROR_MAX_PACKET - errorHeaderLength - ICMP_HEADER_LENGTH
      : (offending[0] & 0x0f) * 4 + 8;
  return offending.subarray(0, Math.min(limit, offending.length));
}

export function timeExceeded(offending: Buffer, code: number = TIME_EXCEEDED_CODE.TTL, options?: ErrorOptions): Buffer {
  return encode({ kind: 'time-exceeded', code, quoted: quoteOf(offending, options) });
}

export function destinationUnreachable(offending: Buffer, code: number, options?: ErrorOptions): Buffer {
  return encode({ kind: 'destination-unreachable', code, nextHopMtu: 0, quoted: quoteOf(offending, options) });
}

/** ICMP 3/4 with the next-hop MTU in bytes 6-7 (RFC 1191), what a DF packet too big for the tunnel earns. */
export function fragmentationNeeded(offending: Buffer, nextHopMtu: number, options?: ErrorOptions): Buffer {
  return encode({
    kind: 'destination-unreachable',
    code: UNREACHABLE_CODE.FRAGMENTATION_NEEDED,
    nextHopMtu,
    quoted: quoteOf(offending, options),
  });
}

const IPTOS_TOS_MASK = 0x1e;
const IPTOS_PREC_INTERNETCONTROL = 0xc0;

/**
 * The TOS byte Linux 6.1 gives an ICMP error (`__icmp_send()`: `RT_TOS(tos) | IPTOS_PREC_INTERNETCONTROL`). The old
 * RFC 1349 mask 0x1e also keeps ECN bit 1, so an ECT(0) or CE offender earns an ECT(0) error (0xc2); the vectors
 * show the common case, 0x00 → 0xc0.
 */
export function icmpErrorTos(offendingTos: number): number {
  return (offendingTos & IPTOS_TOS_MASK) | IPTOS_PREC_INTERNETCONTROL;
}

/**
 * ICMPv4 (RFC 792): `IcmpView`, a checked zero-copy view, the `icmp` codec that reads and writes through it (echo,
 * destination unreachable, time exceeded), how a received error's quote is read, and the error builders a node needs,
 * with the quote length Linux uses as an option.
 */
import { internetChecksum } from './checksum.js';
import { IPV4_MIN_HEADER_LENGTH, Ipv4View } from './ipv4.js';
import { IpPayloadView } from './payload-view.js';
import { checkedView, dropped, parsed, type DropReason, type Parsed } from './result.js';

/** Byte offsets of the header fields (RFC 792); bytes 4-7 are an echo's identifier and sequence, or a 3/4's MTU. */
export const ICMP_FIELD = {
  type: 0,
  code: 1,
  checksum: 2,
  restOfHeader: 4,
  identifier: 4,
  sequence: 6,
  nextHopMtu: 6,
} as const;
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

/** A view over one ICMP message, the whole IP payload at `buffer[offset, end)`; see `IpPayloadView` for when to check. */
export class IcmpView extends IpPayloadView {
  static check(buffer: Buffer, offset = 0, end = buffer.length): Parsed<IcmpView> {
    return checkedView(new IcmpView(buffer, offset, end));
  }

  /** The header is there and the checksum, which covers the whole message, is right. */
  validate(): DropReason | undefined {
    if (this.byteLength < ICMP_HEADER_LENGTH) return 'truncated';
    if (!this.verifyChecksum()) return 'bad-icmp-checksum';
    return undefined;
  }

  get type(): number {
    return this.buffer[this.offset + ICMP_FIELD.type];
  }
  set type(value: number) {
    this.buffer[this.offset + ICMP_FIELD.type] = value;
  }

  get code(): number {
    return this.buffer[this.offset + ICMP_FIELD.code];
  }
  set code(value: number) {
    this.buffer[this.offset + ICMP_FIELD.code] = value;
  }

  get checksum(): number {
    return this.read16(ICMP_FIELD.checksum);
  }
  set checksum(value: number) {
    this.write16(ICMP_FIELD.checksum, value);
  }

  /** Bytes 4-7 as one number, for the types this module does not name. */
  get restOfHeader(): number {
    return this.read32(ICMP_FIELD.restOfHeader);
  }
  set restOfHeader(value: number) {
    this.write32(ICMP_FIELD.restOfHeader, value);
  }

  get identifier(): number {
    return this.read16(ICMP_FIELD.identifier);
  }
  set identifier(value: number) {
    this.write16(ICMP_FIELD.identifier, value);
  }

  get sequence(): number {
    return this.read16(ICMP_FIELD.sequence);
  }
  set sequence(value: number) {
    this.write16(ICMP_FIELD.sequence, value);
  }

  /** RFC 1191's field in a 3/4; other destination unreachables leave it 0. */
  get nextHopMtu(): number {
    return this.read16(ICMP_FIELD.nextHopMtu);
  }
  set nextHopMtu(value: number) {
    this.write16(ICMP_FIELD.nextHopMtu, value);
  }

  /** Everything after the header: an echo's data or an error's quote (aliases the buffer). */
  get body(): Buffer {
    return this.buffer.subarray(this.offset + ICMP_HEADER_LENGTH, this.end);
  }

  verifyChecksum(): boolean {
    return internetChecksum(this.buffer, this.offset, this.end) === 0;
  }

  fillChecksum(): void {
    this.checksum = 0;
    this.checksum = internetChecksum(this.buffer, this.offset, this.end);
  }

  toMessage(): IcmpMessage {
    const { type, code, body } = this;
    switch (type) {
      case ICMP_TYPE.ECHO_REQUEST:
      case ICMP_TYPE.ECHO_REPLY:
        if (code !== 0) break;
        return {
          kind: type === ICMP_TYPE.ECHO_REQUEST ? 'echo-request' : 'echo-reply',
          identifier: this.identifier,
          sequence: this.sequence,
          data: body,
        };
      case ICMP_TYPE.DESTINATION_UNREACHABLE:
        return {
          kind: 'destination-unreachable',
          code,
          nextHopMtu: code === UNREACHABLE_CODE.FRAGMENTATION_NEEDED ? this.nextHopMtu : 0,
          quoted: body,
        };
      case ICMP_TYPE.TIME_EXCEEDED:
        return { kind: 'time-exceeded', code, quoted: body };
    }
    return { kind: 'other', type, code, restOfHeader: this.restOfHeader, data: body };
  }
}

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

const TYPE_OF_KIND = {
  'echo-request': ICMP_TYPE.ECHO_REQUEST,
  'echo-reply': ICMP_TYPE.ECHO_REPLY,
  'destination-unreachable': ICMP_TYPE.DESTINATION_UNREACHABLE,
  'time-exceeded': ICMP_TYPE.TIME_EXCEEDED,
} as const;

function encode(message: IcmpMessage): Buffer {
  const out = Buffer.alloc(encodingLength(message));
  const view = new IcmpView(out);
  view.type = message.kind === 'other' ? message.type : TYPE_OF_KIND[message.kind];
  if ('code' in message) view.code = message.code;
  switch (message.kind) {
    case 'echo-request':
    case 'echo-reply':
      view.identifier = message.identifier;
      view.sequence = message.sequence;
      break;
    case 'destination-unreachable':
      view.nextHopMtu = message.nextHopMtu;
      break;
    case 'other':
      view.restOfHeader = message.restOfHeader;
      break;
  }
  ('quoted' in message ? message.quoted : message.data).copy(out, ICMP_HEADER_LENGTH);
  view.fillChecksum();
  return out;
}

/** Decodes one ICMP message (the whole IP payload); data and quotes alias the input. */
function decode(bytes: Buffer): Parsed<IcmpMessage> {
  const checked = IcmpView.check(bytes);
  return checked.ok ? parsed(checked.value.toMessage()) : checked;
}

/** The plain-object codec: `encode` computes the checksum, `decode` verifies it ('bad-icmp-checksum'). */
export const icmp = { encode, decode, encodingLength };

/** RFC 792: an error quotes the offending packet's IP header and at least the first 8 bytes of its payload. */
export const QUOTED_PAYLOAD_LENGTH = 8;

/**
 * The offending packet's header at the start of an error's quote. A quote is a truncated packet, so its total length
 * and checksum cannot be checked; the header must still be IPv4 and followed by the 8 payload bytes RFC 792 promises,
 * which hold the ports (and TCP's sequence number) or an echo's identifier and sequence: the payload, from
 * `headerLength` on, may be read with `UdpView`, `TcpView` or `IcmpView` for those fields.
 */
export function checkQuote(quote: Buffer): Parsed<Ipv4View> {
  if (quote.length < IPV4_MIN_HEADER_LENGTH + QUOTED_PAYLOAD_LENGTH) return dropped('truncated');
  const header = new Ipv4View(quote);
  if (header.version !== 4) return dropped('not-ipv4');
  if (header.ihl < 5) return dropped('bad-ihl');
  if (quote.length < header.headerLength + QUOTED_PAYLOAD_LENGTH) return dropped('truncated');
  return parsed(header);
}

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

const offendingHeader = new Ipv4View(Buffer.alloc(0));

/** The quoted part of `offending` (a valid IPv4 packet, exactly as received; aliases it). */
export function quoteOf(
  offending: Buffer,
  { quote = 'rfc792', errorHeaderLength = IPV4_MIN_HEADER_LENGTH }: ErrorOptions = {},
): Buffer {
  const limit =
    quote === 'linux'
      ? LINUX_ICMP_ERROR_MAX_PACKET - errorHeaderLength - ICMP_HEADER_LENGTH
      : offendingHeader.attach(offending).headerLength + QUOTED_PAYLOAD_LENGTH;
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

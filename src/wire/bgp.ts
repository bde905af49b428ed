/**
 * BGP-4 messages (RFC 4271) as Calico's BIRD mesh exchanges them: OPEN with its capabilities, UPDATE for IPv4 unicast,
 * NOTIFICATION, KEEPALIVE and ROUTE-REFRESH, as the `bgp` codec over plain objects, and a framer that cuts a TCP
 * stream into messages.
 *
 * There is no zero-copy view as for IPv4: a speaker handles a few messages a second, not packets at line rate, and
 * nearly every BGP field sits at an offset that depends on the lengths before it. The fixed fields are named in the
 * tables below; everything after them is walked as type-length-value lists.
 *
 * Untrusted bytes never throw. A refusal carries the NOTIFICATION that RFC 4271 §6 has a speaker answer them with, so
 * the session layer can send it as it is; `encode` throws a RangeError on values no message can carry, as the other
 * codecs of this layer do, because those come from this program, not from a peer.
 */
import type { Parsed } from './result.js';

export const BGP_PORT = 179;
export const BGP_VERSION = 4;
export const BGP_MARKER_LENGTH = 16;
export const BGP_HEADER_LENGTH = 19;
/** Without the extended messages capability (RFC 8654), which this codec does not speak. */
export const BGP_MAX_MESSAGE_LENGTH = 4096;
/** What a 4-octet AS puts in OPEN's 2-octet My Autonomous System field (RFC 6793 §9). */
export const AS_TRANS = 23456;

/** Byte offsets of the header (RFC 4271 §4.1). */
export const BGP_HEADER_FIELD = { marker: 0, length: 16, type: 18 } as const;
/** Byte offsets from the start of an OPEN message, header included (RFC 4271 §4.2). */
export const BGP_OPEN_FIELD = {
  version: 19,
  myAs: 20,
  holdTime: 22,
  bgpIdentifier: 24,
  optionalParametersLength: 28,
  optionalParameters: 29,
} as const;
/** Byte offsets from the start of an UPDATE message; the rest of its fields follow variable-length ones (§4.3). */
export const BGP_UPDATE_FIELD = { withdrawnRoutesLength: 19, withdrawnRoutes: 21 } as const;
/** Byte offsets from the start of a NOTIFICATION message (RFC 4271 §4.5). */
export const BGP_NOTIFICATION_FIELD = { code: 19, subcode: 20, data: 21 } as const;
/** Byte offsets from the start of a ROUTE-REFRESH message (RFC 2918 §3, the reserved byte per RFC 7313 §3.2). */
export const BGP_ROUTE_REFRESH_FIELD = { afi: 19, subtype: 21, safi: 22, data: 23 } as const;

const OPEN_MIN_LENGTH = BGP_OPEN_FIELD.optionalParameters;
/** The header and the two length fields of empty withdrawn routes and path attributes. */
const UPDATE_MIN_LENGTH = BGP_UPDATE_FIELD.withdrawnRoutes + 2;
const NOTIFICATION_MIN_LENGTH = BGP_NOTIFICATION_FIELD.data;
const ROUTE_REFRESH_MIN_LENGTH = BGP_ROUTE_REFRESH_FIELD.data;
const MARKER_BYTE = 0xff;

export const BGP_MESSAGE_TYPE = { OPEN: 1, UPDATE: 2, NOTIFICATION: 3, KEEPALIVE: 4, ROUTE_REFRESH: 5 } as const;

/** NOTIFICATION error codes (RFC 4271 §4.5, RFC 7313 §5 for ROUTE-REFRESH). */
export const BGP_ERROR_CODE = {
  MESSAGE_HEADER: 1,
  OPEN_MESSAGE: 2,
  UPDATE_MESSAGE: 3,
  HOLD_TIMER_EXPIRED: 4,
  FINITE_STATE_MACHINE: 5,
  CEASE: 6,
  ROUTE_REFRESH_MESSAGE: 7,
} as const;
/** Subcodes of Message Header Error (RFC 4271 §6.1). */
export const BGP_MESSAGE_HEADER_ERROR = {
  CONNECTION_NOT_SYNCHRONIZED: 1,
  BAD_MESSAGE_LENGTH: 2,
  BAD_MESSAGE_TYPE: 3,
} as const;
/** Subcodes of OPEN Message Error (RFC 4271 §6.2; 7 from RFC 5492). */
export const BGP_OPEN_MESSAGE_ERROR = {
  UNSPECIFIC: 0,
  UNSUPPORTED_VERSION_NUMBER: 1,
  BAD_PEER_AS: 2,
  BAD_BGP_IDENTIFIER: 3,
  UNSUPPORTED_OPTIONAL_PARAMETER: 4,
  UNACCEPTABLE_HOLD_TIME: 6,
  UNSUPPORTED_CAPABILITY: 7,
} as const;
/** Subcodes of UPDATE Message Error (RFC 4271 §6.3). */
export const BGP_UPDATE_MESSAGE_ERROR = {
  MALFORMED_ATTRIBUTE_LIST: 1,
  UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: 2,
  MISSING_WELL_KNOWN_ATTRIBUTE: 3,
  ATTRIBUTE_FLAGS_ERROR: 4,
  ATTRIBUTE_LENGTH_ERROR: 5,
  INVALID_ORIGIN_ATTRIBUTE: 6,
  INVALID_NEXT_HOP_ATTRIBUTE: 8,
  OPTIONAL_ATTRIBUTE_ERROR: 9,
  INVALID_NETWORK_FIELD: 10,
  MALFORMED_AS_PATH: 11,
} as const;
/** Subcodes of Finite State Machine Error (RFC 6608). */
export const BGP_FSM_ERROR = {
  UNSPECIFIED: 0,
  UNEXPECTED_MESSAGE_IN_OPENSENT: 1,
  UNEXPECTED_MESSAGE_IN_OPENCONFIRM: 2,
  UNEXPECTED_MESSAGE_IN_ESTABLISHED: 3,
} as const;
/** Subcodes of Cease (RFC 4486; 9 from RFC 8538). BIRD sends ADMINISTRATIVE_SHUTDOWN on `birdc down` and `disable`. */
export const BGP_CEASE = {
  MAXIMUM_NUMBER_OF_PREFIXES_REACHED: 1,
  ADMINISTRATIVE_SHUTDOWN: 2,
  PEER_DECONFIGURED: 3,
  ADMINISTRATIVE_RESET: 4,
  CONNECTION_REJECTED: 5,
  OTHER_CONFIGURATION_CHANGE: 6,
  CONNECTION_COLLISION_RESOLUTION: 7,
  OUT_OF_RESOURCES: 8,
  HARD_RESET: 9,
} as const;
/** Subcodes of ROUTE-REFRESH Message Error (RFC 7313 §5). */
export const BGP_ROUTE_REFRESH_ERROR = { INVALID_MESSAGE_LENGTH: 1 } as const;

export const BGP_OPTIONAL_PARAMETER = { CAPABILITIES: 2 } as const;

export const BGP_CAPABILITY_CODE = {
  MULTIPROTOCOL: 1,
  ROUTE_REFRESH: 2,
  GRACEFUL_RESTART: 64,
  FOUR_OCTET_AS: 65,
  ADD_PATH: 69,
  ENHANCED_ROUTE_REFRESH: 70,
  LONG_LIVED_GRACEFUL_RESTART: 71,
} as const;

export const BGP_AFI = { IPV4: 1, IPV6: 2 } as const;
export const BGP_SAFI = { UNICAST: 1, MULTICAST: 2 } as const;
/** ADD-PATH's Send/Receive field (RFC 7911 §4). */
export const BGP_ADD_PATH = { RECEIVE: 1, SEND: 2, BOTH: 3 } as const;
/** ROUTE-REFRESH subtypes (RFC 7313 §3.2): a request, and the beginning and end of the answer to it. */
export const BGP_ROUTE_REFRESH_SUBTYPE = { REQUEST: 0, BEGIN: 1, END: 2 } as const;

/** Bits of a path attribute's flags byte (RFC 4271 §4.3); the low four are unused. */
export const BGP_ATTRIBUTE_FLAG = { OPTIONAL: 0x80, TRANSITIVE: 0x40, PARTIAL: 0x20, EXTENDED_LENGTH: 0x10 } as const;
/**
 * Path attribute type codes; the codec interprets ORIGIN to LOCAL_PREF and route reflection's ORIGINATOR_ID and
 * CLUSTER_LIST (RFC 4456 §8), and keeps the others as bytes.
 */
export const BGP_ATTRIBUTE_TYPE = {
  ORIGIN: 1,
  AS_PATH: 2,
  NEXT_HOP: 3,
  MULTI_EXIT_DISC: 4,
  LOCAL_PREF: 5,
  ATOMIC_AGGREGATE: 6,
  AGGREGATOR: 7,
  COMMUNITIES: 8,
  ORIGINATOR_ID: 9,
  CLUSTER_LIST: 10,
  MP_REACH_NLRI: 14,
  MP_UNREACH_NLRI: 15,
  AS4_PATH: 17,
  AS4_AGGREGATOR: 18,
  LARGE_COMMUNITIES: 32,
} as const;
export const BGP_ORIGIN = { IGP: 0, EGP: 1, INCOMPLETE: 2 } as const;
/** AS_PATH segment types (RFC 4271 §4.3, confederations RFC 5065). */
export const BGP_AS_PATH_SEGMENT = { AS_SET: 1, AS_SEQUENCE: 2, AS_CONFED_SEQUENCE: 3, AS_CONFED_SET: 4 } as const;

const FLAG_CATEGORY_MASK = BGP_ATTRIBUTE_FLAG.OPTIONAL | BGP_ATTRIBUTE_FLAG.TRANSITIVE | BGP_ATTRIBUTE_FLAG.PARTIAL;
/** What the category bits of the attributes this codec interprets must be (RFC 4271 §5; Partial only on optional transitive ones). */
const WELL_KNOWN_FLAGS = BGP_ATTRIBUTE_FLAG.TRANSITIVE;
const OPTIONAL_NON_TRANSITIVE_FLAGS = BGP_ATTRIBUTE_FLAG.OPTIONAL;
const ATTRIBUTE_HEADER_LENGTH = 3;
const EXTENDED_ATTRIBUTE_HEADER_LENGTH = 4;
const MAX_SHORT_LENGTH = 0xff;
const MAX_SEGMENT_ASNS = 0xff;

const TLV_HEADER_LENGTH = 2;
const MULTIPROTOCOL_LENGTH = 4;
const FOUR_OCTET_AS_LENGTH = 4;
const GRACEFUL_RESTART_HEADER_LENGTH = 2;
/** AFI, SAFI and a flags (or Send/Receive) byte: the per-family tuple of graceful restart and ADD-PATH. */
const FAMILY_TUPLE_LENGTH = 4;
const GRACEFUL_RESTART_RESTARTING = 0x8000;
/** The N bit (RFC 8538 §2): the speaker keeps routes over a NOTIFICATION other than Hard Reset. */
const GRACEFUL_RESTART_NOTIFICATION = 0x4000;
const GRACEFUL_RESTART_TIME_MASK = 0x0fff;
const GRACEFUL_RESTART_FORWARDING_STATE = 0x80;
const PATH_ID_LENGTH = 4;
const IPV4_BITS = 32;

/** An IPv4 prefix of withdrawn routes or NLRI; `pathId` only where ADD-PATH is on (RFC 7911 §3). */
export interface BgpPrefix {
  /** uint32; decode clears the bits past `length`, which RFC 4271 §4.3 makes irrelevant. */
  address: number;
  length: number;
  pathId?: number;
}

/** How a session has agreed to encode UPDATEs; both default to RFC 4271's encoding. */
export interface BgpCodecOptions {
  /** Both OPENs carried the 4-octet AS capability (RFC 6793 §3), so AS_PATH numbers are 4 bytes. */
  fourOctetAs?: boolean;
  /** ADD-PATH for IPv4 unicast is on in this message's direction, so every prefix has a path identifier. */
  addPath?: boolean;
}

export interface BgpAddressFamily {
  afi: number;
  safi: number;
}

/** Capabilities (RFC 5492); any code not interpreted here is kept as its bytes. */
export type BgpCapability =
  | ({ kind: 'multiprotocol' } & BgpAddressFamily)
  | { kind: 'route-refresh' }
  | {
      kind: 'graceful-restart';
      /** The R bit: the speaker has restarted (RFC 4724 §3). */
      restarting: boolean;
      /** The N bit (RFC 8538). */
      notification: boolean;
      /** Seconds, 12 bits. */
      restartTime: number;
      families: (BgpAddressFamily & { forwardingState: boolean })[];
    }
  | { kind: 'four-octet-as'; as: number }
  | { kind: 'add-path'; families: (BgpAddressFamily & { sendReceive: number })[] }
  | { kind: 'unrecognized'; code: number; value: Buffer };

/** An optional parameter other than Capabilities, such as the deprecated Authentication (1), as its bytes. */
export interface BgpOptionalParameter {
  type: number;
  value: Buffer;
}

export interface BgpOpen {
  type: 'open';
  /** The 2-octet field as sent; `encode` writes AS_TRANS for a larger AS, whose real value goes in `four-octet-as`. */
  myAs: number;
  holdTime: number;
  /** uint32, the router id. */
  bgpIdentifier: number;
  /**
   * Every Capabilities parameter's capabilities, in order. `encode` writes them as one parameter, as BIRD does: a
   * second parameter would not make room, since all of them share the 255 bytes of Optional Parameters Length.
   */
  capabilities: BgpCapability[];
  /** Written after the Capabilities parameters. */
  parameters: BgpOptionalParameter[];
}

export interface BgpAsPathSegment {
  /** A `BGP_AS_PATH_SEGMENT` value. */
  type: number;
  asns: number[];
}

/** An attribute this codec does not interpret: its flags byte as received (Partial, Extended Length included). */
export interface BgpRawAttribute {
  flags: number;
  typeCode: number;
  value: Buffer;
}

/**
 * The path attributes; an absent key is an attribute the UPDATE does not carry (an empty `asPath` is an AS_PATH of
 * length 0, as iBGP sends for locally originated routes). `encode` writes them in ascending type code, as BIRD does
 * and RFC 4271 §5 recommends.
 */
export interface BgpPathAttributes {
  origin?: number;
  asPath?: BgpAsPathSegment[];
  nextHop?: number;
  multiExitDisc?: number;
  localPref?: number;
  /** The router ID of the route's originator in the AS, set by the first route reflector it crosses. */
  originatorId?: number;
  /** The cluster IDs of the reflectors it crossed, the last one first. */
  clusterList?: number[];
  unrecognized: BgpRawAttribute[];
}

export interface BgpUpdate {
  type: 'update';
  withdrawn: BgpPrefix[];
  attributes: BgpPathAttributes;
  nlri: BgpPrefix[];
}

export interface BgpNotification {
  type: 'notification';
  code: number;
  subcode: number;
  data: Buffer;
}

export interface BgpKeepalive {
  type: 'keepalive';
}

export interface BgpRouteRefresh {
  type: 'route-refresh';
  afi: number;
  /** A `BGP_ROUTE_REFRESH_SUBTYPE`; the Reserved byte of RFC 2918. */
  subtype: number;
  safi: number;
  /** What follows a request: ORF entries (RFC 5291), kept as bytes. */
  data: Buffer;
}

export type BgpMessage = BgpOpen | BgpUpdate | BgpNotification | BgpKeepalive | BgpRouteRefresh;

/** Why BGP bytes were refused; each maps to the NOTIFICATION in the refusal. */
export const BGP_ERROR_REASONS = [
  'truncated',
  'bad-marker',
  'bad-message-length',
  'bad-message-type',
  'unsupported-version',
  'malformed-open',
  'malformed-capability',
  'malformed-attribute-list',
  'attribute-flags-error',
  'attribute-length-error',
  'invalid-origin',
  'malformed-as-path',
  'invalid-network-field',
  'bad-route-refresh-length',
] as const;

export type BgpErrorReason = (typeof BGP_ERROR_REASONS)[number];

/** A refusal: the reason, and the NOTIFICATION to answer the peer with before closing (RFC 4271 §6). */
export interface BgpRefused {
  ok: false;
  reason: BgpErrorReason;
  notification: BgpNotification;
}

/** The project's `Parsed`, with the NOTIFICATION a BGP refusal needs in place of a drop reason. */
export type BgpParsed<T> = Extract<Parsed<T>, { ok: true }> | BgpRefused;

const EMPTY = Buffer.alloc(0);

function accepted<T>(value: T): BgpParsed<T> {
  return { ok: true, value };
}

export function bgpNotification(code: number, subcode: number, data: Buffer = EMPTY): BgpNotification {
  return { type: 'notification', code, subcode, data };
}

function refuse(reason: BgpErrorReason, code: number, subcode: number, data: Buffer = EMPTY): BgpRefused {
  return { ok: false, reason, notification: bgpNotification(code, subcode, data) };
}

/** RFC 4271 §6.1: Bad Message Length carries the erroneous Length field. */
function badLength(reason: BgpErrorReason, bytes: Buffer, at: number): BgpRefused {
  const field = bytes.subarray(at + BGP_HEADER_FIELD.length, at + BGP_HEADER_FIELD.type);
  return refuse(reason, BGP_ERROR_CODE.MESSAGE_HEADER, BGP_MESSAGE_HEADER_ERROR.BAD_MESSAGE_LENGTH, field);
}

function updateError(reason: BgpErrorReason, subcode: number, data: Buffer = EMPTY): BgpRefused {
  return refuse(reason, BGP_ERROR_CODE.UPDATE_MESSAGE, subcode, data);
}

function openError(reason: BgpErrorReason, subcode: number, data: Buffer = EMPTY): BgpRefused {
  return refuse(reason, BGP_ERROR_CODE.OPEN_MESSAGE, subcode, data);
}

/**
 * The header checks of RFC 4271 §6.1 that framing needs, on the message at `bytes[at…]`: its length, undefined while
 * too few bytes are there to tell, or the refusal. A wrong marker is refused from its first wrong byte, since no
 * further bytes can make it right.
 */
function frameLength(bytes: Buffer, at: number): number | undefined | BgpRefused {
  const available = bytes.length - at;
  for (let i = 0; i < Math.min(available, BGP_MARKER_LENGTH); i++) {
    if (bytes[at + BGP_HEADER_FIELD.marker + i] !== MARKER_BYTE) {
      return refuse('bad-marker', BGP_ERROR_CODE.MESSAGE_HEADER, BGP_MESSAGE_HEADER_ERROR.CONNECTION_NOT_SYNCHRONIZED);
    }
  }
  if (available < BGP_HEADER_FIELD.type) return undefined;
  const length = bytes.readUInt16BE(at + BGP_HEADER_FIELD.length);
  if (length < BGP_HEADER_LENGTH || length > BGP_MAX_MESSAGE_LENGTH) return badLength('bad-message-length', bytes, at);
  return length;
}

/** Whole messages cut from the front of a stream's bytes. */
export interface BgpFrames {
  /** Each one whole message, header included, aliasing the input. */
  messages: Buffer[];
  /** Bytes taken by `messages`; the rest is an incomplete message, or the malformed header `error` is about. */
  consumed: number;
  /** Set when the header after `messages` is malformed: the session must send its NOTIFICATION and close. */
  error?: BgpRefused;
}

/** Cuts `bytes` into whole messages, checking only the headers; `bgp.decode` checks each message. */
export function frameBgpMessages(bytes: Buffer): BgpFrames {
  const messages: Buffer[] = [];
  let at = 0;
  for (;;) {
    const length = frameLength(bytes, at);
    if (length === undefined) return { messages, consumed: at };
    if (typeof length !== 'number') return { messages, consumed: at, error: length };
    if (bytes.length - at < length) return { messages, consumed: at };
    messages.push(bytes.subarray(at, at + length));
    at += length;
  }
}

/**
 * A TCP stream's BGP framing: `push` each chunk as it is read and get the messages it completed. After an error it
 * keeps reporting it, since nothing after a bad header can be framed.
 */
export class BgpFramer {
  private pending: Buffer = EMPTY;
  private failed: BgpRefused | undefined;

  /** Bytes held back for an incomplete message. */
  get buffered(): number {
    return this.pending.length;
  }

  /**
   * `consumed` counts from the first held-back byte, not from `chunk`'s start. The messages alias `chunk` or a copy of
   * it, so a caller that reuses its read buffer must decode them before the next read.
   */
  push(chunk: Buffer): BgpFrames {
    if (this.failed !== undefined) return { messages: [], consumed: 0, error: this.failed };
    const bytes = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const frames = frameBgpMessages(bytes);
    // A copy, so the held-back bytes survive the caller reusing its read buffer and do not pin a large one.
    this.pending = Buffer.from(bytes.subarray(frames.consumed));
    this.failed = frames.error;
    return frames;
  }
}

const maskOf = (length: number): number => (length === 0 ? 0 : (0xffffffff << (IPV4_BITS - length)) >>> 0);

const prefixBytes = (length: number): number => (length + 7) >> 3;

/** Withdrawn routes or NLRI in `[at, end)`; a prefix that runs past `end` or is longer than 32 bits is refused. */
function decodePrefixes(bytes: Buffer, at: number, end: number, addPath: boolean): BgpPrefix[] | BgpRefused {
  const prefixes: BgpPrefix[] = [];
  const invalid = () => updateError('invalid-network-field', BGP_UPDATE_MESSAGE_ERROR.INVALID_NETWORK_FIELD);
  while (at < end) {
    let pathId: number | undefined;
    if (addPath) {
      if (end - at < PATH_ID_LENGTH) return invalid();
      pathId = bytes.readUInt32BE(at);
      at += PATH_ID_LENGTH;
    }
    if (at >= end) return invalid();
    const length = bytes[at++];
    const count = prefixBytes(length);
    if (length > IPV4_BITS || end - at < count) return invalid();
    let address = 0;
    for (let i = 0; i < 4; i++) address = address * 256 + (i < count ? bytes[at + i] : 0);
    at += count;
    const prefix: BgpPrefix = { address: (address & maskOf(length)) >>> 0, length };
    if (pathId !== undefined) prefix.pathId = pathId;
    prefixes.push(prefix);
  }
  return prefixes;
}

function prefixesLength(prefixes: readonly BgpPrefix[], addPath: boolean): number {
  return prefixes.reduce((sum, prefix) => sum + (addPath ? PATH_ID_LENGTH : 0) + 1 + prefixBytes(prefix.length), 0);
}

function writePrefixes(out: Buffer, at: number, prefixes: readonly BgpPrefix[], addPath: boolean): number {
  for (const prefix of prefixes) {
    if (!Number.isInteger(prefix.length) || prefix.length < 0 || prefix.length > IPV4_BITS) {
      throw new RangeError(`IPv4 prefix length ${prefix.length}`);
    }
    if (addPath) at = out.writeUInt32BE(prefix.pathId ?? 0, at);
    out[at++] = prefix.length;
    const address = (prefix.address & maskOf(prefix.length)) >>> 0;
    for (let i = 0; i < prefixBytes(prefix.length); i++) out[at++] = (address >>> (24 - 8 * i)) & 0xff;
  }
  return at;
}

/** Where each AFI/SAFI tuple of a capability's list starts; the caller has checked the list is whole tuples. */
function familyTuples(start: number, end: number): number[] {
  const starts: number[] = [];
  for (let at = start; at < end; at += FAMILY_TUPLE_LENGTH) starts.push(at);
  return starts;
}

function decodeCapabilities(bytes: Buffer, at: number, end: number, into: BgpCapability[]): BgpRefused | undefined {
  const malformed = () => openError('malformed-capability', BGP_OPEN_MESSAGE_ERROR.UNSPECIFIC);
  while (at < end) {
    if (end - at < TLV_HEADER_LENGTH) return malformed();
    const code = bytes[at];
    const length = bytes[at + 1];
    const value = at + TLV_HEADER_LENGTH;
    if (end - value < length) return malformed();
    // A capability this codec knows, at a length its RFC does not allow, is refused as BIRD refuses it.
    switch (code) {
      case BGP_CAPABILITY_CODE.MULTIPROTOCOL:
        if (length !== MULTIPROTOCOL_LENGTH) return malformed();
        into.push({ kind: 'multiprotocol', afi: bytes.readUInt16BE(value), safi: bytes[value + 3] });
        break;
      case BGP_CAPABILITY_CODE.ROUTE_REFRESH:
        if (length !== 0) return malformed();
        into.push({ kind: 'route-refresh' });
        break;
      case BGP_CAPABILITY_CODE.GRACEFUL_RESTART: {
        if (
          length < GRACEFUL_RESTART_HEADER_LENGTH ||
          (length - GRACEFUL_RESTART_HEADER_LENGTH) % FAMILY_TUPLE_LENGTH
        ) {
          return malformed();
        }
        const flagsTime = bytes.readUInt16BE(value);
        into.push({
          kind: 'graceful-restart',
          restarting: (flagsTime & GRACEFUL_RESTART_RESTARTING) !== 0,
          notification: (flagsTime & GRACEFUL_RESTART_NOTIFICATION) !== 0,
          restartTime: flagsTime & GRACEFUL_RESTART_TIME_MASK,
          families: familyTuples(value + GRACEFUL_RESTART_HEADER_LENGTH, value + length).map((tuple) => ({
            afi: bytes.readUInt16BE(tuple),
            safi: bytes[tuple + 2],
            forwardingState: (bytes[tuple + 3] & GRACEFUL_RESTART_FORWARDING_STATE) !== 0,
          })),
        });
        break;
      }
      case BGP_CAPABILITY_CODE.FOUR_OCTET_AS:
        if (length !== FOUR_OCTET_AS_LENGTH) return malformed();
        into.push({ kind: 'four-octet-as', as: bytes.readUInt32BE(value) });
        break;
      case BGP_CAPABILITY_CODE.ADD_PATH:
        if (length % FAMILY_TUPLE_LENGTH) return malformed();
        into.push({
          kind: 'add-path',
          families: familyTuples(value, value + length).map((tuple) => ({
            afi: bytes.readUInt16BE(tuple),
            safi: bytes[tuple + 2],
            sendReceive: bytes[tuple + 3],
          })),
        });
        break;
      default:
        into.push({ kind: 'unrecognized', code, value: bytes.subarray(value, value + length) });
    }
    at = value + length;
  }
  return undefined;
}

function capabilityValueLength(capability: BgpCapability): number {
  switch (capability.kind) {
    case 'multiprotocol':
      return MULTIPROTOCOL_LENGTH;
    case 'route-refresh':
      return 0;
    case 'graceful-restart':
      return GRACEFUL_RESTART_HEADER_LENGTH + FAMILY_TUPLE_LENGTH * capability.families.length;
    case 'four-octet-as':
      return FOUR_OCTET_AS_LENGTH;
    case 'add-path':
      return FAMILY_TUPLE_LENGTH * capability.families.length;
    case 'unrecognized':
      return capability.value.length;
  }
}

const capabilityLength = (capability: BgpCapability): number => TLV_HEADER_LENGTH + capabilityValueLength(capability);

const CAPABILITY_CODE_OF = {
  multiprotocol: BGP_CAPABILITY_CODE.MULTIPROTOCOL,
  'route-refresh': BGP_CAPABILITY_CODE.ROUTE_REFRESH,
  'graceful-restart': BGP_CAPABILITY_CODE.GRACEFUL_RESTART,
  'four-octet-as': BGP_CAPABILITY_CODE.FOUR_OCTET_AS,
  'add-path': BGP_CAPABILITY_CODE.ADD_PATH,
} as const;

function writeCapability(out: Buffer, at: number, capability: BgpCapability): number {
  const length = capabilityValueLength(capability);
  if (length > MAX_SHORT_LENGTH) throw new RangeError(`capability of ${length} bytes`);
  out[at] = capability.kind === 'unrecognized' ? capability.code : CAPABILITY_CODE_OF[capability.kind];
  out[at + 1] = length;
  at += TLV_HEADER_LENGTH;
  const writeFamily = (family: BgpAddressFamily, last: number) => {
    at = out.writeUInt16BE(family.afi, at);
    out[at++] = family.safi;
    out[at++] = last;
  };
  switch (capability.kind) {
    case 'multiprotocol':
      at = out.writeUInt16BE(capability.afi, at);
      out[at++] = 0;
      out[at++] = capability.safi;
      return at;
    case 'route-refresh':
      return at;
    case 'graceful-restart': {
      const flags =
        (capability.restarting ? GRACEFUL_RESTART_RESTARTING : 0) |
        (capability.notification ? GRACEFUL_RESTART_NOTIFICATION : 0);
      at = out.writeUInt16BE(flags | (capability.restartTime & GRACEFUL_RESTART_TIME_MASK), at);
      for (const family of capability.families) {
        writeFamily(family, family.forwardingState ? GRACEFUL_RESTART_FORWARDING_STATE : 0);
      }
      return at;
    }
    case 'four-octet-as':
      return out.writeUInt32BE(capability.as >>> 0, at);
    case 'add-path':
      for (const family of capability.families) writeFamily(family, family.sendReceive);
      return at;
    case 'unrecognized':
      return at + capability.value.copy(out, at);
  }
}

/** The Capabilities parameter's value; 0 when there are none, as no parameter is written then. */
function capabilitiesLength(open: BgpOpen): number {
  return open.capabilities.reduce((sum, capability) => sum + capabilityLength(capability), 0);
}

function optionalParametersLength(open: BgpOpen): number {
  const capabilities = capabilitiesLength(open);
  const first = capabilities === 0 ? 0 : TLV_HEADER_LENGTH + capabilities;
  return open.parameters.reduce((sum, parameter) => sum + TLV_HEADER_LENGTH + parameter.value.length, first);
}

function decodeOpen(bytes: Buffer): BgpParsed<BgpOpen> {
  if (bytes.length < OPEN_MIN_LENGTH) return badLength('bad-message-length', bytes, 0);
  const version = bytes[BGP_OPEN_FIELD.version];
  if (version !== BGP_VERSION) {
    // RFC 4271 §6.2: the data is the largest version this speaker supports.
    const supported = Buffer.alloc(2);
    supported.writeUInt16BE(BGP_VERSION);
    return openError('unsupported-version', BGP_OPEN_MESSAGE_ERROR.UNSUPPORTED_VERSION_NUMBER, supported);
  }
  // RFC 4271 names no error for a parameters length that disagrees with the message's; BIRD answers Bad Message Length.
  if (OPEN_MIN_LENGTH + bytes[BGP_OPEN_FIELD.optionalParametersLength] !== bytes.length) {
    return badLength('bad-message-length', bytes, 0);
  }
  const capabilities: BgpCapability[] = [];
  const parameters: BgpOptionalParameter[] = [];
  for (let at: number = BGP_OPEN_FIELD.optionalParameters; at < bytes.length;) {
    if (bytes.length - at < TLV_HEADER_LENGTH) return openError('malformed-open', BGP_OPEN_MESSAGE_ERROR.UNSPECIFIC);
    const type = bytes[at];
    const value = at + TLV_HEADER_LENGTH;
    const end = value + bytes[at + 1];
    if (end > bytes.length) return openError('malformed-open', BGP_OPEN_MESSAGE_ERROR.UNSPECIFIC);
    if (type === BGP_OPTIONAL_PARAMETER.CAPABILITIES) {
      const refused = decodeCapabilities(bytes, value, end, capabilities);
      if (refused !== undefined) return refused;
    } else {
      parameters.push({ type, value: bytes.subarray(value, end) });
    }
    at = end;
  }
  return accepted({
    type: 'open',
    myAs: bytes.readUInt16BE(BGP_OPEN_FIELD.myAs),
    holdTime: bytes.readUInt16BE(BGP_OPEN_FIELD.holdTime),
    bgpIdentifier: bytes.readUInt32BE(BGP_OPEN_FIELD.bgpIdentifier),
    capabilities,
    parameters,
  });
}

function writeOpen(out: Buffer, open: BgpOpen): void {
  const parametersLength = optionalParametersLength(open);
  if (parametersLength > MAX_SHORT_LENGTH) {
    throw new RangeError(`${parametersLength} bytes of optional parameters (RFC 9072 is not spoken)`);
  }
  out[BGP_OPEN_FIELD.version] = BGP_VERSION;
  out.writeUInt16BE(open.myAs > 0xffff ? AS_TRANS : open.myAs, BGP_OPEN_FIELD.myAs);
  out.writeUInt16BE(open.holdTime, BGP_OPEN_FIELD.holdTime);
  out.writeUInt32BE(open.bgpIdentifier >>> 0, BGP_OPEN_FIELD.bgpIdentifier);
  out[BGP_OPEN_FIELD.optionalParametersLength] = parametersLength;
  let at: number = BGP_OPEN_FIELD.optionalParameters;
  const capabilities = capabilitiesLength(open);
  if (capabilities > 0) {
    out[at++] = BGP_OPTIONAL_PARAMETER.CAPABILITIES;
    out[at++] = capabilities;
    for (const capability of open.capabilities) at = writeCapability(out, at, capability);
  }
  for (const parameter of open.parameters) {
    out[at++] = parameter.type;
    out[at++] = parameter.value.length;
    at += parameter.value.copy(out, at);
  }
}

/** The AS a speaker's OPEN announces: its 4-octet AS capability's when it sends one, else My Autonomous System. */
export function bgpOpenAs(open: BgpOpen): number {
  for (const capability of open.capabilities) if (capability.kind === 'four-octet-as') return capability.as;
  return open.myAs;
}

function decodeAsPath(value: Buffer, fourOctetAs: boolean): BgpAsPathSegment[] | undefined {
  const asLength = fourOctetAs ? 4 : 2;
  const segments: BgpAsPathSegment[] = [];
  for (let at = 0; at < value.length;) {
    if (value.length - at < 2) return undefined;
    const type = value[at];
    const count = value[at + 1];
    at += 2;
    // RFC 7606 §7.2 counts an empty segment as malformed, so the encoding never needs one.
    if (type < BGP_AS_PATH_SEGMENT.AS_SET || type > BGP_AS_PATH_SEGMENT.AS_CONFED_SET || count === 0) return undefined;
    if (value.length - at < count * asLength) return undefined;
    const asns: number[] = [];
    for (let i = 0; i < count; i++, at += asLength) {
      asns.push(fourOctetAs ? value.readUInt32BE(at) : value.readUInt16BE(at));
    }
    segments.push({ type, asns });
  }
  return segments;
}

function asPathLength(segments: readonly BgpAsPathSegment[], fourOctetAs: boolean): number {
  return segments.reduce((sum, segment) => sum + 2 + segment.asns.length * (fourOctetAs ? 4 : 2), 0);
}

function writeAsPath(out: Buffer, at: number, segments: readonly BgpAsPathSegment[], fourOctetAs: boolean): number {
  for (const segment of segments) {
    if (segment.asns.length === 0 || segment.asns.length > MAX_SEGMENT_ASNS) {
      throw new RangeError(`AS_PATH segment of ${segment.asns.length} ASes`);
    }
    out[at++] = segment.type;
    out[at++] = segment.asns.length;
    for (const asn of segment.asns) {
      // Where 4-octet AS was not negotiated, the speaker substitutes AS_TRANS and adds AS4_PATH (RFC 6793 §4.2.2).
      if (!fourOctetAs && asn > 0xffff) throw new RangeError(`AS ${asn} in a 2-octet AS_PATH`);
      at = fourOctetAs ? out.writeUInt32BE(asn >>> 0, at) : out.writeUInt16BE(asn, at);
    }
  }
  return at;
}

/** One attribute to write: its flags without Extended Length, which the writer sets from the value's length. */
interface AttributeEntry {
  flags: number;
  typeCode: number;
  length: number;
  write: (out: Buffer, at: number) => number;
}

const write32 = (value: number) => (out: Buffer, at: number) => out.writeUInt32BE(value >>> 0, at);

function attributeEntries(attributes: BgpPathAttributes, fourOctetAs: boolean): AttributeEntry[] {
  const entries: AttributeEntry[] = [];
  const { origin, asPath, nextHop, multiExitDisc, localPref, originatorId, clusterList } = attributes;
  if (origin !== undefined) {
    const write = (out: Buffer, at: number) => out.writeUInt8(origin, at);
    entries.push({ flags: WELL_KNOWN_FLAGS, typeCode: BGP_ATTRIBUTE_TYPE.ORIGIN, length: 1, write });
  }
  if (asPath !== undefined) {
    entries.push({
      flags: WELL_KNOWN_FLAGS,
      typeCode: BGP_ATTRIBUTE_TYPE.AS_PATH,
      length: asPathLength(asPath, fourOctetAs),
      write: (out, at) => writeAsPath(out, at, asPath, fourOctetAs),
    });
  }
  const fixed = (flags: number, typeCode: number, value: number | undefined) => {
    if (value !== undefined) entries.push({ flags, typeCode, length: 4, write: write32(value) });
  };
  fixed(WELL_KNOWN_FLAGS, BGP_ATTRIBUTE_TYPE.NEXT_HOP, nextHop);
  fixed(OPTIONAL_NON_TRANSITIVE_FLAGS, BGP_ATTRIBUTE_TYPE.MULTI_EXIT_DISC, multiExitDisc);
  fixed(WELL_KNOWN_FLAGS, BGP_ATTRIBUTE_TYPE.LOCAL_PREF, localPref);
  fixed(OPTIONAL_NON_TRANSITIVE_FLAGS, BGP_ATTRIBUTE_TYPE.ORIGINATOR_ID, originatorId);
  if (clusterList !== undefined) {
    entries.push({
      flags: OPTIONAL_NON_TRANSITIVE_FLAGS,
      typeCode: BGP_ATTRIBUTE_TYPE.CLUSTER_LIST,
      length: clusterList.length * 4,
      write: (out, at) => clusterList.reduce((next, id) => write32(id)(out, next), at),
    });
  }
  for (const raw of attributes.unrecognized) {
    entries.push({
      flags: raw.flags,
      typeCode: raw.typeCode,
      length: raw.value.length,
      write: (out, at) => at + raw.value.copy(out, at),
    });
  }
  // Array.prototype.sort is stable, so unrecognized attributes sharing a code keep their order.
  return entries.sort((a, b) => a.typeCode - b.typeCode);
}

const extendedLength = (entry: AttributeEntry): boolean =>
  (entry.flags & BGP_ATTRIBUTE_FLAG.EXTENDED_LENGTH) !== 0 || entry.length > MAX_SHORT_LENGTH;

const entryLength = (entry: AttributeEntry): number =>
  (extendedLength(entry) ? EXTENDED_ATTRIBUTE_HEADER_LENGTH : ATTRIBUTE_HEADER_LENGTH) + entry.length;

function writeAttributes(out: Buffer, at: number, entries: readonly AttributeEntry[]): number {
  for (const entry of entries) {
    if (entry.length > 0xffff) throw new RangeError(`path attribute of ${entry.length} bytes`);
    const extended = extendedLength(entry);
    out[at++] = (entry.flags | (extended ? BGP_ATTRIBUTE_FLAG.EXTENDED_LENGTH : 0)) & 0xff;
    out[at++] = entry.typeCode;
    if (extended) at = out.writeUInt16BE(entry.length, at);
    else out[at++] = entry.length;
    at = entry.write(out, at);
  }
  return at;
}

/**
 * The category bits and the value length (fixed, or a multiple of `unit`) of each attribute this codec interprets. A
 * CLUSTER_LIST that is no whole number of IDs is an Attribute Length Error, as BIRD 1.6 answers it.
 */
const ATTRIBUTE_RULES = new Map<number, { flags: number; length?: number; unit?: number }>([
  [BGP_ATTRIBUTE_TYPE.ORIGIN, { flags: WELL_KNOWN_FLAGS, length: 1 }],
  [BGP_ATTRIBUTE_TYPE.AS_PATH, { flags: WELL_KNOWN_FLAGS }],
  [BGP_ATTRIBUTE_TYPE.NEXT_HOP, { flags: WELL_KNOWN_FLAGS, length: 4 }],
  [BGP_ATTRIBUTE_TYPE.MULTI_EXIT_DISC, { flags: OPTIONAL_NON_TRANSITIVE_FLAGS, length: 4 }],
  [BGP_ATTRIBUTE_TYPE.LOCAL_PREF, { flags: WELL_KNOWN_FLAGS, length: 4 }],
  [BGP_ATTRIBUTE_TYPE.ORIGINATOR_ID, { flags: OPTIONAL_NON_TRANSITIVE_FLAGS, length: 4 }],
  [BGP_ATTRIBUTE_TYPE.CLUSTER_LIST, { flags: OPTIONAL_NON_TRANSITIVE_FLAGS, unit: 4 }],
]);

/** The flag and length rules of RFC 4271 §6.3 for the attributes this codec interprets, then their values. */
function decodeAttributes(
  bytes: Buffer,
  at: number,
  end: number,
  fourOctetAs: boolean,
): BgpPathAttributes | BgpRefused {
  const attributes: BgpPathAttributes = { unrecognized: [] };
  const seen = new Set<number>();
  const malformedList = () =>
    updateError('malformed-attribute-list', BGP_UPDATE_MESSAGE_ERROR.MALFORMED_ATTRIBUTE_LIST);
  while (at < end) {
    if (end - at < ATTRIBUTE_HEADER_LENGTH) return malformedList();
    const flags = bytes[at];
    const typeCode = bytes[at + 1];
    const extended = (flags & BGP_ATTRIBUTE_FLAG.EXTENDED_LENGTH) !== 0;
    const headerLength = extended ? EXTENDED_ATTRIBUTE_HEADER_LENGTH : ATTRIBUTE_HEADER_LENGTH;
    if (end - at < headerLength) return malformedList();
    const length = extended ? bytes.readUInt16BE(at + 2) : bytes[at + 2];
    const valueStart = at + headerLength;
    if (end - valueStart < length) return malformedList();
    if (seen.has(typeCode)) return malformedList();
    seen.add(typeCode);
    const value = bytes.subarray(valueStart, valueStart + length);
    // The errors about one attribute carry the whole of it, flags to value (RFC 4271 §6.3).
    const attribute = bytes.subarray(at, valueStart + length);
    at = valueStart + length;

    const rule = ATTRIBUTE_RULES.get(typeCode);
    if (rule === undefined) {
      attributes.unrecognized.push({ flags, typeCode, value });
      continue;
    }
    if ((flags & FLAG_CATEGORY_MASK) !== rule.flags) {
      return updateError('attribute-flags-error', BGP_UPDATE_MESSAGE_ERROR.ATTRIBUTE_FLAGS_ERROR, attribute);
    }
    if (
      (rule.length !== undefined && length !== rule.length) ||
      (rule.unit !== undefined && length % rule.unit !== 0)
    ) {
      return updateError('attribute-length-error', BGP_UPDATE_MESSAGE_ERROR.ATTRIBUTE_LENGTH_ERROR, attribute);
    }
    switch (typeCode) {
      case BGP_ATTRIBUTE_TYPE.ORIGIN:
        if (value[0] > BGP_ORIGIN.INCOMPLETE) {
          return updateError('invalid-origin', BGP_UPDATE_MESSAGE_ERROR.INVALID_ORIGIN_ATTRIBUTE, attribute);
        }
        attributes.origin = value[0];
        break;
      case BGP_ATTRIBUTE_TYPE.AS_PATH: {
        const segments = decodeAsPath(value, fourOctetAs);
        if (segments === undefined) return updateError('malformed-as-path', BGP_UPDATE_MESSAGE_ERROR.MALFORMED_AS_PATH);
        attributes.asPath = segments;
        break;
      }
      case BGP_ATTRIBUTE_TYPE.NEXT_HOP:
        attributes.nextHop = value.readUInt32BE(0);
        break;
      case BGP_ATTRIBUTE_TYPE.MULTI_EXIT_DISC:
        attributes.multiExitDisc = value.readUInt32BE(0);
        break;
      case BGP_ATTRIBUTE_TYPE.LOCAL_PREF:
        attributes.localPref = value.readUInt32BE(0);
        break;
      case BGP_ATTRIBUTE_TYPE.ORIGINATOR_ID:
        attributes.originatorId = value.readUInt32BE(0);
        break;
      case BGP_ATTRIBUTE_TYPE.CLUSTER_LIST:
        attributes.clusterList = Array.from({ length: length / 4 }, (_, i) => value.readUInt32BE(i * 4));
        break;
    }
  }
  return attributes;
}

const isRefused = (value: object): value is BgpRefused => 'ok' in value && value.ok === false;

/**
 * Only the syntax of an UPDATE is checked: whether its attributes make a route (ORIGIN, AS_PATH and NEXT_HOP with
 * NLRI, RFC 4271 §6.3's Missing Well-known Attribute) is the speaker's to judge, which may treat the route as
 * withdrawn instead of resetting the session (RFC 7606).
 */
function decodeUpdate(bytes: Buffer, options: BgpCodecOptions): BgpParsed<BgpUpdate> {
  if (bytes.length < UPDATE_MIN_LENGTH) return badLength('bad-message-length', bytes, 0);
  const addPath = options.addPath ?? false;
  const withdrawnStart = BGP_UPDATE_FIELD.withdrawnRoutes;
  const withdrawnEnd = withdrawnStart + bytes.readUInt16BE(BGP_UPDATE_FIELD.withdrawnRoutesLength);
  const malformedList = () =>
    updateError('malformed-attribute-list', BGP_UPDATE_MESSAGE_ERROR.MALFORMED_ATTRIBUTE_LIST);
  if (withdrawnEnd + 2 > bytes.length) return malformedList();
  const attributesStart = withdrawnEnd + 2;
  const attributesEnd = attributesStart + bytes.readUInt16BE(withdrawnEnd);
  if (attributesEnd > bytes.length) return malformedList();

  const withdrawn = decodePrefixes(bytes, withdrawnStart, withdrawnEnd, addPath);
  if (isRefused(withdrawn)) return withdrawn;
  const attributes = decodeAttributes(bytes, attributesStart, attributesEnd, options.fourOctetAs ?? false);
  if (isRefused(attributes)) return attributes;
  const nlri = decodePrefixes(bytes, attributesEnd, bytes.length, addPath);
  if (isRefused(nlri)) return nlri;
  return accepted({ type: 'update', withdrawn, attributes, nlri });
}

function updateBodyLengths(update: BgpUpdate, options: BgpCodecOptions) {
  const addPath = options.addPath ?? false;
  const entries = attributeEntries(update.attributes, options.fourOctetAs ?? false);
  return {
    entries,
    withdrawn: prefixesLength(update.withdrawn, addPath),
    attributes: entries.reduce((sum, entry) => sum + entryLength(entry), 0),
    nlri: prefixesLength(update.nlri, addPath),
  };
}

function writeUpdate(out: Buffer, update: BgpUpdate, options: BgpCodecOptions): void {
  const addPath = options.addPath ?? false;
  const lengths = updateBodyLengths(update, options);
  let at = out.writeUInt16BE(lengths.withdrawn, BGP_UPDATE_FIELD.withdrawnRoutesLength);
  at = writePrefixes(out, at, update.withdrawn, addPath);
  at = out.writeUInt16BE(lengths.attributes, at);
  at = writeAttributes(out, at, lengths.entries);
  writePrefixes(out, at, update.nlri, addPath);
}

/** End-of-RIB for IPv4 unicast (RFC 4724 §2): an UPDATE with nothing in it, which BIRD sends after its initial table. */
export function isBgpEndOfRib(update: BgpUpdate): boolean {
  const { unrecognized, ...interpreted } = update.attributes;
  return (
    update.withdrawn.length === 0 &&
    update.nlri.length === 0 &&
    unrecognized.length === 0 &&
    Object.values(interpreted).every((value) => value === undefined)
  );
}

function decodeRouteRefresh(bytes: Buffer): BgpParsed<BgpRouteRefresh> {
  if (bytes.length < ROUTE_REFRESH_MIN_LENGTH) return badLength('bad-message-length', bytes, 0);
  const subtype = bytes[BGP_ROUTE_REFRESH_FIELD.subtype];
  const demarcation = subtype === BGP_ROUTE_REFRESH_SUBTYPE.BEGIN || subtype === BGP_ROUTE_REFRESH_SUBTYPE.END;
  if (demarcation && bytes.length !== ROUTE_REFRESH_MIN_LENGTH) {
    // RFC 7313 §5: the data is the whole message.
    return refuse(
      'bad-route-refresh-length',
      BGP_ERROR_CODE.ROUTE_REFRESH_MESSAGE,
      BGP_ROUTE_REFRESH_ERROR.INVALID_MESSAGE_LENGTH,
      bytes,
    );
  }
  return accepted({
    type: 'route-refresh',
    afi: bytes.readUInt16BE(BGP_ROUTE_REFRESH_FIELD.afi),
    subtype,
    safi: bytes[BGP_ROUTE_REFRESH_FIELD.safi],
    data: bytes.subarray(BGP_ROUTE_REFRESH_FIELD.data),
  });
}

const TYPE_CODE_OF = {
  open: BGP_MESSAGE_TYPE.OPEN,
  update: BGP_MESSAGE_TYPE.UPDATE,
  notification: BGP_MESSAGE_TYPE.NOTIFICATION,
  keepalive: BGP_MESSAGE_TYPE.KEEPALIVE,
  'route-refresh': BGP_MESSAGE_TYPE.ROUTE_REFRESH,
} as const;

function encodingLength(message: BgpMessage, options: BgpCodecOptions = {}): number {
  switch (message.type) {
    case 'open':
      return OPEN_MIN_LENGTH + optionalParametersLength(message);
    case 'update': {
      const lengths = updateBodyLengths(message, options);
      return UPDATE_MIN_LENGTH + lengths.withdrawn + lengths.attributes + lengths.nlri;
    }
    case 'notification':
      return NOTIFICATION_MIN_LENGTH + message.data.length;
    case 'keepalive':
      return BGP_HEADER_LENGTH;
    case 'route-refresh':
      return ROUTE_REFRESH_MIN_LENGTH + message.data.length;
  }
}

function encode(message: BgpMessage, options: BgpCodecOptions = {}): Buffer {
  const length = encodingLength(message, options);
  if (length > BGP_MAX_MESSAGE_LENGTH) throw new RangeError(`BGP ${message.type} of ${length} bytes`);
  const out = Buffer.alloc(length);
  out.fill(MARKER_BYTE, BGP_HEADER_FIELD.marker, BGP_HEADER_FIELD.marker + BGP_MARKER_LENGTH);
  out.writeUInt16BE(length, BGP_HEADER_FIELD.length);
  out[BGP_HEADER_FIELD.type] = TYPE_CODE_OF[message.type];
  switch (message.type) {
    case 'open':
      writeOpen(out, message);
      break;
    case 'update':
      writeUpdate(out, message, options);
      break;
    case 'notification':
      out[BGP_NOTIFICATION_FIELD.code] = message.code;
      out[BGP_NOTIFICATION_FIELD.subcode] = message.subcode;
      message.data.copy(out, BGP_NOTIFICATION_FIELD.data);
      break;
    case 'keepalive':
      break;
    case 'route-refresh':
      out.writeUInt16BE(message.afi, BGP_ROUTE_REFRESH_FIELD.afi);
      out[BGP_ROUTE_REFRESH_FIELD.subtype] = message.subtype;
      out[BGP_ROUTE_REFRESH_FIELD.safi] = message.safi;
      message.data.copy(out, BGP_ROUTE_REFRESH_FIELD.data);
      break;
  }
  return out;
}

/**
 * Decodes exactly one message, as `frameBgpMessages` cuts them: `bytes` shorter than its Length field is 'truncated',
 * longer is 'bad-message-length'. Buffers in the result alias `bytes`.
 */
function decode(bytes: Buffer, options: BgpCodecOptions = {}): BgpParsed<BgpMessage> {
  const length = frameLength(bytes, 0);
  if (typeof length === 'object') return length;
  if (length === undefined) return refuseTruncated();
  if (length > bytes.length) return badLength('truncated', bytes, 0);
  if (length < bytes.length) return badLength('bad-message-length', bytes, 0);
  const type = bytes[BGP_HEADER_FIELD.type];
  switch (type) {
    case BGP_MESSAGE_TYPE.OPEN:
      return decodeOpen(bytes);
    case BGP_MESSAGE_TYPE.UPDATE:
      return decodeUpdate(bytes, options);
    case BGP_MESSAGE_TYPE.NOTIFICATION:
      if (length < NOTIFICATION_MIN_LENGTH) return badLength('bad-message-length', bytes, 0);
      return accepted({
        type: 'notification',
        code: bytes[BGP_NOTIFICATION_FIELD.code],
        subcode: bytes[BGP_NOTIFICATION_FIELD.subcode],
        data: bytes.subarray(BGP_NOTIFICATION_FIELD.data),
      });
    case BGP_MESSAGE_TYPE.KEEPALIVE:
      if (length !== BGP_HEADER_LENGTH) return badLength('bad-message-length', bytes, 0);
      return accepted({ type: 'keepalive' });
    case BGP_MESSAGE_TYPE.ROUTE_REFRESH:
      return decodeRouteRefresh(bytes);
  }
  // RFC 4271 §6.1: Bad Message Type carries the type byte.
  return refuse(
    'bad-message-type',
    BGP_ERROR_CODE.MESSAGE_HEADER,
    BGP_MESSAGE_HEADER_ERROR.BAD_MESSAGE_TYPE,
    bytes.subarray(BGP_HEADER_FIELD.type, BGP_HEADER_LENGTH),
  );
}

/** Too few bytes to hold a Length field: Bad Message Length with nothing to quote. */
function refuseTruncated(): BgpRefused {
  return refuse('truncated', BGP_ERROR_CODE.MESSAGE_HEADER, BGP_MESSAGE_HEADER_ERROR.BAD_MESSAGE_LENGTH);
}

/**
 * The plain-object codec (mafintosh style). `options` matter to UPDATEs only; a decoded message re-encodes to the
 * same bytes when it was encoded as this codec encodes (BIRD's messages are), and decode(encode(m)) equals m for a
 * message in that canonical form.
 */
export const bgp = { encode, decode, encodingLength };

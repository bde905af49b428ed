/**
 * The BGP codec against a real BIRD 1.6.8 node-to-node mesh session (test/fixtures/vectors/bgp, README there): every
 * message of both TCP directions decodes to what the two BIRDs were configured with and re-encodes to the same bytes.
 * Then seeded random messages round-trip, and malformed bytes are refused with the NOTIFICATION RFC 4271 §6 names.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  AS_TRANS,
  BGP_ADD_PATH,
  BGP_AFI,
  BGP_AS_PATH_SEGMENT,
  BGP_ATTRIBUTE_FLAG,
  BGP_ATTRIBUTE_TYPE,
  BGP_CAPABILITY_CODE,
  BGP_CEASE,
  BGP_ERROR_CODE,
  BGP_ERROR_REASONS,
  BGP_MAX_MESSAGE_LENGTH,
  BGP_MESSAGE_HEADER_ERROR,
  BGP_MESSAGE_TYPE,
  BGP_OPEN_MESSAGE_ERROR,
  BGP_ORIGIN,
  BGP_PORT,
  BGP_ROUTE_REFRESH_ERROR,
  BGP_ROUTE_REFRESH_SUBTYPE,
  BGP_SAFI,
  BGP_UPDATE_MESSAGE_ERROR,
  BgpFramer,
  IP_PROTOCOL,
  Ipv4View,
  LINKTYPE,
  TCP_FLAG,
  TcpView,
  bgp,
  bgpOpenAs,
  frameBgpMessages,
  ipv4FromString,
  isBgpEndOfRib,
  pcapng,
  type BgpCapability,
  type BgpCodecOptions,
  type BgpMessage,
  type BgpOpen,
  type BgpParsed,
  type BgpPathAttributes,
  type BgpPrefix,
  type BgpRefused,
  type BgpUpdate,
} from '../../src/wire/index.js';

const CAPTURE = new URL('../fixtures/vectors/bgp/bird-mesh.pcapng', import.meta.url);
const ETHERNET_HEADER_LENGTH = 14;
const ETHERTYPE_IPV4 = 0x0800;

const address = (text: string) => ipv4FromString(text) as number;
const NODE_A = address('10.99.0.1');
const NODE_B = address('10.99.0.2');
const MESH_AS = 64512;

interface CapturedMessage {
  /** 1-based, as tshark and the README number frames: the frame whose segment completed the message. */
  frame: number;
  from: number;
  bytes: Buffer;
}

/**
 * Both directions' byte streams, each put in sequence order from its SYN and cut into messages with `BgpFramer`.
 * Retransmitted bytes are skipped; a gap fails the test, as nothing after it could be framed.
 */
function capturedMessages(): CapturedMessage[] {
  const capture = pcapng.decode(readFileSync(CAPTURE));
  if (!capture.ok) throw new Error(`capture: ${capture.reason}`);
  const streams = new Map<string, { next: number; framer: BgpFramer }>();
  const messages: CapturedMessage[] = [];
  capture.value.packets.forEach((packet, index) => {
    const frame = index + 1;
    expect(capture.value.interfaces[packet.interfaceId].linkType).toBe(LINKTYPE.ETHERNET);
    expect(packet.data.readUInt16BE(12)).toBe(ETHERTYPE_IPV4);
    const ip = Ipv4View.check(packet.data.subarray(ETHERNET_HEADER_LENGTH));
    if (!ip.ok) throw new Error(`frame ${frame}: ${ip.reason}`);
    expect(ip.value.protocol).toBe(IP_PROTOCOL.TCP);
    // veth hands tcpdump segments before their checksum is filled in, so only the header is checked.
    const segment = TcpView.check(ip.value.payload);
    if (!segment.ok) throw new Error(`frame ${frame}: ${segment.reason}`);
    const tcp = segment.value;
    const key = `${ip.value.src}:${tcp.srcPort}`;
    if (tcp.flags & TCP_FLAG.SYN) {
      streams.set(key, { next: (tcp.sequence + 1) >>> 0, framer: new BgpFramer() });
      return;
    }
    const stream = streams.get(key);
    if (stream === undefined) throw new Error(`frame ${frame}: data before the SYN`);
    const payload = tcp.payload;
    // Sequence numbers wrap, so the distance is taken modulo 2^32, as a signed 32-bit number.
    const alreadySeen = (stream.next - tcp.sequence) | 0;
    if (alreadySeen < 0) throw new Error(`frame ${frame}: a gap in the ${key} stream`);
    if (alreadySeen >= payload.length) {
      if (tcp.flags & TCP_FLAG.FIN && alreadySeen === 0) stream.next = (stream.next + 1) >>> 0;
      return;
    }
    const fresh = payload.subarray(alreadySeen);
    stream.next = (stream.next + fresh.length) >>> 0;
    const frames = stream.framer.push(fresh);
    if (frames.error !== undefined) throw new Error(`frame ${frame}: ${frames.error.reason}`);
    for (const bytes of frames.messages) messages.push({ frame, from: ip.value.src, bytes });
    // FIN takes a sequence number of its own, after the segment's data.
    if (tcp.flags & TCP_FLAG.FIN) stream.next = (stream.next + 1) >>> 0;
  });
  for (const { framer } of streams.values()) expect(framer.buffered).toBe(0);
  return messages;
}

function accepted<T>(result: BgpParsed<T>): T {
  if (!result.ok) throw new Error(`refused: ${result.reason}`);
  return result.value;
}

function refused(result: BgpParsed<unknown>): BgpRefused {
  if (result.ok) throw new Error('accepted');
  return result;
}

/** What an UPDATE's sender and receiver agreed in their OPENs (RFC 6793 §3, RFC 7911 §4). */
function negotiated(sender: BgpOpen, receiver: BgpOpen): BgpCodecOptions {
  const has = (open: BgpOpen, kind: BgpCapability['kind']) => open.capabilities.some((c) => c.kind === kind);
  const addPathMode = (open: BgpOpen) => {
    for (const capability of open.capabilities) {
      if (capability.kind !== 'add-path') continue;
      const family = capability.families.find((f) => f.afi === BGP_AFI.IPV4 && f.safi === BGP_SAFI.UNICAST);
      if (family !== undefined) return family.sendReceive;
    }
    return 0;
  };
  return {
    fourOctetAs: has(sender, 'four-octet-as') && has(receiver, 'four-octet-as'),
    addPath: (addPathMode(sender) & BGP_ADD_PATH.SEND) !== 0 && (addPathMode(receiver) & BGP_ADD_PATH.RECEIVE) !== 0,
  };
}

const messages = capturedMessages();
const opens = new Map<number, BgpOpen>();
for (const { from, bytes } of messages) {
  const decoded = bgp.decode(bytes);
  if (decoded.ok && decoded.value.type === 'open') opens.set(from, decoded.value);
}
const peerOf = (from: number) => (from === NODE_A ? NODE_B : NODE_A);
const optionsFor = (from: number) => negotiated(opens.get(from) as BgpOpen, opens.get(peerOf(from)) as BgpOpen);
const decodedCapture = messages.map((message) => ({
  ...message,
  message: accepted(bgp.decode(message.bytes, optionsFor(message.from))),
}));
const at = (frame: number) => {
  const found = decodedCapture.find((message) => message.frame === frame);
  if (found === undefined) throw new Error(`no message in frame ${frame}`);
  return found;
};
const update = (frame: number) => at(frame).message as BgpUpdate;

const prefix = (text: string, pathId: number): BgpPrefix => {
  const [network, length] = text.split('/');
  return { address: address(network), length: Number(length), pathId };
};
const calicoBlock = (nextHop: number): BgpPathAttributes => ({
  origin: BGP_ORIGIN.IGP,
  asPath: [],
  nextHop,
  localPref: 100,
  unrecognized: [],
});
const extraBlock: BgpPathAttributes = {
  origin: BGP_ORIGIN.IGP,
  asPath: [{ type: BGP_AS_PATH_SEGMENT.AS_SEQUENCE, asns: [4200000001] }],
  nextHop: NODE_A,
  multiExitDisc: 10,
  localPref: 100,
  // COMMUNITIES (RFC 1997) is optional transitive: BIRD sends it with those two flags and the community 64512:100.
  unrecognized: [
    {
      flags: BGP_ATTRIBUTE_FLAG.OPTIONAL | BGP_ATTRIBUTE_FLAG.TRANSITIVE,
      typeCode: BGP_ATTRIBUTE_TYPE.COMMUNITIES,
      value: Buffer.from([0xfc, 0x00, 0x00, 0x64]),
    },
  ],
};

describe('BIRD mesh capture', () => {
  it('holds the session the README lists, in order', () => {
    expect(messages.map(({ frame, from, bytes }) => [frame, from === NODE_A ? 'A' : 'B', bytes[18]])).toEqual([
      [4, 'A', BGP_MESSAGE_TYPE.OPEN],
      [6, 'B', BGP_MESSAGE_TYPE.OPEN],
      [8, 'B', BGP_MESSAGE_TYPE.KEEPALIVE],
      [10, 'A', BGP_MESSAGE_TYPE.KEEPALIVE],
      [11, 'B', BGP_MESSAGE_TYPE.UPDATE],
      [12, 'A', BGP_MESSAGE_TYPE.UPDATE],
      [13, 'B', BGP_MESSAGE_TYPE.UPDATE],
      [14, 'A', BGP_MESSAGE_TYPE.UPDATE],
      [16, 'A', BGP_MESSAGE_TYPE.UPDATE],
      [18, 'B', BGP_MESSAGE_TYPE.ROUTE_REFRESH],
      [19, 'A', BGP_MESSAGE_TYPE.ROUTE_REFRESH],
      [21, 'A', BGP_MESSAGE_TYPE.UPDATE],
      [23, 'A', BGP_MESSAGE_TYPE.UPDATE],
      [25, 'A', BGP_MESSAGE_TYPE.UPDATE],
      [27, 'A', BGP_MESSAGE_TYPE.ROUTE_REFRESH],
      [29, 'A', BGP_MESSAGE_TYPE.UPDATE],
      [31, 'B', BGP_MESSAGE_TYPE.NOTIFICATION],
    ]);
  });

  it('OPENs: version 4, AS 64512, hold time 240, router id = node IP, the capabilities of a Calico mesh peer', () => {
    for (const [node, frame] of [
      [NODE_A, 4],
      [NODE_B, 6],
    ]) {
      const open = at(frame).message;
      expect(open).toEqual({
        type: 'open',
        myAs: MESH_AS,
        holdTime: 240,
        bgpIdentifier: node,
        capabilities: [
          { kind: 'multiprotocol', afi: BGP_AFI.IPV4, safi: BGP_SAFI.UNICAST },
          { kind: 'route-refresh' },
          {
            kind: 'graceful-restart',
            restarting: false,
            notification: false,
            restartTime: 120,
            families: [{ afi: BGP_AFI.IPV4, safi: BGP_SAFI.UNICAST, forwardingState: false }],
          },
          { kind: 'four-octet-as', as: MESH_AS },
          {
            kind: 'add-path',
            families: [{ afi: BGP_AFI.IPV4, safi: BGP_SAFI.UNICAST, sendReceive: BGP_ADD_PATH.BOTH }],
          },
          { kind: 'unrecognized', code: BGP_CAPABILITY_CODE.ENHANCED_ROUTE_REFRESH, value: Buffer.alloc(0) },
          { kind: 'unrecognized', code: BGP_CAPABILITY_CODE.LONG_LIVED_GRACEFUL_RESTART, value: Buffer.alloc(0) },
        ],
        parameters: [],
      });
      expect(bgpOpenAs(open as BgpOpen)).toBe(MESH_AS);
    }
    expect(optionsFor(NODE_A)).toEqual({ fourOctetAs: true, addPath: true });
    expect(optionsFor(NODE_B)).toEqual({ fourOctetAs: true, addPath: true });
  });

  it('runs on TCP port 179, B connecting to the passive A', () => {
    const capture = pcapng.decode(readFileSync(CAPTURE));
    if (!capture.ok) throw new Error(capture.reason);
    const ip = new Ipv4View(capture.value.packets[0].data.subarray(ETHERNET_HEADER_LENGTH));
    const syn = new TcpView(ip.payload);
    expect([ip.src, ip.dst, syn.flags, syn.dstPort]).toEqual([NODE_B, NODE_A, TCP_FLAG.SYN, BGP_PORT]);
  });

  it('KEEPALIVEs after the OPENs', () => {
    expect(at(8).message).toEqual({ type: 'keepalive' });
    expect(at(10).message).toEqual({ type: 'keepalive' });
  });

  it('UPDATEs announce each node its own /26 block with next hop self, LOCAL_PREF 100 and an empty AS_PATH', () => {
    expect(update(11)).toEqual({
      type: 'update',
      withdrawn: [],
      attributes: calicoBlock(NODE_B),
      nlri: [prefix('192.168.87.192/26', 3)],
    });
    expect(update(12)).toEqual({
      type: 'update',
      withdrawn: [],
      attributes: calicoBlock(NODE_A),
      nlri: [prefix('192.168.77.128/26', 3)],
    });
  });

  it('the second block carries the 4-octet AS, MED and community its export filter adds', () => {
    expect(update(14)).toEqual({
      type: 'update',
      withdrawn: [],
      attributes: extraBlock,
      nlri: [prefix('192.168.77.192/26', 4)],
    });
  });

  it('End-of-RIB after each initial table, and only there', () => {
    const endOfRib = decodedCapture.filter(({ message }) => message.type === 'update' && isBgpEndOfRib(message));
    expect(endOfRib.map(({ frame }) => frame)).toEqual([13, 16]);
  });

  it('ROUTE-REFRESH: the request, then the beginning and end of the answer (RFC 7313)', () => {
    const refresh = (subtype: number) => ({
      type: 'route-refresh',
      afi: BGP_AFI.IPV4,
      subtype,
      safi: BGP_SAFI.UNICAST,
      data: Buffer.alloc(0),
    });
    expect(at(18).message).toEqual(refresh(BGP_ROUTE_REFRESH_SUBTYPE.REQUEST));
    expect(at(19).message).toEqual(refresh(BGP_ROUTE_REFRESH_SUBTYPE.BEGIN));
    expect(at(27).message).toEqual(refresh(BGP_ROUTE_REFRESH_SUBTYPE.END));
    // The answer repeats the initial announcements byte for byte.
    expect(at(23).bytes).toEqual(at(12).bytes);
    expect(at(25).bytes).toEqual(at(14).bytes);
  });

  it('withdrawals carry only withdrawn routes, with their path ids', () => {
    const withdrawal = (route: BgpPrefix) => ({
      type: 'update',
      withdrawn: [route],
      attributes: { unrecognized: [] },
      nlri: [],
    });
    // BIRD's refeed withdraws what its export filter turns down: B's block, learnt over iBGP.
    expect(update(21)).toEqual(withdrawal(prefix('192.168.87.192/26', 6)));
    expect(update(29)).toEqual(withdrawal(prefix('192.168.77.192/26', 4)));
  });

  it('NOTIFICATION Cease / Administrative Shutdown when B goes down', () => {
    expect(at(31)).toMatchObject({ from: NODE_B });
    expect(at(31).message).toEqual({
      type: 'notification',
      code: BGP_ERROR_CODE.CEASE,
      subcode: BGP_CEASE.ADMINISTRATIVE_SHUTDOWN,
      data: Buffer.alloc(0),
    });
  });

  it('every message re-encodes to the bytes BIRD sent', () => {
    for (const { from, bytes, message } of decodedCapture) {
      const options = optionsFor(from);
      expect(bgp.encode(message, options)).toEqual(bytes);
      expect(bgp.encodingLength(message, options)).toBe(bytes.length);
    }
  });

  it('frames the same messages however the stream is cut', () => {
    const aToB = Buffer.concat(messages.filter(({ from }) => from === NODE_A).map(({ bytes }) => bytes));
    const whole = frameBgpMessages(aToB);
    expect(whole.consumed).toBe(aToB.length);
    expect(whole.error).toBeUndefined();
    const framer = new BgpFramer();
    const byteByByte = [...aToB].flatMap((byte) => framer.push(Buffer.of(byte)).messages);
    expect(byteByByte).toEqual(whole.messages);
    expect(whole.messages).toEqual(messages.filter(({ from }) => from === NODE_A).map(({ bytes }) => bytes));
  });

  it('refuses every truncation of every message, never throwing', () => {
    for (const { from, bytes } of decodedCapture) {
      for (let length = 0; length < bytes.length; length++) {
        const result = refused(bgp.decode(bytes.subarray(0, length), optionsFor(from)));
        expect(result.reason).toBe('truncated');
        expect(result.notification).toMatchObject({
          code: BGP_ERROR_CODE.MESSAGE_HEADER,
          subcode: BGP_MESSAGE_HEADER_ERROR.BAD_MESSAGE_LENGTH,
        });
      }
    }
  });
});

/** mulberry32: a small seeded generator, so a failing case can be replayed from its seed. */
function random(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x100000000;
  };
  const int = (low: number, high: number) => low + Math.floor(next() * (high - low + 1));
  return {
    int,
    uint32: () => int(0, 0xffffffff),
    bool: (probability = 0.5) => next() < probability,
    bytes: (length: number) => Buffer.from(Array.from({ length }, () => int(0, 255))),
    pick: <T>(items: readonly T[]): T => items[int(0, items.length - 1)],
    many: <T>(low: number, high: number, make: () => T): T[] => Array.from({ length: int(low, high) }, make),
  };
}
type Random = ReturnType<typeof random>;

const KNOWN_CAPABILITIES: number[] = [1, 2, 64, 65, 69];
const INTERPRETED_ATTRIBUTES: number[] = [1, 2, 3, 4, 5, 9, 10];

function randomPrefix(r: Random, addPath: boolean): BgpPrefix {
  const length = r.int(0, 32);
  const mask = length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
  const value: BgpPrefix = { address: (r.uint32() & mask) >>> 0, length };
  if (addPath) value.pathId = r.uint32();
  return value;
}

function randomCapability(r: Random): BgpCapability {
  const family = () => ({ afi: r.int(0, 0xffff), safi: r.int(0, 255) });
  switch (r.int(0, 5)) {
    case 0:
      return { kind: 'multiprotocol', ...family() };
    case 1:
      return { kind: 'route-refresh' };
    case 2:
      return {
        kind: 'graceful-restart',
        restarting: r.bool(),
        notification: r.bool(),
        restartTime: r.int(0, 0xfff),
        families: r.many(0, 4, () => ({ ...family(), forwardingState: r.bool() })),
      };
    case 3:
      return { kind: 'four-octet-as', as: r.uint32() };
    case 4:
      return { kind: 'add-path', families: r.many(0, 3, () => ({ ...family(), sendReceive: r.int(0, 255) })) };
    default: {
      let code = r.int(0, 255);
      while (KNOWN_CAPABILITIES.includes(code)) code = r.int(0, 255);
      return { kind: 'unrecognized', code, value: r.bytes(r.int(0, 16)) };
    }
  }
}

function randomOpen(r: Random): BgpOpen {
  for (;;) {
    const open: BgpOpen = {
      type: 'open',
      myAs: r.int(0, 0xffff),
      holdTime: r.int(0, 0xffff),
      bgpIdentifier: r.uint32(),
      capabilities: r.many(0, 8, () => randomCapability(r)),
      parameters: r.many(0, 2, () => ({
        type: r.pick([0, 1, 3, 200, 254]),
        value: r.bytes(r.int(0, 10)),
      })),
    };
    if (bgp.encodingLength(open) - 29 <= 255) return open;
  }
}

function randomAttributes(r: Random, fourOctetAs: boolean): BgpPathAttributes {
  const attributes: BgpPathAttributes = { unrecognized: [] };
  if (r.bool()) attributes.origin = r.int(0, 2);
  if (r.bool()) {
    attributes.asPath = r.many(0, 3, () => ({
      type: r.int(1, 4),
      asns: r.many(1, 6, () => (fourOctetAs ? r.uint32() : r.int(0, 0xffff))),
    }));
  }
  if (r.bool()) attributes.nextHop = r.uint32();
  if (r.bool()) attributes.multiExitDisc = r.uint32();
  if (r.bool()) attributes.localPref = r.uint32();
  if (r.bool()) attributes.originatorId = r.uint32();
  if (r.bool()) attributes.clusterList = r.many(0, 4, () => r.uint32());
  const codes = new Set<number>();
  for (let i = r.int(0, 3); i > 0; i--) {
    const code = r.int(0, 255);
    if (!INTERPRETED_ATTRIBUTES.includes(code)) codes.add(code);
  }
  for (const typeCode of [...codes].sort((a, b) => a - b)) {
    const value = r.bytes(r.bool(0.1) ? r.int(256, 400) : r.int(0, 20));
    const extended = value.length > 255 || r.bool(0.3);
    const flags =
      (r.int(0, 255) & ~BGP_ATTRIBUTE_FLAG.EXTENDED_LENGTH) | (extended ? BGP_ATTRIBUTE_FLAG.EXTENDED_LENGTH : 0);
    attributes.unrecognized.push({ flags, typeCode, value });
  }
  return attributes;
}

function randomMessage(r: Random, options: BgpCodecOptions): BgpMessage {
  switch (r.int(0, 4)) {
    case 0:
      return randomOpen(r);
    case 1:
      return {
        type: 'update',
        withdrawn: r.many(0, 12, () => randomPrefix(r, options.addPath ?? false)),
        attributes: randomAttributes(r, options.fourOctetAs ?? false),
        nlri: r.many(0, 12, () => randomPrefix(r, options.addPath ?? false)),
      };
    case 2:
      return { type: 'notification', code: r.int(0, 255), subcode: r.int(0, 255), data: r.bytes(r.int(0, 40)) };
    case 3:
      return { type: 'keepalive' };
    default: {
      const subtype = r.int(0, 255);
      const demarcation = subtype === BGP_ROUTE_REFRESH_SUBTYPE.BEGIN || subtype === BGP_ROUTE_REFRESH_SUBTYPE.END;
      return {
        type: 'route-refresh',
        afi: r.int(0, 0xffff),
        subtype,
        safi: r.int(0, 255),
        data: demarcation ? Buffer.alloc(0) : r.bytes(r.int(0, 20)),
      };
    }
  }
}

describe('round trip', () => {
  it('decode(encode(m)) equals m, and encodingLength(m) is encode(m).length, for seeded random messages', () => {
    for (let seed = 1; seed <= 2000; seed++) {
      const r = random(seed);
      const options: BgpCodecOptions = { fourOctetAs: r.bool(), addPath: r.bool() };
      const message = randomMessage(r, options);
      const bytes = bgp.encode(message, options);
      expect(bytes.length, `seed ${seed}`).toBe(bgp.encodingLength(message, options));
      expect(bytes.length).toBeLessThanOrEqual(BGP_MAX_MESSAGE_LENGTH);
      expect(accepted(bgp.decode(bytes, options)), `seed ${seed}`).toEqual(message);
      expect(frameBgpMessages(bytes)).toEqual({ messages: [bytes], consumed: bytes.length });
    }
  });

  it('a 4-octet AS goes out as AS_TRANS, its real value in the capability', () => {
    const open: BgpOpen = {
      type: 'open',
      myAs: 4200000001,
      holdTime: 90,
      bgpIdentifier: NODE_A,
      capabilities: [{ kind: 'four-octet-as', as: 4200000001 }],
      parameters: [],
    };
    const decoded = accepted(bgp.decode(bgp.encode(open))) as BgpOpen;
    expect(decoded.myAs).toBe(AS_TRANS);
    expect(bgpOpenAs(decoded)).toBe(4200000001);
  });

  it('a long AS_PATH takes the extended length flag', () => {
    const message: BgpUpdate = {
      type: 'update',
      withdrawn: [],
      attributes: {
        asPath: [
          { type: BGP_AS_PATH_SEGMENT.AS_SEQUENCE, asns: Array.from({ length: 100 }, (_, i) => 4200000000 + i) },
        ],
        unrecognized: [],
      },
      nlri: [],
    };
    const bytes = bgp.encode(message, { fourOctetAs: true });
    expect(bytes[23] & BGP_ATTRIBUTE_FLAG.EXTENDED_LENGTH).toBeTruthy();
    expect(bytes.readUInt16BE(25)).toBe(2 + 400);
    expect(accepted(bgp.decode(bytes, { fourOctetAs: true }))).toEqual(message);
  });

  it('encode refuses what no message can carry', () => {
    const empty: BgpUpdate = { type: 'update', withdrawn: [], attributes: { unrecognized: [] }, nlri: [] };
    const asPath = [{ type: BGP_AS_PATH_SEGMENT.AS_SEQUENCE, asns: [70000] }];
    expect(() => bgp.encode({ ...empty, attributes: { asPath, unrecognized: [] } })).toThrow(RangeError);
    expect(() => bgp.encode({ ...empty, nlri: [{ address: 0, length: 33 }] })).toThrow(RangeError);
    const huge = { flags: BGP_ATTRIBUTE_FLAG.OPTIONAL, typeCode: 99, value: Buffer.alloc(BGP_MAX_MESSAGE_LENGTH) };
    expect(() => bgp.encode({ ...empty, attributes: { unrecognized: [huge] } })).toThrow(RangeError);
    const capability: BgpCapability = { kind: 'unrecognized', code: 99, value: Buffer.alloc(250) };
    const open: BgpOpen = {
      type: 'open',
      myAs: 1,
      holdTime: 0,
      bgpIdentifier: 1,
      capabilities: [capability, capability],
      parameters: [],
    };
    expect(() => bgp.encode(open)).toThrow(RangeError);
  });
});

/** A message with a correct marker and length around `body`. */
function message(type: number, body: Buffer | number[]): Buffer {
  const bytes = Buffer.concat([Buffer.alloc(16, 0xff), Buffer.alloc(3), Buffer.from(body)]);
  bytes.writeUInt16BE(bytes.length, 16);
  bytes[18] = type;
  return bytes;
}

/** An UPDATE from its three parts, each length field computed unless given. */
interface UpdateParts {
  withdrawn?: readonly number[];
  attributes?: readonly number[];
  nlri?: readonly number[];
}

function updateMessage(parts: UpdateParts): Buffer {
  const withdrawn = parts.withdrawn ?? [];
  const attributes = parts.attributes ?? [];
  return message(BGP_MESSAGE_TYPE.UPDATE, [
    withdrawn.length >> 8,
    withdrawn.length & 0xff,
    ...withdrawn,
    attributes.length >> 8,
    attributes.length & 0xff,
    ...attributes,
    ...(parts.nlri ?? []),
  ]);
}

/** ORIGIN IGP, empty AS_PATH, NEXT_HOP 10.99.0.1: what an announcement needs. */
const BASE_ATTRIBUTES = [0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4, 10, 99, 0, 1];

function expectRefusal(result: BgpParsed<unknown>, reason: string, code: number, subcode: number, data?: Buffer) {
  const refusal = refused(result);
  expect(refusal.reason).toBe(reason);
  expect(refusal.notification.code).toBe(code);
  expect(refusal.notification.subcode).toBe(subcode);
  if (data !== undefined) expect(refusal.notification.data).toEqual(data);
}

describe('bad input', () => {
  const keepalive = bgp.encode({ type: 'keepalive' });
  const header = BGP_ERROR_CODE.MESSAGE_HEADER;
  const updateError = BGP_ERROR_CODE.UPDATE_MESSAGE;

  it('a marker that is not all ones: Connection Not Synchronized, from the first wrong byte', () => {
    const bad = Buffer.from(keepalive);
    bad[3] = 0xfe;
    expectRefusal(bgp.decode(bad), 'bad-marker', header, BGP_MESSAGE_HEADER_ERROR.CONNECTION_NOT_SYNCHRONIZED);
    const framed = frameBgpMessages(Buffer.concat([keepalive, bad.subarray(0, 4)]));
    expect(framed.messages).toEqual([keepalive]);
    expect(framed.consumed).toBe(keepalive.length);
    expect(framed.error?.reason).toBe('bad-marker');
  });

  it('a length below 19 or above 4096: Bad Message Length, quoting the length field', () => {
    for (const length of [0, 18, 4097, 0xffff]) {
      const bad = Buffer.from(keepalive);
      bad.writeUInt16BE(length, 16);
      const field = bad.subarray(16, 18);
      const subcode = BGP_MESSAGE_HEADER_ERROR.BAD_MESSAGE_LENGTH;
      expectRefusal(bgp.decode(bad), 'bad-message-length', header, subcode, field);
      const framer = new BgpFramer();
      expect(framer.push(bad.subarray(0, 17)).error).toBeUndefined();
      const frames = framer.push(bad.subarray(17));
      expect(frames.messages).toEqual([]);
      expectRefusal(frames.error ?? bgp.decode(keepalive), 'bad-message-length', header, subcode, field);
      // Nothing after a bad header can be framed.
      expect(framer.push(keepalive).error).toBe(frames.error);
    }
  });

  it('the framer waits for a whole message', () => {
    const framer = new BgpFramer();
    const open = at(4).bytes;
    expect(framer.push(open.subarray(0, 10))).toEqual({ messages: [], consumed: 0 });
    expect(framer.push(open.subarray(10, 40))).toEqual({ messages: [], consumed: 0 });
    expect(framer.buffered).toBe(40);
    const frames = framer.push(Buffer.concat([open.subarray(40), keepalive.subarray(0, 5)]));
    expect(frames.messages).toEqual([open]);
    expect(framer.buffered).toBe(5);
    expect(framer.push(keepalive.subarray(5)).messages).toEqual([keepalive]);
    expect(framer.buffered).toBe(0);
  });

  it('lengths that disagree with the bytes or the type', () => {
    const subcode = BGP_MESSAGE_HEADER_ERROR.BAD_MESSAGE_LENGTH;
    expectRefusal(bgp.decode(Buffer.concat([keepalive, Buffer.of(0)])), 'bad-message-length', header, subcode);
    expectRefusal(bgp.decode(message(BGP_MESSAGE_TYPE.KEEPALIVE, [0])), 'bad-message-length', header, subcode);
    expectRefusal(bgp.decode(message(BGP_MESSAGE_TYPE.OPEN, Array(9).fill(0))), 'bad-message-length', header, subcode);
    expectRefusal(bgp.decode(message(BGP_MESSAGE_TYPE.UPDATE, [0, 0, 0])), 'bad-message-length', header, subcode);
    expectRefusal(bgp.decode(message(BGP_MESSAGE_TYPE.NOTIFICATION, [6])), 'bad-message-length', header, subcode);
    expectRefusal(
      bgp.decode(message(BGP_MESSAGE_TYPE.ROUTE_REFRESH, [0, 1, 0])),
      'bad-message-length',
      header,
      subcode,
    );
  });

  it('an unknown type: Bad Message Type, quoting it', () => {
    const subcode = BGP_MESSAGE_HEADER_ERROR.BAD_MESSAGE_TYPE;
    expectRefusal(bgp.decode(message(0, [])), 'bad-message-type', header, subcode, Buffer.of(0));
    expectRefusal(bgp.decode(message(9, [1, 2])), 'bad-message-type', header, subcode, Buffer.of(9));
  });

  it('OPEN: version, parameter and capability lengths', () => {
    const open = Buffer.from(at(4).bytes);
    const withByte = (offset: number, value: number) => {
      const copy = Buffer.from(open);
      copy[offset] = value;
      return copy;
    };
    const openError = BGP_ERROR_CODE.OPEN_MESSAGE;
    expectRefusal(
      bgp.decode(withByte(19, 3)),
      'unsupported-version',
      openError,
      BGP_OPEN_MESSAGE_ERROR.UNSUPPORTED_VERSION_NUMBER,
      Buffer.of(0, 4),
    );
    const lengthSubcode = BGP_MESSAGE_HEADER_ERROR.BAD_MESSAGE_LENGTH;
    expectRefusal(bgp.decode(withByte(28, open[28] + 1)), 'bad-message-length', header, lengthSubcode);
    expectRefusal(bgp.decode(withByte(28, open[28] - 1)), 'bad-message-length', header, lengthSubcode);
    // The Capabilities parameter's length runs past the message, then one capability past its parameter.
    const unspecific = BGP_OPEN_MESSAGE_ERROR.UNSPECIFIC;
    expectRefusal(bgp.decode(withByte(30, open[30] + 1)), 'malformed-open', openError, unspecific);
    expectRefusal(bgp.decode(withByte(32, 200)), 'malformed-capability', openError, unspecific);
    // A trailing lone byte where a parameter header belongs.
    const lone = message(BGP_MESSAGE_TYPE.OPEN, [4, 0xfc, 0, 0, 240, 10, 99, 0, 1, 1, 2]);
    expectRefusal(bgp.decode(lone), 'malformed-open', openError, unspecific);
    // A known capability at a length its RFC does not allow: 4-octet AS of 2 bytes, route refresh of 1.
    const capabilities = (bytes: number[]) =>
      message(BGP_MESSAGE_TYPE.OPEN, [4, 0xfc, 0, 0, 240, 10, 99, 0, 1, bytes.length + 2, 2, bytes.length, ...bytes]);
    expect(accepted(bgp.decode(capabilities([65, 4, 0, 0, 0xfc, 0])))).toMatchObject({
      capabilities: [{ kind: 'four-octet-as', as: MESH_AS }],
    });
    for (const bytes of [
      [65, 2, 0xfc, 0],
      [2, 1, 0],
      [1, 3, 0, 1, 0],
      [64, 3, 0, 120, 0],
      [69, 3, 0, 1, 1],
    ]) {
      expectRefusal(bgp.decode(capabilities(bytes)), 'malformed-capability', openError, unspecific);
    }
  });

  it('UPDATE: withdrawn and attribute lengths that overrun the message are a Malformed Attribute List', () => {
    const subcode = BGP_UPDATE_MESSAGE_ERROR.MALFORMED_ATTRIBUTE_LIST;
    const withdrawnOverrun = updateMessage({ withdrawn: [24, 10, 0, 0] });
    withdrawnOverrun.writeUInt16BE(200, 19);
    expectRefusal(bgp.decode(withdrawnOverrun), 'malformed-attribute-list', updateError, subcode);
    const attributesOverrun = updateMessage({ attributes: BASE_ATTRIBUTES, nlri: [24, 10, 0, 0] });
    attributesOverrun.writeUInt16BE(BASE_ATTRIBUTES.length + 5, 21);
    expectRefusal(bgp.decode(attributesOverrun), 'malformed-attribute-list', updateError, subcode);
  });

  it('UPDATE: an attribute that overruns the attribute list, a cut header, a repeated attribute', () => {
    const subcode = BGP_UPDATE_MESSAGE_ERROR.MALFORMED_ATTRIBUTE_LIST;
    for (const attributes of [
      [0x40, 1, 5, 0],
      [0x40, 1],
      [0x50, 2, 0],
      [0xc0, 8, 4, 0, 0],
      [0x40, 1, 1, 0, 0x40, 1, 1, 0],
      [0xc0, 99, 0, 0xc0, 99, 0],
    ]) {
      const bad = updateMessage({ attributes, nlri: [24, 10, 0, 0] });
      expectRefusal(bgp.decode(bad), 'malformed-attribute-list', updateError, subcode);
    }
  });

  it('UPDATE: flags, lengths and values of the interpreted attributes, quoting the attribute', () => {
    const cases: [number[], string, number][] = [
      [[0xc0, 1, 1, 0], 'attribute-flags-error', BGP_UPDATE_MESSAGE_ERROR.ATTRIBUTE_FLAGS_ERROR],
      [[0x60, 3, 4, 10, 99, 0, 1], 'attribute-flags-error', BGP_UPDATE_MESSAGE_ERROR.ATTRIBUTE_FLAGS_ERROR],
      [[0xc0, 4, 4, 0, 0, 0, 1], 'attribute-flags-error', BGP_UPDATE_MESSAGE_ERROR.ATTRIBUTE_FLAGS_ERROR],
      [[0x40, 1, 2, 0, 0], 'attribute-length-error', BGP_UPDATE_MESSAGE_ERROR.ATTRIBUTE_LENGTH_ERROR],
      [[0x40, 3, 5, 10, 99, 0, 1, 0], 'attribute-length-error', BGP_UPDATE_MESSAGE_ERROR.ATTRIBUTE_LENGTH_ERROR],
      [[0x40, 5, 0], 'attribute-length-error', BGP_UPDATE_MESSAGE_ERROR.ATTRIBUTE_LENGTH_ERROR],
      [[0x80, 4, 2, 0, 1], 'attribute-length-error', BGP_UPDATE_MESSAGE_ERROR.ATTRIBUTE_LENGTH_ERROR],
      [[0x40, 1, 1, 3], 'invalid-origin', BGP_UPDATE_MESSAGE_ERROR.INVALID_ORIGIN_ATTRIBUTE],
      [[0xc0, 9, 4, 10, 0, 0, 1], 'attribute-flags-error', BGP_UPDATE_MESSAGE_ERROR.ATTRIBUTE_FLAGS_ERROR],
      [[0x80, 9, 3, 10, 0, 0], 'attribute-length-error', BGP_UPDATE_MESSAGE_ERROR.ATTRIBUTE_LENGTH_ERROR],
      [[0x80, 10, 6, 244, 0, 0, 1, 0, 0], 'attribute-length-error', BGP_UPDATE_MESSAGE_ERROR.ATTRIBUTE_LENGTH_ERROR],
    ];
    for (const [attribute, reason, subcode] of cases) {
      const bad = updateMessage({ attributes: attribute });
      expectRefusal(bgp.decode(bad), reason, updateError, subcode, Buffer.from(attribute));
    }
    // What a reflector adds (RFC 4456 §8): the originator's router ID, and the cluster IDs it crossed, the last first.
    const reflected = updateMessage({
      attributes: [0x80, 9, 4, 10, 0, 0, 11, 0x80, 10, 8, 244, 0, 0, 1, 244, 0, 0, 2],
    });
    expect(accepted(bgp.decode(reflected))).toMatchObject({
      attributes: { originatorId: 0x0a00000b, clusterList: [0xf4000001, 0xf4000002] },
    });
    // The Extended Length flag may be set on any attribute, however short.
    const extended = updateMessage({ attributes: [0x50, 1, 0, 1, 2] });
    expect(accepted(bgp.decode(extended))).toMatchObject({ attributes: { origin: BGP_ORIGIN.INCOMPLETE } });
  });

  it('UPDATE: AS_PATH segments that overrun, are empty or of no known type', () => {
    const subcode = BGP_UPDATE_MESSAGE_ERROR.MALFORMED_AS_PATH;
    const asPath = (value: number[]) => updateMessage({ attributes: [0x40, 2, value.length, ...value] });
    for (const value of [[2], [2, 1, 0], [2, 3, 0, 1, 0, 2], [2, 0], [0, 1, 0, 1], [5, 1, 0, 1]]) {
      expectRefusal(bgp.decode(asPath(value)), 'malformed-as-path', updateError, subcode);
    }
    // Two 2-octet ASes read as one 4-octet AS: the flag decides, as the session's OPENs did.
    const twoOctet = asPath([2, 2, 0xfc, 0, 0xfc, 1]);
    expect(accepted(bgp.decode(twoOctet))).toMatchObject({ attributes: { asPath: [{ asns: [64512, 64513] }] } });
    expectRefusal(bgp.decode(twoOctet, { fourOctetAs: true }), 'malformed-as-path', updateError, subcode);
  });

  it('UPDATE: prefixes longer than 32 bits or cut short are an Invalid Network Field', () => {
    const subcode = BGP_UPDATE_MESSAGE_ERROR.INVALID_NETWORK_FIELD;
    const cases: [UpdateParts, BgpCodecOptions][] = [
      [{ attributes: BASE_ATTRIBUTES, nlri: [33, 10, 0, 0, 0, 0] }, {}],
      [{ attributes: BASE_ATTRIBUTES, nlri: [24, 10, 0] }, {}],
      [{ withdrawn: [26, 192, 168, 77] }, {}],
      [{ withdrawn: [0, 0, 0] }, { addPath: true }],
      [{ withdrawn: [0, 0, 0, 1] }, { addPath: true }],
      [{ attributes: BASE_ATTRIBUTES, nlri: [0, 0, 0, 1, 26, 192, 168] }, { addPath: true }],
    ];
    for (const [parts, options] of cases) {
      expectRefusal(bgp.decode(updateMessage(parts), options), 'invalid-network-field', updateError, subcode);
    }
    // Bits past the prefix length do not count (RFC 4271 §4.3).
    const hostBits = updateMessage({ attributes: BASE_ATTRIBUTES, nlri: [26, 192, 168, 77, 0xff] });
    expect(accepted(bgp.decode(hostBits))).toMatchObject({
      nlri: [{ address: address('192.168.77.192'), length: 26 }],
    });
  });

  it('ROUTE-REFRESH: a beginning or end of refresh with anything after it', () => {
    const bad = message(BGP_MESSAGE_TYPE.ROUTE_REFRESH, [0, 1, BGP_ROUTE_REFRESH_SUBTYPE.END, 1, 0]);
    expectRefusal(
      bgp.decode(bad),
      'bad-route-refresh-length',
      BGP_ERROR_CODE.ROUTE_REFRESH_MESSAGE,
      BGP_ROUTE_REFRESH_ERROR.INVALID_MESSAGE_LENGTH,
      bad,
    );
    const withOrf = message(BGP_MESSAGE_TYPE.ROUTE_REFRESH, [0, 1, BGP_ROUTE_REFRESH_SUBTYPE.REQUEST, 1, 1, 2]);
    expect(accepted(bgp.decode(withOrf))).toMatchObject({ data: Buffer.of(1, 2) });
  });

  it('mutated captured messages decode or are refused with a sendable NOTIFICATION, never throwing', () => {
    const r = random(0xb1d);
    for (let round = 0; round < 20000; round++) {
      const { from, bytes: original } = r.pick(decodedCapture);
      const bytes = Buffer.from(original);
      for (let flips = r.int(1, 3); flips > 0; flips--) bytes[r.int(16, bytes.length - 1)] = r.int(0, 255);
      const cut = r.bool(0.2) ? bytes.subarray(0, r.int(0, bytes.length)) : bytes;
      const options = r.bool() ? optionsFor(from) : { fourOctetAs: r.bool(), addPath: r.bool() };
      const result = bgp.decode(cut, options);
      if (result.ok) continue;
      expect(BGP_ERROR_REASONS).toContain(result.reason);
      const notification = bgp.encode(result.notification);
      expect(accepted(bgp.decode(notification))).toEqual(result.notification);
    }
  });
});

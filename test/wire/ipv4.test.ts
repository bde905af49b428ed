import { describe, expect, it } from 'vitest';
import {
  ECN,
  IP_PROTOCOL,
  Ipv4View,
  fragment,
  internetChecksum,
  ipv4,
  ipv4FromString,
  ipv4ToString,
  joinFragments,
  type Ipv4Packet,
} from '../../src/wire/index.js';
import { mulberry32, randomBytes, randomInt } from '../support/random.js';

const POD_A = 0xc0a84d82; // 192.168.77.130
const POD_B = 0xc0a857c6; // 192.168.87.198

function checkedView(bytes: Buffer): Ipv4View {
  const checked = Ipv4View.check(bytes);
  if (!checked.ok) throw new Error(`expected a valid packet, got ${checked.reason}`);
  return checked.value;
}

function packetOf(payloadLength: number, extra: Partial<Ipv4Packet> = {}): Buffer {
  const payload = Buffer.alloc(payloadLength);
  for (let i = 0; i < payloadLength; i++) payload[i] = i & 0xff;
  return ipv4.encode({
    identification: 0xc1a7,
    ttl: 63,
    protocol: IP_PROTOCOL.ICMP,
    src: POD_A,
    dst: POD_B,
    payload,
    ...extra,
  });
}

describe('ipv4 codec', () => {
  it('round-trips every header field, options included, for IHL 5 to 15', () => {
    for (let words = 0; words <= 10; words++) {
      const packet: Ipv4Packet = {
        dscp: 46,
        ecn: ECN.ECT1,
        identification: 0xbeef,
        reservedFlag: true,
        dontFragment: false,
        moreFragments: true,
        fragmentOffset: 1456,
        ttl: 1,
        protocol: IP_PROTOCOL.UDP,
        src: 0xffffffff,
        dst: 0x0a00000b,
        options: Buffer.alloc(words * 4, 0x44),
        payload: Buffer.from('payload'),
      };
      const bytes = ipv4.encode(packet);
      expect(bytes.length).toBe(ipv4.encodingLength(packet));
      const decoded = ipv4.decode(bytes);
      expect(decoded).toEqual({
        ok: true,
        value: {
          ...packet,
          version: 4,
          ihl: 5 + words,
          totalLength: 20 + words * 4 + 7,
          headerChecksum: bytes.readUInt16BE(10),
        },
      });
      expect(internetChecksum(bytes, 0, 20 + words * 4)).toBe(0);
    }
  });

  it('defaults omitted fields and pads options to 32 bits with End of Option List', () => {
    const bytes = ipv4.encode({
      identification: 1,
      ttl: 64,
      protocol: 1,
      src: 1,
      dst: 2,
      options: Buffer.of(0x94, 0x04, 0, 0, 1),
      payload: Buffer.alloc(0),
    });
    expect(bytes.subarray(0, 2)).toEqual(Buffer.of(0x47, 0x00));
    expect(bytes.subarray(20, 28)).toEqual(Buffer.of(0x94, 0x04, 0, 0, 1, 0, 0, 0));
    expect(bytes.readUInt16BE(6)).toBe(0);
  });

  it('refuses to build what cannot be encoded', () => {
    const base = { identification: 1, ttl: 64, protocol: 1, src: 1, dst: 2 };
    expect(() => ipv4.encode({ ...base, options: Buffer.alloc(41), payload: Buffer.alloc(0) })).toThrow(RangeError);
    expect(() => ipv4.encode({ ...base, payload: Buffer.alloc(65516) })).toThrow(RangeError);
    expect(() => ipv4.encode({ ...base, fragmentOffset: 12, payload: Buffer.alloc(0) })).toThrow(RangeError);
  });
});

describe('Ipv4View', () => {
  it('reads what encode wrote and writes each field without touching the others', () => {
    const bytes = packetOf(8, { dscp: 0x2e, ecn: ECN.CE, dontFragment: true, options: Buffer.of(1, 1, 1, 0) });
    const view = checkedView(bytes);
    expect([view.version, view.ihl, view.headerLength, view.dscp, view.ecn, view.totalLength]).toEqual([
      4, 6, 24, 0x2e, 3, 32,
    ]);
    expect([
      view.identification,
      view.reservedFlag,
      view.dontFragment,
      view.moreFragments,
      view.fragmentOffset,
    ]).toEqual([0xc1a7, false, true, false, 0]);
    expect([view.ttl, view.protocol, view.src, view.dst]).toEqual([63, 1, POD_A, POD_B]);
    expect(view.options).toEqual(Buffer.of(1, 1, 1, 0));
    expect(view.payload).toEqual(Buffer.from([0, 1, 2, 3, 4, 5, 6, 7]));
    expect(view.packet).toEqual(bytes);

    const setters: [keyof Ipv4View, number | boolean][] = [
      ['dscp', 0x3f],
      ['ecn', 0],
      ['identification', 7],
      ['reservedFlag', true],
      ['dontFragment', false],
      ['moreFragments', true],
      ['fragmentOffset', 0x1fff],
      ['ttl', 255],
      ['protocol', 17],
      ['src', 0x01020304],
      ['dst', 0xfffffffe],
      ['headerChecksum', 0x1234],
      ['totalLength', 30],
      ['ihl', 5],
      ['version', 6],
    ];
    // The fields by name, as data: each setter must change its own field and no other.
    const fields = view as unknown as Record<string, unknown>;
    for (const [field, value] of setters) {
      const before = Object.fromEntries(setters.map(([name]) => [name, fields[name]]));
      fields[field] = value;
      expect(fields[field]).toBe(value);
      for (const [other] of setters) if (other !== field) expect(fields[other]).toBe(before[other]);
    }
    expect(view.fragmentByteOffset).toBe(0x1fff * 8);
  });

  it('names the first thing wrong with a header', () => {
    const good = packetOf(12);
    const corrupt = (edit: (bytes: Buffer) => void, fixChecksum = true) => {
      const bytes = Buffer.from(good);
      edit(bytes);
      if (fixChecksum) new Ipv4View(bytes).fillChecksum();
      const checked = Ipv4View.check(bytes);
      return checked.ok ? 'ok' : checked.reason;
    };
    expect(Ipv4View.check(Buffer.alloc(0))).toEqual({ ok: false, reason: 'truncated' });
    expect(corrupt((b) => (b[0] = 0x65), false)).toBe('not-ipv4');
    expect(corrupt((b) => (b[0] = 0x44), false)).toBe('bad-ihl');
    expect(Ipv4View.check(good.subarray(0, 19))).toEqual({ ok: false, reason: 'truncated' });
    expect(corrupt((b) => (b[0] = 0x4f))).toBe('truncated');
    expect(corrupt((b) => b.writeUInt16BE(33, 2))).toBe('total-length-mismatch');
    expect(corrupt((b) => b.writeUInt16BE(19, 2))).toBe('total-length-mismatch');
    expect(corrupt((b) => (b[8] = 1), false)).toBe('bad-checksum');
    expect(corrupt(() => undefined)).toBe('ok');
  });

  it('ignores link-layer padding after totalLength and can start at an offset', () => {
    const bytes = Buffer.concat([Buffer.alloc(3, 0xee), packetOf(1), Buffer.alloc(25, 0xee)]);
    const checked = Ipv4View.check(bytes, 3);
    expect(checked.ok && checked.value.payload).toEqual(Buffer.of(0));
    expect(checked.ok && checked.value.packet.length).toBe(21);
  });

  it('re-points one view with attach() instead of allocating per packet', () => {
    const view = new Ipv4View(Buffer.alloc(0));
    expect(view.attach(packetOf(4)).validate()).toBeUndefined();
    expect(view.attach(Buffer.alloc(20)).validate()).toBe('not-ipv4');
  });

  it('decrements the TTL with an incremental checksum equal to a full recomputation', () => {
    const random = mulberry32(791);
    for (let round = 0; round < 2000; round++) {
      const bytes = ipv4.encode({
        identification: randomInt(random, 0x10000),
        ttl: 1 + randomInt(random, 255),
        protocol: randomInt(random, 256),
        src: randomInt(random, 2 ** 32),
        dst: randomInt(random, 2 ** 32),
        payload: randomBytes(random, randomInt(random, 8)),
      });
      const view = new Ipv4View(bytes);
      const ttl = view.ttl;
      view.decrementTtl();
      const incremental = view.headerChecksum;
      view.fillChecksum();
      expect([view.ttl, incremental]).toEqual([ttl - 1, view.headerChecksum]);
    }
    const dead = new Ipv4View(packetOf(0, { ttl: 0 }));
    expect(() => dead.decrementTtl()).toThrow(RangeError);
  });

  it('marks congestion experienced and keeps the checksum valid', () => {
    const view = new Ipv4View(packetOf(4, { dscp: 0x2e, ecn: ECN.ECT0 }));
    view.markCongestionExperienced();
    expect([view.dscp, view.ecn, view.verifyChecksum()]).toEqual([0x2e, ECN.CE, true]);
  });
});

describe('fragment (Linux ip_do_fragment for the tunnel MTU)', () => {
  const layout = (pieces: Buffer[]) =>
    pieces.map((bytes) => {
      const view = checkedView(bytes);
      return [view.totalLength, view.fragmentByteOffset, view.moreFragments, view.identification];
    });

  function fragmented(bytes: Buffer, mtu: number): Buffer[] {
    const result = fragment(bytes, mtu);
    if (!result.ok) throw new Error(result.reason);
    return result.value;
  }

  it("cuts the pod's 1500-byte first fragment into 1476 + 44, keeping MF on both (vectors case 4a)", () => {
    const firstPodFragment = packetOf(1480, { moreFragments: true });
    expect(layout(fragmented(firstPodFragment, 1480))).toEqual([
      [1476, 0, true, 0xc1a7],
      [44, 1456, true, 0xc1a7],
    ]);
  });

  it('cuts a whole 1488-byte DF=0 packet into 1476 with MF + 32 at 1456 (vectors case 4b)', () => {
    expect(layout(fragmented(packetOf(1468), 1480))).toEqual([
      [1476, 0, true, 0xc1a7],
      [32, 1456, false, 0xc1a7],
    ]);
  });

  it('keeps offsets relative to the original datagram and MF on a non-last input', () => {
    const middle = packetOf(2000, { moreFragments: true, fragmentOffset: 800 });
    expect(layout(fragmented(middle, 1000))).toEqual([
      [996, 800, true, 0xc1a7],
      [996, 1776, true, 0xc1a7],
      [68, 2752, true, 0xc1a7],
    ]);
  });

  it('returns a packet that fits as it is, trailing padding cut, whatever its DF', () => {
    const bytes = packetOf(1460, { dontFragment: true });
    const [only] = fragmented(Buffer.concat([bytes, Buffer.alloc(4)]), 1480);
    expect(only).toEqual(bytes);
  });

  it('copies options with the copy bit into later pieces and overwrites the others with NOPs', () => {
    // Security (0x82, copied), record route (0x07, not copied), End of Option List.
    const options = Buffer.from('820b00000000000000000007070400000000000000', 'hex').subarray(0, 19);
    const bytes = packetOf(100, { options, dontFragment: false });
    const pieces = fragmented(bytes, 96);
    const views = pieces.map(checkedView);
    expect(views[0].options).toEqual(checkedView(bytes).options);
    for (const later of views.slice(1)) {
      expect(later.headerLength).toBe(40);
      expect(later.options).toEqual(Buffer.concat([options.subarray(0, 11), Buffer.alloc(7, 1), Buffer.alloc(2)]));
    }
    for (const piece of pieces) expect(piece.length).toBeLessThanOrEqual(96);
    expect(views.slice(0, -1).every((view) => view.payload.length % 8 === 0)).toBe(true);
  });

  it('stops at a malformed option list as the kernel does, leaving it as received', () => {
    const options = Buffer.of(0x07, 0x01, 0x07, 0x04);
    const pieces = fragmented(packetOf(64, { options }), 60);
    expect(checkedView(pieces[1]).options).toEqual(options);
  });

  it('refuses an invalid packet and an MTU with no room for data', () => {
    expect(fragment(Buffer.alloc(30), 1480)).toEqual({ ok: false, reason: 'not-ipv4' });
    expect(() => fragment(packetOf(100), 27)).toThrow(RangeError);
  });

  it('joins the pieces back into the original bytes', () => {
    const random = mulberry32(8);
    for (let round = 0; round < 200; round++) {
      const options = randomBytes(random, 4 * randomInt(random, 3));
      const original = packetOf(randomInt(random, 3000), { options });
      const pieces = fragmented(original, 68 + randomInt(random, 1500));
      expect(joinFragments(pieces)).toEqual({ ok: true, value: original });
    }
  });

  it('refuses pieces that are not one contiguous run of one datagram', () => {
    const [first, second, third] = fragmented(packetOf(3000), 1480);
    const otherId = Buffer.from(second);
    otherId.writeUInt16BE(1, 4);
    new Ipv4View(otherId).fillChecksum();
    for (const pieces of [[], [first, third], [second, first], [first, otherId], [first, second, third, third]]) {
      expect(joinFragments(pieces)).toEqual({ ok: false, reason: 'fragment-mismatch' });
    }
    expect(joinFragments([first, Buffer.of(0x45, 0, 0)])).toEqual({ ok: false, reason: 'truncated' });
  });
});

describe('ipv4 text helpers', () => {
  it('formats and parses dotted quads strictly', () => {
    expect(ipv4ToString(POD_A)).toBe('192.168.77.130');
    expect(ipv4ToString(0xffffffff)).toBe('255.255.255.255');
    expect(ipv4FromString('192.168.87.198')).toBe(POD_B);
    expect(ipv4FromString('0.0.0.0')).toBe(0);
    for (const bad of ['256.0.0.1', '1.2.3', '01.2.3.4', '1.2.3.4 ', 'a.b.c.d', '1.2.3.4.5']) {
      expect(ipv4FromString(bad)).toBeUndefined();
    }
  });
});

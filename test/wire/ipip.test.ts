import { describe, expect, it } from 'vitest';
import {
  ECN,
  IP_PROTOCOL,
  Ipv4View,
  decapsulate,
  decapsulateEcn,
  encapsulate,
  encapsulationEcn,
  ipv4,
  type EcnDecapsulation,
} from '../../src/wire/index.js';

const NODE_A = 0x0a00000a;
const NODE_B = 0x0a00000b;
const tunnel = { src: NODE_A, dst: NODE_B, id: 0xf293 };

function innerPacket(
  extra: { dscp?: number; ecn?: number; dontFragment?: boolean; ttl?: number; protocol?: number } = {},
): Buffer {
  return ipv4.encode({
    identification: 0xae79,
    ttl: 63,
    protocol: IP_PROTOCOL.ICMP,
    src: 0xc0a84d82,
    dst: 0xc0a857c6,
    payload: Buffer.alloc(64, 0x42),
    ...extra,
  });
}

function view(bytes: Buffer): Ipv4View {
  const checked = Ipv4View.check(bytes);
  if (!checked.ok) throw new Error(checked.reason);
  return checked.value;
}

describe('encapsulate', () => {
  it('builds the outer header by the kernel rules', () => {
    const inner = innerPacket({ dscp: 0x2e, ecn: ECN.ECT1, dontFragment: true, ttl: 1 });
    const outer = view(encapsulate(inner, tunnel));
    expect(outer.toPacket()).toEqual({
      version: 4,
      ihl: 5,
      dscp: 0,
      ecn: ECN.ECT1,
      totalLength: inner.length + 20,
      identification: 0xf293,
      reservedFlag: false,
      dontFragment: true,
      moreFragments: false,
      fragmentOffset: 0,
      ttl: 1,
      protocol: IP_PROTOCOL.IPIP,
      headerChecksum: outer.headerChecksum,
      src: NODE_A,
      dst: NODE_B,
      options: Buffer.alloc(0),
      payload: inner,
    });
    expect(view(encapsulate(innerPacket({ dontFragment: false }), tunnel)).dontFragment).toBe(false);
  });

  it('copies ECN outward except CE, which becomes ECT(0)', () => {
    const expected = { [ECN.NOT_ECT]: ECN.NOT_ECT, [ECN.ECT1]: ECN.ECT1, [ECN.ECT0]: ECN.ECT0, [ECN.CE]: ECN.ECT0 };
    for (const [innerEcn, outerEcn] of Object.entries(expected).map(([k, v]) => [Number(k), v])) {
      expect(encapsulationEcn(innerEcn)).toBe(outerEcn);
      expect(view(encapsulate(innerPacket({ ecn: innerEcn, dscp: 0x3f }), tunnel)).ecn).toBe(outerEcn);
    }
  });

  it('writes into a caller buffer at an offset, overwriting stale bytes, and returns the length', () => {
    const inner = innerPacket({ ecn: ECN.CE, dontFragment: true });
    const out = Buffer.alloc(2000, 0xff);
    const written = encapsulate(inner, tunnel, out, 7);
    expect(written).toBe(inner.length + 20);
    expect(out.subarray(7, 7 + written)).toEqual(encapsulate(inner, tunnel));
    expect(out[6]).toBe(0xff);
    expect(out[7 + written]).toBe(0xff);
  });

  it('encapsulates in place when the inner packet already sits after 20 bytes of headroom', () => {
    const inner = innerPacket();
    const frame = Buffer.concat([Buffer.alloc(20, 0xaa), inner]);
    expect(encapsulate(frame.subarray(20), tunnel, frame)).toBe(frame.length);
    expect(frame).toEqual(encapsulate(inner, tunnel));
  });

  it('refuses what cannot be a tunnel packet', () => {
    expect(() => encapsulate(Buffer.alloc(19), tunnel)).toThrow(RangeError);
    expect(() => encapsulate(Buffer.alloc(65516, 0x45), tunnel)).toThrow(RangeError);
    expect(() => encapsulate(innerPacket(), tunnel, Buffer.alloc(100))).toThrow(RangeError);
  });
});

describe('decapsulation ECN (RFC 6040 §4.2 figure 4, as Linux INET_ECN_decapsulate implements it)', () => {
  const ok = (innerEcn: number, nonEctLogged = false): EcnDecapsulation => ({ kind: 'ok', innerEcn, nonEctLogged });
  const drop: EcnDecapsulation = { kind: 'drop' };
  const { NOT_ECT, ECT0, ECT1, CE } = ECN;
  // Rows: arriving inner; columns: arriving outer Not-ECT, ECT(0), ECT(1), CE.
  const table: [number, EcnDecapsulation[]][] = [
    [NOT_ECT, [ok(NOT_ECT), ok(NOT_ECT, true), ok(NOT_ECT, true), drop]],
    // RFC 6040 writes ECT(1) in the ECT(1)-outer cell; Linux keeps the inner ECT(0).
    [ECT0, [ok(ECT0), ok(ECT0), ok(ECT0), ok(CE)]],
    [ECT1, [ok(ECT1), ok(ECT1), ok(ECT1), ok(CE)]],
    [CE, [ok(CE), ok(CE), ok(CE), ok(CE)]],
  ];
  const outerColumns = [NOT_ECT, ECT0, ECT1, CE];

  for (const [innerEcn, row] of table) {
    for (const [column, expected] of row.entries()) {
      const outerEcn = outerColumns[column];
      it(`outer ${outerEcn} over inner ${innerEcn} → ${expected.kind === 'drop' ? 'drop' : expected.innerEcn}`, () => {
        expect(decapsulateEcn(outerEcn, innerEcn)).toEqual(expected);
        const outer = encapsulate(innerPacket({ ecn: innerEcn, dscp: 0x0a }), tunnel);
        const outerView = new Ipv4View(outer);
        outerView.ecn = outerEcn;
        outerView.dscp = 0x2e;
        outerView.fillChecksum();
        const result = decapsulate(outer);
        if (expected.kind === 'drop') {
          expect(result).toEqual({ ok: false, reason: 'ecn-non-ect-ce' });
          return;
        }
        expect(result.ok).toBe(true);
        if (!result.ok) return;
        const { inner, nonEctLogged } = result.value;
        expect([inner.ecn, inner.dscp, inner.verifyChecksum(), nonEctLogged]).toEqual([
          expected.innerEcn,
          0x0a,
          true,
          expected.nonEctLogged,
        ]);
      });
    }
  }
});

describe('decapsulate', () => {
  it('yields the inner packet exactly, ignoring the outer TTL, DF and ID', () => {
    const inner = innerPacket({ dontFragment: true });
    const outer = encapsulate(inner, tunnel);
    const outerView = new Ipv4View(outer);
    outerView.ttl = 1;
    outerView.dontFragment = false;
    outerView.fillChecksum();
    const result = decapsulate(Buffer.concat([outer, Buffer.alloc(6)]));
    expect(result.ok && result.value.inner.packet).toEqual(inner);
    expect(result.ok && result.value.outer.src).toBe(NODE_A);
  });

  it('refuses what the tunnel would not deliver, naming why', () => {
    const plain = innerPacket();
    expect(decapsulate(plain)).toEqual({ ok: false, reason: 'not-ipip' });
    expect(decapsulate(encapsulate(encapsulate(plain, tunnel), tunnel))).toEqual({ ok: false, reason: 'nested-ipip' });

    const fragmentOuter = encapsulate(plain, tunnel);
    const fragmentView = new Ipv4View(fragmentOuter);
    fragmentView.moreFragments = true;
    fragmentView.fillChecksum();
    expect(decapsulate(fragmentOuter)).toEqual({ ok: false, reason: 'outer-fragment' });

    const badInner = encapsulate(plain, tunnel);
    badInner[20 + 8] ^= 1;
    expect(decapsulate(badInner)).toEqual({ ok: false, reason: 'bad-checksum' });

    const shortInner = encapsulate(plain.subarray(0, 30), tunnel);
    expect(decapsulate(shortInner)).toEqual({ ok: false, reason: 'total-length-mismatch' });

    const badOuter = encapsulate(plain, tunnel);
    badOuter[10] ^= 1;
    expect(decapsulate(badOuter)).toEqual({ ok: false, reason: 'bad-checksum' });
  });
});

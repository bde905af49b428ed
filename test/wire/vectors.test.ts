/**
 * The wire layer against real Linux 6.1 captures of Calico-style tunl0 nodes (test/fixtures/vectors, README rules 1-17).
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  ECN,
  IP_PROTOCOL,
  Ipv4View,
  UNREACHABLE_CODE,
  decapsulate,
  destinationUnreachable,
  encapsulate,
  fragment,
  icmp,
  icmpErrorTos,
  ipv4,
  ipv4FromString,
  ipv4ToString,
  joinFragments,
  tcp,
  tcpMss,
  timeExceeded,
  udp,
  type DecodedTcpSegment,
} from '../../src/wire/index.js';
import { tsharkFields } from '../support/wire-tshark.js';
import {
  VECTORS_DIR,
  allVectorFrames,
  frameOf,
  loadVector,
  vectorFiles,
  type VectorFrame,
} from '../support/wire-vectors.js';

const address = (text: string) => ipv4FromString(text) as number;
/** inject.py's host: its packets are hand-built, not kernel-encapsulated. */
const INJECTING_HOST = address('10.0.0.1');

function checked(bytes: Buffer): Ipv4View {
  const result = Ipv4View.check(bytes);
  if (!result.ok) throw new Error(`invalid IPv4: ${result.reason}`);
  return result.value;
}

/** The captured inner packet, untouched (decapsulate would apply the ECN rules in place). */
function capturedInner(frame: VectorFrame): Buffer {
  return checked(frame.ip).payload;
}

/** Every IP header tshark dissects in a frame: outer, inner, and the one quoted by an ICMP error. */
function ipLayers(ip: Buffer): Ipv4View[] {
  const outer = checked(ip);
  const inner = checked(outer.payload);
  const layers = [outer, inner];
  if (inner.protocol === IP_PROTOCOL.ICMP && !inner.isFragment) {
    const message = icmp.decode(inner.payload);
    if (message.ok && 'quoted' in message.value) layers.push(new Ipv4View(message.value.quoted));
  }
  return layers;
}

/** Verifies the transport checksum of a whole datagram, recursing into ICMP quotes; returns what it verified. */
function verifyTransport(datagram: Ipv4View): string[] {
  const pseudo = { src: datagram.src, dst: datagram.dst };
  switch (datagram.protocol) {
    case IP_PROTOCOL.ICMP: {
      const message = icmp.decode(datagram.payload);
      if (!message.ok) throw new Error(`icmp: ${message.reason}`);
      if (!('quoted' in message.value)) return [`icmp ${message.value.kind}`];
      return [`icmp ${message.value.kind}`, ...verifyTransport(checked(message.value.quoted))];
    }
    case IP_PROTOCOL.UDP: {
      const datagramResult = udp.decode(datagram.payload, pseudo);
      if (!datagramResult.ok) throw new Error(`udp: ${datagramResult.reason}`);
      return ['udp'];
    }
    case IP_PROTOCOL.TCP: {
      const segment = tcp.decode(datagram.payload, pseudo);
      if (!segment.ok) throw new Error(`tcp: ${segment.reason}`);
      return ['tcp'];
    }
  }
  throw new Error(`unexpected protocol ${datagram.protocol}`);
}

/** Groups inner fragments by datagram and joins each complete set; unfragmented packets pass through. */
function innerDatagrams(frames: VectorFrame[]): Ipv4View[] {
  const pending = new Map<string, Ipv4View[]>();
  const complete: Ipv4View[] = [];
  for (const frame of frames) {
    const inner = checked(capturedInner(frame));
    if (!inner.isFragment) {
      complete.push(inner);
      continue;
    }
    const key = `${inner.src}/${inner.dst}/${inner.protocol}/${inner.identification}`;
    const pieces = [...(pending.get(key) ?? []), inner].sort((a, b) => a.fragmentOffset - b.fragmentOffset);
    pending.set(key, pieces);
    const joined = joinFragments(pieces.map((piece) => piece.packet));
    if (joined.ok && pieces[0].fragmentOffset === 0 && !checked(joined.value).moreFragments) {
      complete.push(checked(joined.value));
      pending.delete(key);
    }
  }
  expect(pending.size).toBe(0);
  return complete;
}

describe('vectors: every header decodes', () => {
  it('has the ten cases, each an Ethernet capture of IPIP packets', () => {
    expect(vectorFiles()).toHaveLength(10);
    const frames = allVectorFrames();
    expect(frames).toHaveLength(65);
    for (const frame of frames) expect(checked(frame.ip).protocol).toBe(IP_PROTOCOL.IPIP);
  });

  it('agrees with tshark on every field of every IP layer, quoted headers included', async () => {
    const fields = [
      'ip.src',
      'ip.dst',
      'ip.proto',
      'ip.ttl',
      'ip.dsfield',
      'ip.id',
      'ip.flags.df',
      'ip.flags.mf',
      'ip.frag_offset',
      'ip.len',
      'ip.hdr_len',
    ];
    const hex = (value: number, digits: number) => `0x${value.toString(16).padStart(digits, '0')}`;
    const ours = (layer: Ipv4View) => [
      ipv4ToString(layer.src),
      ipv4ToString(layer.dst),
      String(layer.protocol),
      String(layer.ttl),
      hex((layer.dscp << 2) | layer.ecn, 2),
      hex(layer.identification, 4),
      layer.dontFragment ? '1' : '0',
      layer.moreFragments ? '1' : '0',
      String(layer.fragmentOffset),
      String(layer.totalLength),
      String(layer.headerLength),
    ];
    await Promise.all(
      vectorFiles().map(async (file) => {
        const rows = await tsharkFields(fileURLToPath(new URL(file, VECTORS_DIR)), fields);
        const frames = loadVector(file);
        expect(rows).toHaveLength(frames.length);
        for (const [index, frame] of frames.entries()) {
          const layers = ipLayers(frame.ip).map(ours);
          const expected = fields.map((_, column) => layers.map((layer) => layer[column]).join(';'));
          expect(rows[index], `${file} frame ${frame.frame}`).toEqual(expected);
        }
      }),
    );
  });

  it('verifies the outer, inner and quoted header checksums and every transport checksum', () => {
    const verified = vectorFiles().flatMap((file) => {
      const frames = loadVector(file);
      for (const frame of frames) {
        const decoded = ipv4.decode(frame.ip);
        expect(decoded.ok, `${file} ${frame.frame}`).toBe(true);
        expect(ipv4.decode(capturedInner(frame)).ok).toBe(true);
      }
      return innerDatagrams(frames).flatMap(verifyTransport);
    });
    const counts = verified.reduce<Record<string, number>>(
      (all, kind) => ({ ...all, [kind]: (all[kind] ?? 0) + 1 }),
      {},
    );
    expect(counts).toEqual({
      'icmp echo-request': 26,
      'icmp echo-reply': 21,
      'icmp time-exceeded': 1,
      'icmp destination-unreachable': 1,
      udp: 2,
      tcp: 10,
    });
  });

  it('reads the UDP datagram and the TCP exchange, MSS 1460 unclamped (rule 17)', () => {
    const inners = loadVector('udp-tcp.pcapng').map(capturedInner).map(checked);
    const pseudo = (view: Ipv4View) => ({ src: view.src, dst: view.dst });
    const datagram = udp.decode(inners[0].payload, pseudo(inners[0]));
    expect(datagram.ok && [datagram.value.srcPort, datagram.value.dstPort, datagram.value.payload.toString()]).toEqual([
      40829,
      9999,
      'hello-udp-from-pod-A\n',
    ]);
    const segments = inners.slice(2).map((view) => {
      const segment = tcp.decode(view.payload, pseudo(view));
      if (!segment.ok) throw new Error(segment.reason);
      return segment.value;
    });
    const flagText = (segment: DecodedTcpSegment) =>
      'FSRPAU'
        .split('')
        .filter((_, bit) => segment.flags & (1 << bit))
        .join('');
    expect(segments.map(flagText)).toEqual(['S', 'SA', 'A', 'PA', 'FA', 'PA', 'A', 'A', 'FA', 'A']);
    expect(segments.slice(0, 2).map((segment) => tcpMss(segment.options))).toEqual([1460, 1460]);
    expect(segments[3].payload.toString()).toBe('hello-from-pod-A\n');
    expect(segments[5].payload.toString()).toBe('hello-from-pod-B\n');
  });
});

describe('vectors: encapsulation replay (rules 1-6)', () => {
  const kernelEncapsulated = () => allVectorFrames().filter((frame) => checked(frame.ip).src !== INJECTING_HOST);

  it('rebuilds every kernel-encapsulated packet byte for byte from its inner packet, outer addresses and ID', () => {
    const frames = kernelEncapsulated();
    expect(frames).toHaveLength(59);
    for (const frame of frames) {
      const outer = checked(frame.ip);
      const rebuilt = encapsulate(capturedInner(frame), { src: outer.src, dst: outer.dst, id: outer.identification });
      expect(rebuilt, `${frame.file} frame ${frame.frame}`).toEqual(outer.packet);
    }
  });

  it('matches every outer field but the ID with any fresh ID, checksum valid', () => {
    for (const frame of kernelEncapsulated()) {
      const outer = checked(frame.ip);
      const freshId = (outer.identification + 0x1234) & 0xffff;
      const rebuilt = checked(encapsulate(capturedInner(frame), { src: outer.src, dst: outer.dst, id: freshId }));
      const { identification, headerChecksum, ...fields } = rebuilt.toPacket();
      const { identification: kernelId, headerChecksum: kernelChecksum, ...kernelFields } = outer.toPacket();
      expect(fields, `${frame.file} frame ${frame.frame}`).toEqual(kernelFields);
      expect([identification, rebuilt.verifyChecksum()]).toEqual([freshId, true]);
      expect([kernelId, headerChecksum === kernelChecksum]).toEqual([outer.identification, false]);
    }
  });
});

describe('vectors: decapsulation (rules 9-10)', () => {
  it('yields the captured inner bytes exactly, except where an outer CE sets CE on an ECT inner packet', () => {
    let ceMarked = 0;
    for (const frame of allVectorFrames()) {
      const captured = Buffer.from(capturedInner(frame));
      const outerEcn = checked(frame.ip).ecn;
      const innerEcn = checked(captured).ecn;
      const result = decapsulate(frame.ip);
      if (outerEcn === ECN.CE && innerEcn === ECN.NOT_ECT) {
        expect(result).toEqual({ ok: false, reason: 'ecn-non-ect-ce' });
        continue;
      }
      if (!result.ok) throw new Error(`${frame.file} frame ${frame.frame}: ${result.reason}`);
      const expected = Buffer.from(captured);
      if (outerEcn === ECN.CE && innerEcn !== ECN.CE) {
        const view = new Ipv4View(expected);
        view.ecn = ECN.CE;
        view.fillChecksum();
        ceMarked++;
      }
      expect(result.value.inner.packet, `${frame.file} frame ${frame.frame}`).toEqual(expected);
    }
    expect(ceMarked).toBe(2);
  });

  it('reproduces case 10 sub-case by sub-case: what the pod received is what its reply echoed', () => {
    const frames = loadVector('non-node.pcapng');
    const sequence = (frame: VectorFrame) => capturedInner(frame).readUInt16BE(20 + 6);
    // label, request frame, then the kernel's outcome: the TOS the pod got (echoed in the reply) or a drop.
    const cases: [string, number, { tos: number; logged: boolean } | 'drop'][] = [
      ['10a', 1, { tos: 0x00, logged: false }],
      ['10b CE over ECT(0)', 3, { tos: 0x03, logged: false }],
      ['10c CE over Not-ECT', 5, 'drop'],
      ['10d ECT(0) over Not-ECT', 6, { tos: 0x00, logged: true }],
      ['10e outer DSCP EF', 8, { tos: 0x00, logged: false }],
      ['10f CE over ECT(1)', 10, { tos: 0x03, logged: false }],
    ];
    for (const [label, requestFrame, outcome] of cases) {
      const request = frames[requestFrame - 1];
      expect(checked(request.ip).src, label).toBe(INJECTING_HOST);
      const replies = frames.filter(
        (frame) => checked(frame.ip).src !== INJECTING_HOST && sequence(frame) === sequence(request),
      );
      const result = decapsulate(Buffer.from(request.ip));
      if (outcome === 'drop') {
        expect(result, label).toEqual({ ok: false, reason: 'ecn-non-ect-ce' });
        expect(replies, label).toHaveLength(0);
        continue;
      }
      if (!result.ok) throw new Error(`${label}: ${result.reason}`);
      const received = result.value.inner;
      expect([(received.dscp << 2) | received.ecn, result.value.nonEctLogged], label).toEqual([
        outcome.tos,
        outcome.logged,
      ]);
      expect(replies, label).toHaveLength(1);
      const echoed = checked(capturedInner(replies[0]));
      expect((echoed.dscp << 2) | echoed.ecn, label).toBe(outcome.tos);
    }
  });
});

describe('vectors: fragmentation for the tunnel MTU (rule 7, case 4)', () => {
  const frames = () => loadVector('big-nodf.pcapng');

  it("re-fragments each joined original into exactly the kernel's inner pieces", () => {
    const all = frames();
    const inner = (frame: number) => capturedInner(all[frame - 1]);
    // [frames the node cut one packet into, length and MF of that packet as the node received it]
    const cuts: [number[], number, boolean][] = [
      [[1, 2], 1500, true],
      [[4, 5], 1500, true],
      [[7, 8], 1488, false],
      [[9, 10], 1488, false],
    ];
    for (const [pieceFrames, length, moreFragments] of cuts) {
      const joined = joinFragments(pieceFrames.map(inner));
      if (!joined.ok) throw new Error(joined.reason);
      const original = checked(joined.value);
      expect([original.totalLength, original.fragmentOffset, original.moreFragments]).toEqual([
        length,
        0,
        moreFragments,
      ]);
      expect(fragment(joined.value, 1480)).toEqual({ ok: true, value: pieceFrames.map(inner) });
    }
    for (const passedThrough of [3, 6]) {
      expect(fragment(inner(passedThrough), 1480)).toEqual({ ok: true, value: [inner(passedThrough)] });
    }
  });

  it('gives each piece its own outer packet with a fresh ID, DF 0, MF 0, offset 0 (rule 6)', () => {
    for (const frame of frames()) {
      const outer = checked(frame.ip);
      expect([outer.dontFragment, outer.moreFragments, outer.fragmentOffset]).toEqual([false, false, 0]);
      expect(outer.identification).not.toBe(checked(capturedInner(frame)).identification);
    }
  });
});

describe('vectors: ICMP errors byte for byte', () => {
  it('rebuilds the Time Exceeded node B sent from its tunl0 address, quoting the whole packet (ttl2 frame 2)', () => {
    const offending = capturedInner(loadVector('ttl2.pcapng')[0]);
    const captured = checked(frameOf('ttl2.pcapng', 2));
    const capturedError = checked(captured.payload);
    const error = ipv4.encode({
      dscp: icmpErrorTos(checked(offending).dscp << 2) >> 2,
      identification: capturedError.identification,
      ttl: 64,
      protocol: IP_PROTOCOL.ICMP,
      src: address('192.168.87.192'),
      dst: address('192.168.77.130'),
      payload: timeExceeded(offending, 0, { quote: 'linux' }),
    });
    expect(error).toEqual(capturedError.packet);
    expect(error.length).toBe(112);
    const tunnelled = encapsulate(error, {
      src: address('10.0.0.11'),
      dst: address('10.0.0.10'),
      id: captured.identification,
    });
    expect(tunnelled).toEqual(captured.packet);
    expect(timeExceeded(offending).length).toBe(8 + 28);
  });

  it("rebuilds the pod's Port Unreachable, forwarded once by its node (udp-tcp frame 2)", () => {
    const datagram = Buffer.from(capturedInner(loadVector('udp-tcp.pcapng')[0]));
    new Ipv4View(datagram).decrementTtl(); // node B forwarded it to the pod, which quotes what it received
    const captured = checked(capturedInner(loadVector('udp-tcp.pcapng')[1]));
    const error = ipv4.encode({
      dscp: icmpErrorTos(0) >> 2,
      identification: captured.identification,
      ttl: 64,
      protocol: IP_PROTOCOL.ICMP,
      src: address('192.168.87.198'),
      dst: address('192.168.77.130'),
      payload: destinationUnreachable(datagram, UNREACHABLE_CODE.PORT, { quote: 'linux' }),
    });
    new Ipv4View(error).decrementTtl(); // and node B forwarded the error into the tunnel
    expect(error).toEqual(captured.packet);
  });
});

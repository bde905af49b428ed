/**
 * Every parser of untrusted bytes against 100,000 random and mutated inputs: none may throw, and nothing a parser
 * returns may reach past the bytes it was given.
 *
 * Each input is parsed twice: from an exactly-sized copy, where a Buffer.readUInt* past the end throws a RangeError
 * (which must not happen), and from a window into a larger buffer full of a sentinel, where a result that reached past
 * the window (a slice built from the underlying ArrayBuffer, say) is caught by its byte range. Both parses must agree.
 */
import assert from 'node:assert/strict';
import { describe, expect, it } from 'vitest';
import {
  IcmpView,
  Ipv4View,
  QUOTED_PAYLOAD_LENGTH,
  TcpView,
  UdpView,
  checkQuote,
  decapsulate,
  fragment,
  icmp,
  internetChecksum,
  ipv4,
  joinFragments,
  pcapng,
  tcp,
  tcpMss,
  tcpOptions,
  udp,
  type DropReason,
  type Parsed,
} from '../../src/wire/index.js';
import { mulberry32, randomBytes, randomInt } from '../support/random.js';
import { allVectorFrames, readVector, vectorFiles } from '../support/wire-vectors.js';

const SEED = 0x1b1b;
const INPUTS = 100_000;
const SENTINEL = 0xa5;

type Random = () => number;

/** Asserts `derived` lies inside `input`'s bytes when it shares its memory (a copy is checked by the caller). */
function assertWithin(input: Buffer, derived: Buffer, what: string): void {
  if (derived.buffer !== input.buffer) return;
  const start = derived.byteOffset - input.byteOffset;
  if (derived.length === 0) return;
  if (start < 0 || start + derived.length > input.length) {
    throw new Error(`${what}: bytes [${start}, ${start + derived.length}) outside an input of ${input.length}`);
  }
}

/** What a view's header check should say of bytes the codec refused or took: the views leave the checksum out. */
function headerReason(decoded: Parsed<unknown>, checksumReason: DropReason): DropReason | undefined {
  return decoded.ok || decoded.reason === checksumReason ? undefined : decoded.reason;
}

/** Runs every parser over `input` and returns a summary that must not depend on the memory around it. */
function parseEverything(input: Buffer, random: Random): string[] {
  const summary: string[] = [];
  const addresses = { src: 0xc0a84d82, dst: 0xc0a857c6 };

  const decoded = ipv4.decode(input);
  if (decoded.ok) {
    const packet = decoded.value;
    assert.ok(packet.totalLength <= input.length, 'packet.totalLength <= input.length');
    assert.equal(packet.options.length, packet.ihl * 4 - 20);
    assert.equal(packet.payload.length, packet.totalLength - packet.ihl * 4);
    assertWithin(input, packet.options, 'ipv4 options');
    assertWithin(input, packet.payload, 'ipv4 payload');
    summary.push(`ipv4 ${packet.totalLength} ${packet.protocol}`);
  } else {
    summary.push(decoded.reason);
  }

  const checked = Ipv4View.check(input);
  assert.equal(checked.ok, decoded.ok);
  if (checked.ok) {
    const view = checked.value;
    assert.ok(view.headerLength <= view.totalLength, 'view.headerLength <= view.totalLength');
    assert.ok(view.totalLength <= input.length, 'view.totalLength <= input.length');
    assertWithin(input, view.packet, 'view packet');
    assert.deepEqual(view.toPacket(), decoded.ok && decoded.value);
  }
  assert.equal(reusedView.attach(input).validate(), checked.ok ? undefined : checked.reason);

  const message = icmp.decode(input);
  if (message.ok) {
    const body = 'quoted' in message.value ? message.value.quoted : message.value.data;
    assert.equal(body.length, input.length - 8);
    assertWithin(input, body, 'icmp body');
    summary.push(`icmp ${message.value.kind}`);
  } else summary.push(message.reason);
  assert.equal(reusedIcmp.attach(input).validate(), message.ok ? undefined : message.reason);

  const datagram = udp.decode(input, addresses);
  if (datagram.ok) {
    assert.ok(datagram.value.length <= input.length, 'datagram.value.length <= input.length');
    assert.equal(datagram.value.payload.length, datagram.value.length - 8);
    assertWithin(input, datagram.value.payload, 'udp payload');
    summary.push(`udp ${datagram.value.length}`);
  } else summary.push(datagram.reason);
  assert.equal(reusedUdp.attach(input).validate(), headerReason(datagram, 'bad-udp-checksum'));

  const segment = tcp.decode(input, addresses);
  if (segment.ok) {
    const headerLength = segment.value.dataOffset * 4;
    assert.equal(segment.value.options.length, headerLength - 20);
    assert.equal(segment.value.payload.length, input.length - headerLength);
    assertWithin(input, segment.value.options, 'tcp options');
    assertWithin(input, segment.value.payload, 'tcp payload');
    summary.push(`tcp ${headerLength}`);
  } else summary.push(segment.reason);
  assert.equal(reusedTcp.attach(input).validate(), headerReason(segment, 'bad-tcp-checksum'));
  summary.push(`mss ${tcpMss(input.subarray(0, 40))}`);
  summary.push(`tcp options ${JSON.stringify(tcpOptions.decode(input.subarray(0, 40)))}`);

  const quote = checkQuote(input);
  if (quote.ok) {
    assert.ok(quote.value.headerLength + QUOTED_PAYLOAD_LENGTH <= input.length, 'a quote holds its 8 payload bytes');
    summary.push(`quote ${quote.value.headerLength} ${new TcpView(input, quote.value.headerLength).sequence}`);
  } else summary.push(quote.reason);

  const tunnelled = decapsulate(input);
  if (tunnelled.ok) {
    const { outer, inner } = tunnelled.value;
    assert.ok(
      inner.totalLength <= outer.totalLength - outer.headerLength,
      'inner.totalLength <= outer.totalLength - outer.headerLength',
    );
    assertWithin(input, inner.packet, 'decapsulated inner');
    summary.push(`ipip ${inner.totalLength}`);
  } else summary.push(tunnelled.reason);

  const mtu = 68 + randomInt(random, 1500);
  const pieces = fragment(input, mtu);
  if (pieces.ok) {
    for (const piece of pieces.value) {
      assert.ok(piece.length <= mtu, 'piece.length <= mtu');
      assert.equal(Ipv4View.check(piece).ok, true);
      assertWithin(input, piece, 'fragment');
    }
    const joined = joinFragments(pieces.value);
    assert.equal(joined.ok, true);
    summary.push(`fragments ${pieces.value.length}`);
  } else summary.push(pieces.reason);

  return summary;
}

function parseCapture(input: Buffer): string[] {
  const capture = pcapng.decode(input);
  if (!capture.ok) return [capture.reason];
  // Each packet's bytes lie inside its own block, so they come in order and never overlap.
  let previousEnd = 0;
  for (const packet of capture.value.packets) {
    assert.ok(
      packet.interfaceId < capture.value.interfaces.length,
      'packet.interfaceId < capture.value.interfaces.length',
    );
    assertWithin(input, packet.data, 'pcapng packet');
    const start = packet.data.byteOffset - input.byteOffset;
    assert.ok(start >= previousEnd, `packet data at ${start} overlaps the previous one ending at ${previousEnd}`);
    previousEnd = start + packet.data.length;
  }
  return [`pcapng ${capture.value.interfaces.length} ${capture.value.packets.length}`];
}

const reusedView = new Ipv4View(Buffer.alloc(0));
const reusedIcmp = new IcmpView(Buffer.alloc(0));
const reusedUdp = new UdpView(Buffer.alloc(0));
const reusedTcp = new TcpView(Buffer.alloc(0));

/** Makes a mutated IPv4 header pass its checksum again, so parsing goes past it to the deeper checks. */
function refillHeaderChecksum(bytes: Buffer, at: number): void {
  if (bytes.length < at + 20) return;
  const end = Math.min(bytes.length, at + Math.max(20, (bytes[at] & 0x0f) * 4));
  bytes.writeUInt16BE(0, at + 10);
  bytes.writeUInt16BE(internetChecksum(bytes, at, end), at + 10);
}

function mutate(source: Buffer, random: Random): Buffer {
  let bytes = Buffer.from(source);
  const rounds = 1 + randomInt(random, 3);
  for (let round = 0; round < rounds && bytes.length > 0; round++) {
    const at = randomInt(random, 2) === 0 ? 0 : 20; // the outer header or, in an IPIP packet, the inner one
    switch (randomInt(random, 6)) {
      case 0:
        bytes[randomInt(random, bytes.length)] ^= 1 << randomInt(random, 8);
        break;
      case 1:
        bytes = bytes.subarray(0, randomInt(random, bytes.length + 1));
        break;
      case 2:
        if (bytes.length > at) bytes[at] = (bytes[at] & 0xf0) | randomInt(random, 16);
        break;
      case 3:
        if (bytes.length > at + 3)
          bytes.writeUInt16BE(
            randomInt(random, 2) ? randomInt(random, 0x10000) : (bytes.length - at + randomInt(random, 9) - 4) & 0xffff,
            at + 2,
          );
        break;
      case 4:
        bytes[randomInt(random, bytes.length)] = randomInt(random, 256);
        break;
      case 5:
        bytes = Buffer.concat([bytes, randomBytes(random, randomInt(random, 16))]);
        break;
    }
    if (randomInt(random, 2) === 0) {
      refillHeaderChecksum(bytes, 20);
      refillHeaderChecksum(bytes, 0);
    }
  }
  return bytes;
}

function mutateCapture(file: Buffer, random: Random): Buffer {
  const bytes = Buffer.from(file);
  switch (randomInt(random, 3)) {
    case 0:
      for (let flips = 1 + randomInt(random, 4); flips > 0; flips--)
        bytes[randomInt(random, bytes.length)] ^= 1 << randomInt(random, 8);
      return bytes;
    case 1:
      return bytes.subarray(0, randomInt(random, bytes.length + 1));
    default: {
      // Corrupt a block or option length field: one of the first words of some 4-byte-aligned position.
      const at = randomInt(random, bytes.length >> 2) << 2;
      bytes.writeUInt32LE(
        randomInt(random, 2) ? randomInt(random, 2 ** 32) : randomInt(random, 256),
        Math.min(at, bytes.length - 4),
      );
      return bytes;
    }
  }
}

describe('fuzz: parsers of untrusted bytes', () => {
  it(`never throw nor read past the end over ${INPUTS} random and mutated inputs (seed ${SEED})`, () => {
    const random = mulberry32(SEED);
    const frames = allVectorFrames();
    // Sources: outer IPIP packets, the inner packets, and their transport payloads.
    const packets = frames.flatMap((frame) => {
      const outer = new Ipv4View(frame.ip);
      const inner = new Ipv4View(outer.payload);
      return [outer.packet, inner.packet, inner.payload];
    });
    const captures = vectorFiles().map(readVector);
    const arena = Buffer.alloc(16_384, SENTINEL);
    const outcomes = new Set<string>();

    for (let index = 0; index < INPUTS; index++) {
      const kind = randomInt(random, 10);
      const input =
        kind === 0
          ? randomBytes(random, randomInt(random, 101))
          : kind === 1
            ? mutateCapture(captures[randomInt(random, captures.length)], random)
            : mutate(packets[randomInt(random, packets.length)], random);
      const parse = kind === 1 ? parseCapture : (bytes: Buffer) => parseEverything(bytes, mulberry32(index));

      const exact = Buffer.from(input);
      const offset = randomInt(random, 64);
      input.copy(arena, offset);
      const windowed = arena.subarray(offset, offset + input.length);

      let exactSummary: string[] = [];
      try {
        exactSummary = parse(exact);
        assert.deepEqual(parse(windowed), exactSummary);
      } catch (error) {
        throw new Error(`input ${index} (seed ${SEED}) ${input.toString('hex').slice(0, 400)}: ${String(error)}`);
      }
      arena.fill(SENTINEL, 0, offset + input.length);
      for (const outcome of exactSummary) outcomes.add(outcome.split(' ')[0]);
    }

    // The inputs must reach past the first checks, or the run proves little.
    expect([...outcomes].sort()).toEqual(
      expect.arrayContaining([
        'ipv4',
        'icmp',
        'udp',
        'tcp',
        'ipip',
        'fragments',
        'pcapng',
        'ecn-non-ect-ce',
        'nested-ipip',
        'outer-fragment',
        'not-ipip',
        'bad-checksum',
        'total-length-mismatch',
        'bad-ihl',
        'not-ipv4',
        'truncated',
        'bad-icmp-checksum',
        'bad-udp-length',
        'bad-udp-checksum',
        'bad-data-offset',
        'bad-tcp-checksum',
        'bad-pcapng',
      ]),
    );
  });
});

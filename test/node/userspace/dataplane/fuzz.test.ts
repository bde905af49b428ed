/**
 * 100,000 random, mutated and half-valid packets into every entry point of two nodes wired back to back: nothing
 * throws and every packet is accounted for, after every single one.
 */
import { describe, expect, it } from 'vitest';
import { unaccounted, type Dataplane } from '../../../../src/node/userspace/dataplane.js';
import { Ipv4View } from '../../../../src/wire/ipv4.js';
import { mulberry32, randomBytes, randomInt } from '../../../support/random.js';
import { allVectorFrames } from '../../../support/wire-vectors.js';
import { NODE_A, NODE_B, POD_A, POD_B, checkCountersAfterEachTest, ip, ipip, makeNode } from './harness.js';

checkCountersAfterEachTest();

const SEED = 0x1e1e1e1e;
const ROUNDS = 100_000;

/** Refreshes the checksums of the outer header and of the IPv4 header right after it, where they still fit. */
function fixChecksums(packet: Buffer): void {
  for (const at of [0, (packet[0] & 0x0f) * 4]) {
    const headerLength = (packet[at] & 0x0f) * 4;
    if (headerLength < 20 || at + headerLength > packet.length) return;
    new Ipv4View(packet, at).fillChecksum();
  }
}

describe('fuzz', () => {
  it(`${ROUNDS.toLocaleString('en')} packets: never throws, every one counted`, () => {
    const random = mulberry32(SEED);
    const pick = <T>(items: readonly T[]): T => items[randomInt(random, items.length)];
    const vectors = allVectorFrames().map((frame) => frame.ip);
    const interesting = [
      NODE_A.nodeIp,
      NODE_B.nodeIp,
      '10.0.0.12',
      '10.0.0.1',
      '10.0.0.255',
      NODE_A.tunnelAddress!,
      NODE_B.tunnelAddress!,
      POD_A.ip,
      POD_B.ip,
      '192.168.77.150',
      '192.168.87.250',
      '8.8.8.8',
      '127.0.0.1',
      '0.0.0.0',
      '224.0.0.1',
      '255.255.255.255',
    ].map(ip);

    // Whatever a node sends reaches the other one, a bounded number at a time so the run stays linear.
    const queue: Buffer[] = [];
    const wire = { send: (packet: Buffer) => void (queue.length < 64 && queue.push(Buffer.from(packet))) };
    const a = makeNode(NODE_A, { underlay: wire });
    const b = makeNode(NODE_B, { underlay: wire });
    const nodes = [a.dp, b.dp];

    const mutate = (source: Buffer): Buffer => {
      let packet = Buffer.from(source);
      for (let flips = randomInt(random, 4); flips > 0 && packet.length > 0; flips--) {
        packet[randomInt(random, Math.min(packet.length, 64))] ^= 1 << randomInt(random, 8);
      }
      if (random() < 0.2) packet = packet.subarray(0, randomInt(random, packet.length + 1));
      if (random() < 0.1) packet = Buffer.concat([packet, randomBytes(random, randomInt(random, 40))]);
      if (random() < 0.2 && packet.length >= 40) {
        packet.writeUInt32BE(pick(interesting), 12 + 20 * randomInt(random, 2));
        packet.writeUInt32BE(pick(interesting), 16 + 20 * randomInt(random, 2));
      }
      if (random() < 0.6) fixChecksums(packet);
      return packet;
    };
    const generate = (): Buffer => {
      const kind = random();
      if (kind < 0.15) return randomBytes(random, randomInt(random, 80));
      if (kind < 0.65) return mutate(pick(vectors));
      const inner = mutate(pick(vectors).subarray(20));
      return mutate(ipip(NODE_A.nodeIp, NODE_B.nodeIp, inner.length >= 20 ? inner : Buffer.alloc(20)));
    };

    for (let round = 0; round < ROUNDS; round++) {
      const dp = pick(nodes);
      const packet = generate();
      const before = dp.stats();
      const entry = randomInt(random, 6);
      try {
        if (entry === 0) dp.fromUnderlay(packet);
        else if (entry === 1) dp.fromPod(pick([POD_A.name, POD_B.name, 'ghost']), packet);
        else if (entry === 2) dp.inject(pick(['eth0', 'tunl0', POD_A.hostInterface, POD_B.name, 'lo']), packet);
        else if (entry === 3) dp.sendFromNode(packet);
        else dp.inject(dp === a.dp ? POD_A.name : POD_B.name, packet.length >= 20 ? withPodSource(packet, dp) : packet);
      } catch (error) {
        throw new Error(`round ${round} (seed ${SEED}) threw on ${packet.toString('hex')}: ${String(error)}`);
      }
      const after = dp.stats();
      const entered = entry === 3 ? after.originated - before.originated : after.received - before.received;
      if (unaccounted(after) !== 0 || entered < 1) throw new Error(`round ${round}: ${JSON.stringify(after)}`);
      while (queue.length > 0) pick(nodes).fromUnderlay(queue.shift()!);
    }

    for (const dp of nodes) {
      const stats = dp.stats();
      expect(unaccounted(stats)).toBe(0);
      // The run reached well past the parsers.
      expect(stats.delivered + stats.forwarded + stats.consumed).toBeGreaterThan(1000);
    }
  });
});

/** Gets past anti-spoofing: the pod's own source address, checksum refreshed. */
function withPodSource(packet: Buffer, dp: Dataplane): Buffer {
  const copy = Buffer.from(packet);
  copy.writeUInt32BE(dp.config.pods[0].ip.value, 12);
  fixChecksums(copy);
  return copy;
}

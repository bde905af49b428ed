import { describe, expect, it } from 'vitest';
import { foldSum, internetChecksum, onesComplementSum, pseudoHeaderSum, updateChecksum } from '../../src/wire/index.js';
import { mulberry32, randomBytes, randomInt } from '../support/random.js';

describe('internet checksum (RFC 1071)', () => {
  it('matches the worked example of RFC 1071 §3', () => {
    const bytes = Buffer.from('0001f203f4f5f6f7', 'hex');
    expect(onesComplementSum(bytes, 0, bytes.length)).toBe(0x2ddf0);
    expect(foldSum(0x2ddf0)).toBe(0xddf2);
    expect(internetChecksum(bytes)).toBe(0x220d);
  });

  // Outer header of ttl2.pcapng frame 1 as the kernel sent it (checksum 0x5984), typed in from tshark -x.
  const capturedHeader = Buffer.from('4500 0068 0bfa 4000 0104 5984 0a00 000a 0a00 000b'.replace(/ /g, ''), 'hex');

  it('reproduces the checksum of a header from a real capture', () => {
    const zeroed = Buffer.from(capturedHeader);
    zeroed.writeUInt16BE(0, 10);
    expect(internetChecksum(zeroed)).toBe(0x5984);
    expect(internetChecksum(capturedHeader)).toBe(0);
  });

  it('pads an odd last byte with zero and honours start, end and an initial sum', () => {
    expect(onesComplementSum(Buffer.of(0xab), 0, 1)).toBe(0xab00);
    const framed = Buffer.concat([Buffer.of(0xee, 0xee), capturedHeader, Buffer.of(0xee)]);
    expect(internetChecksum(framed, 2, 22)).toBe(0);
    expect(internetChecksum(Buffer.of(0x12, 0x34), 0, 2, 0x1111)).toBe(~0x2345 & 0xffff);
  });

  it('folds sums far beyond 32 bits', () => {
    const ones = Buffer.alloc(200_000, 0xff);
    expect(internetChecksum(ones)).toBe(0);
  });

  it('sums the pseudo-header as four address halves, protocol and length', () => {
    expect(pseudoHeaderSum(0xc0a84d82, 0xc0a857c6, 17, 29)).toBe(0xc0a8 + 0x4d82 + 0xc0a8 + 0x57c6 + 17 + 29);
  });
});

describe('incremental update (RFC 1624)', () => {
  it('agrees with a full recomputation for any changed word', () => {
    const random = mulberry32(1624);
    for (let round = 0; round < 20_000; round++) {
      const header = randomBytes(random, 20);
      header.writeUInt16BE(0, 10);
      header.writeUInt16BE(internetChecksum(header), 10);
      const word = randomInt(random, 10) * 2;
      if (word === 10) continue;
      const before = header.readUInt16BE(word);
      const after = round % 4 === 0 ? ~before & 0xffff : randomInt(random, 0x10000);
      header.writeUInt16BE(after, word);
      const updated = updateChecksum(header.readUInt16BE(10), before, after);
      header.writeUInt16BE(0, 10);
      expect(updated).toBe(internetChecksum(header));
    }
  });
});

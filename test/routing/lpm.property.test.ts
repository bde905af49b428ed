import { describe, expect, it } from 'vitest';
import { Ipv4Prefix } from '../../src/routing/address.js';
import { LpmTable } from '../../src/routing/lpm.js';
import { mulberry32, randomInt, randomUint32, type Random } from '../support/random.js';
import { addressIn, randomPrefixes } from '../support/routing-random.js';

const SEED = 0x1badcafe;

/**
 * The obvious answer: scan every live prefix and keep the longest that contains the address. Networks and masks
 * sit in int32 arrays beside the prefixes so a 10k-prefix scan stays cheap enough to run 100k+ times.
 */
class LinearScan {
  readonly prefixes: Ipv4Prefix[] = [];
  private readonly values: number[] = [];
  private readonly networks: number[] = [];
  private readonly masks: number[] = [];
  private readonly positions = new Map<string, number>();

  insert(prefix: Ipv4Prefix, value: number): void {
    const at = this.positions.get(String(prefix));
    if (at !== undefined) {
      this.values[at] = value;
      return;
    }
    this.positions.set(String(prefix), this.prefixes.length);
    this.prefixes.push(prefix);
    this.values.push(value);
    this.networks.push(prefix.address.value | 0);
    this.masks.push(prefix.mask | 0);
  }

  remove(prefix: Ipv4Prefix): boolean {
    const at = this.positions.get(String(prefix));
    if (at === undefined) return false;
    this.positions.delete(String(prefix));
    const last = this.prefixes.length - 1;
    if (at !== last) {
      this.prefixes[at] = this.prefixes[last];
      this.values[at] = this.values[last];
      this.networks[at] = this.networks[last];
      this.masks[at] = this.masks[last];
      this.positions.set(String(this.prefixes[at]), at);
    }
    this.prefixes.pop();
    this.values.pop();
    this.networks.pop();
    this.masks.pop();
    return true;
  }

  get(prefix: Ipv4Prefix): number | undefined {
    const at = this.positions.get(String(prefix));
    return at === undefined ? undefined : this.values[at];
  }

  /** The matched prefix and its value. */
  lookup(address: number): [Ipv4Prefix, number] | undefined {
    let best = -1;
    let bestLength = -1;
    for (let i = 0; i < this.networks.length; i++) {
      if ((address & this.masks[i]) === this.networks[i] && this.prefixes[i].length > bestLength) {
        best = i;
        bestLength = this.prefixes[i].length;
      }
    }
    return best < 0 ? undefined : [this.prefixes[best], this.values[best]];
  }

  sorted(): string[] {
    return this.prefixes
      .map((prefix, i) => ({ prefix, value: this.values[i] }))
      .sort((a, b) => a.prefix.address.value - b.prefix.address.value || b.prefix.length - a.prefix.length)
      .map(({ prefix, value }) => `${prefix}=${value}`);
  }
}

/** Runs `count` lookups, half inside a live prefix and half anywhere; returns the first disagreement. */
function firstMismatch(random: Random, table: LpmTable<number>, oracle: LinearScan, count: number): string | undefined {
  for (let i = 0; i < count; i++) {
    const live = oracle.prefixes;
    const address =
      i % 2 === 0 && live.length > 0 ? addressIn(random, live[randomInt(random, live.length)]) : randomUint32(random);
    const expected = oracle.lookup(address);
    const value = table.lookup(address);
    const prefix = table.lookupPrefix(address);
    if (value !== expected?.[1] || String(prefix) !== String(expected?.[0])) {
      return `lookup #${i} of ${address >>> 0}: table ${prefix}=${value}, scan ${expected?.[0]}=${expected?.[1]}`;
    }
  }
  return undefined;
}

/** Exact-match `get` of every prefix given, present or not; returns the first disagreement. */
function firstGetMismatch(
  table: LpmTable<number>,
  oracle: LinearScan,
  prefixes: readonly Ipv4Prefix[],
): string | undefined {
  for (const prefix of prefixes) {
    const value = table.get(prefix);
    const expected = oracle.get(prefix);
    if (value !== expected) return `get ${prefix}: table ${value}, scan ${expected}`;
  }
  return undefined;
}

describe('LpmTable against a linear scan (seeded, reproducible)', () => {
  it('agrees on every lookup through inserts, replacements and removes', () => {
    const random = mulberry32(SEED);
    const table = new LpmTable<number>();
    const oracle = new LinearScan();
    let nextValue = 0;
    const insert = (prefix: Ipv4Prefix): void => {
      table.insert(prefix, nextValue);
      oracle.insert(prefix, nextValue++);
    };

    // Clustered, lengths 0..32: short lengths repeat (there are only two /1s), so replacement is exercised too.
    const batch = randomPrefixes(random, 16_000, { minLength: 0, maxLength: 32, clusters: 300 });
    batch.push(Ipv4Prefix.parse('0.0.0.0/0'), Ipv4Prefix.parse('255.255.255.255/32'), Ipv4Prefix.parse('0.0.0.0/32'));
    batch.forEach(insert);
    expect(batch.some((p) => p.length === 0) && batch.some((p) => p.length === 32)).toBe(true);
    expect(oracle.prefixes.length).toBeGreaterThan(10_000);
    expect(table.size).toBe(oracle.prefixes.length);
    expect(firstMismatch(random, table, oracle, 60_000)).toBeUndefined();
    expect(firstGetMismatch(table, oracle, batch)).toBeUndefined();
    expect([...table.entries()].map(([p, v]) => `${p}=${v}`)).toEqual(oracle.sorted());

    // Remove ~40% of what was drawn (some twice, so some removes find nothing), including the default route.
    for (let i = 0; i < 5_000; i++) {
      const prefix = batch[randomInt(random, batch.length)];
      expect(table.remove(prefix)).toBe(oracle.remove(prefix));
    }
    expect(table.remove(Ipv4Prefix.parse('0.0.0.0/0'))).toBe(oracle.remove(Ipv4Prefix.parse('0.0.0.0/0')));
    expect(table.size).toBe(oracle.prefixes.length);
    expect(firstMismatch(random, table, oracle, 40_000)).toBeUndefined();
    // The removed ones among them too: they must be gone from the exact-match index as well as from the trie.
    expect(firstGetMismatch(table, oracle, batch)).toBeUndefined();

    // Churn: new prefixes land in freed slots, chunks and ids while more are removed, and some are replaced.
    const churn = randomPrefixes(random, 3_000, { minLength: 0, maxLength: 32, clusters: 40 });
    for (const prefix of churn) {
      insert(prefix);
      const victim = oracle.prefixes[randomInt(random, oracle.prefixes.length)];
      expect(table.remove(victim)).toBe(oracle.remove(victim));
      if (randomInt(random, 4) === 0) insert(oracle.prefixes[randomInt(random, oracle.prefixes.length)]);
    }
    expect(table.size).toBe(oracle.prefixes.length);
    expect(firstMismatch(random, table, oracle, 20_000)).toBeUndefined();
    expect(firstGetMismatch(table, oracle, [...batch, ...churn])).toBeUndefined();
    expect([...table.entries()].map(([p, v]) => `${p}=${v}`)).toEqual(oracle.sorted());

    // Emptied, the table answers nothing and has handed every chunk back.
    for (const prefix of [...oracle.prefixes]) {
      expect(table.remove(prefix)).toBe(oracle.remove(prefix));
    }
    expect(table.size).toBe(0);
    expect(firstMismatch(random, table, oracle, 1_000)).toBeUndefined();
    expect(firstGetMismatch(table, oracle, [...batch, ...churn])).toBeUndefined();
    const internals = table as unknown as { chunksAllocated: number; freeChunks: number[] };
    expect(internals.chunksAllocated).toBeGreaterThan(0);
    expect(internals.freeChunks.length).toBe(internals.chunksAllocated);
  });

  it('has an oracle that is itself right on a hand-checked case', () => {
    const oracle = new LinearScan();
    oracle.insert(Ipv4Prefix.parse('10.0.0.0/8'), 1);
    oracle.insert(Ipv4Prefix.parse('10.1.0.0/16'), 2);
    oracle.insert(Ipv4Prefix.parse('200.0.0.0/8'), 3);
    expect(oracle.lookup(0x0a010203)?.[1]).toBe(2);
    expect(oracle.lookup(0x0a020000)?.[1]).toBe(1);
    expect(oracle.lookup(0xc8000001)?.[1]).toBe(3);
    expect(oracle.lookup(0x0b000000)).toBeUndefined();
  });
});

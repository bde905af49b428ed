import { Ipv4Address, Ipv4Prefix, maskOf } from '../../src/routing/address.js';
import { randomInt, randomUint32, type Random } from './random.js';

/** A random address inside `prefix`: its network bits with random host bits. */
export function addressIn(random: Random, prefix: Ipv4Prefix): number {
  const mask = maskOf(prefix.length);
  return ((prefix.address.value & mask) | (randomUint32(random) & ~mask)) >>> 0;
}

export interface PrefixOptions {
  readonly minLength: number;
  readonly maxLength: number;
  /**
   * Prefixes are drawn around this many random centres (a centre's leading bits with random tail bits), so many
   * of them nest and share trie paths; 0 draws every network uniformly.
   */
  readonly clusters: number;
}

/** `count` random prefixes with uniform lengths; duplicates are possible, as they are in a route feed. */
export function randomPrefixes(random: Random, count: number, options: PrefixOptions): Ipv4Prefix[] {
  const centres = Array.from({ length: options.clusters }, () => randomUint32(random));
  const span = options.maxLength - options.minLength + 1;
  const prefixes: Ipv4Prefix[] = [];
  for (let i = 0; i < count; i++) {
    const length = options.minLength + randomInt(random, span);
    let network = randomUint32(random);
    if (centres.length > 0) {
      // Keep 8..24 leading bits of a centre: nearby prefixes then differ only below that.
      const shared = maskOf(8 + randomInt(random, 17));
      network = ((centres[randomInt(random, centres.length)] & shared) | (network & ~shared)) >>> 0;
    }
    prefixes.push(Ipv4Prefix.of(Ipv4Address.fromUint32(network), length).masked());
  }
  return prefixes;
}

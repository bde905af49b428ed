/**
 * compareRoutesInKernelOrder sorts a list of routes without a table, so it must order exactly as RouteTable lists
 * them: the table, which walks its trie in kernel dump order, is the oracle.
 */
import { describe, expect, it } from 'vitest';
import { Ipv4Address, Ipv4Prefix } from '../../src/routing/address.js';
import type { Route } from '../../src/routing/route.js';
import { compareRoutesInKernelOrder, RouteTable } from '../../src/routing/table.js';
import { mulberry32, randomInt } from '../support/random.js';
import { randomPrefixes, type PrefixOptions } from '../support/routing-random.js';

const SEED = 0x5eed0de7;

/** Routes to distinct destinations in a random order, unicast or blackhole, so next hops vary too. */
function randomRoutes(seed: number, count: number, options: PrefixOptions): Route[] {
  const random = mulberry32(seed);
  const distinct = new Map<string, Ipv4Prefix>();
  for (const prefix of randomPrefixes(random, count, options)) distinct.set(String(prefix), prefix);
  return [...distinct.values()].map((destination) =>
    randomInt(random, 4) === 0
      ? { kind: 'blackhole', destination, proto: 'bird' }
      : {
          kind: 'unicast',
          destination,
          gateway: Ipv4Address.fromUint32(randomInt(random, 8)),
          dev: 'tunl0',
          scope: 'global',
        },
  );
}

function destinations(routes: readonly Route[]): string[] {
  return routes.map((route) => String(route.destination));
}

describe('compareRoutesInKernelOrder against RouteTable (seeded, reproducible)', () => {
  it.each([
    ['every length, spread out', { minLength: 0, maxLength: 32, clusters: 0 }],
    ['every length, nested around a few networks', { minLength: 0, maxLength: 32, clusters: 12 }],
    ['long prefixes sharing their first bits', { minLength: 20, maxLength: 32, clusters: 3 }],
    ['short prefixes only', { minLength: 0, maxLength: 8, clusters: 0 }],
  ] as const)('orders as the table lists: %s', (_name, options) => {
    for (let round = 0; round < 20; round++) {
      const routes = randomRoutes(SEED + round, 2_000, options);
      const table = new RouteTable();
      for (const route of routes) table.add(route);
      expect(destinations([...routes].sort(compareRoutesInKernelOrder))).toEqual(destinations(table.routes()));
    }
  });

  it('puts the longer of two prefixes of one network first, as the kernel dumps them', () => {
    const routes: Route[] = ['10.0.0.0/8', '10.0.0.0/24'].map((text) => ({
      kind: 'blackhole',
      destination: Ipv4Prefix.parse(text),
    }));
    expect(destinations(routes.sort(compareRoutesInKernelOrder))).toEqual(['10.0.0.0/24', '10.0.0.0/8']);
  });
});

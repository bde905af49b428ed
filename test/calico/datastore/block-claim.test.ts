/**
 * Calico's block claim against a compare-and-swap store: hosts racing for one block, each step interleaved with the
 * others', end with distinct confirmed blocks, and no address is handed out twice.
 */
import { describe, expect, test } from 'vitest';
import {
  DATASTORE_KEYS,
  DatastoreIpam,
  NoBlockAvailableError,
  initialBlockIndex,
  preferredBlock,
  type AllocationBlockValue,
  type BlockAffinityValue,
  type IpPool,
} from '../../../src/calico/index.js';
import { Ipv4Prefix } from '../../../src/routing/address.js';
import { MemoryCasStore } from '../../support/memory-store.js';

const POOL: IpPool = {
  name: 'default-ipv4-ippool',
  cidr: Ipv4Prefix.parse('192.168.0.0/24'),
  blockSize: 26,
  ipipMode: 'Always',
};
const SEED_POOL: IpPool = { ...POOL, cidr: Ipv4Prefix.parse('192.168.0.0/16') };
/** Every one of these starts its walk at block 1 of POOL (192.168.0.64/26). */
const SAME_START = ['race-node01', 'race-node04', 'race-node05', 'race-node08'];

function valuesUnder<T>(store: MemoryCasStore, prefix: string): [string, T][] {
  return [...store.entries]
    .filter(([key]) => key.startsWith(prefix))
    .map(([key, stored]) => [key, JSON.parse(stored.value) as T]);
}

describe('claiming blocks by compare-and-swap', () => {
  test('the hosts of the race really start at one block', () => {
    expect(new Set(SAME_START.map((host) => initialBlockIndex(POOL, host)))).toEqual(new Set([1]));
  });

  test('four hosts racing for one block each end with a block of their own, every affinity confirmed', async () => {
    const store = new MemoryCasStore();
    const ipam = new DatastoreIpam(store, POOL);
    const blocks = await Promise.all(SAME_START.map((host) => ipam.claimBlock(host)));
    expect(new Set(blocks.map(String)).size).toBe(4);
    // They collided: the losers' creates were refused, and their pending affinities went away.
    expect(store.conflicts).toBeGreaterThan(0);
    const affinities = valuesUnder<BlockAffinityValue>(store, '/calico/ipam/v2/host/');
    expect(affinities).toHaveLength(4);
    expect(affinities.every(([, value]) => value.state === 'confirmed')).toBe(true);
    for (const [i, host] of SAME_START.entries()) {
      const block = valuesUnder<AllocationBlockValue>(store, DATASTORE_KEYS.block(blocks[i]))[0][1];
      expect(block.affinity).toBe(`host:${host}`);
      expect(store.entries.has(DATASTORE_KEYS.affinity(host, blocks[i]))).toBe(true);
    }
  });

  test('a fifth host finds no block, and says which pool ran out', async () => {
    const store = new MemoryCasStore();
    const ipam = new DatastoreIpam(store, POOL);
    await Promise.all(SAME_START.map((host) => ipam.claimBlock(host)));
    await expect(ipam.claimBlock('race-node09')).rejects.toThrow(NoBlockAvailableError);
    await expect(ipam.claimBlock('race-node09')).rejects.toThrow(/default-ipv4-ippool \(192\.168\.0\.0\/24\)/);
  });

  test('addresses taken at once from one block are all different, first ordinals first', async () => {
    const store = new MemoryCasStore();
    const ipam = new DatastoreIpam(store, POOL);
    const block = await ipam.claimBlock('race-node01');
    const assigned = await Promise.all(
      Array.from({ length: 20 }, (_, i) => ipam.assign('race-node01', block, `handle-${i}`, { pod: String(i) })),
    );
    const addresses = assigned.map(({ address }) => address.value - block.first().value).sort((a, b) => a - b);
    expect(addresses).toEqual(Array.from({ length: 20 }, (_, i) => i));
    const value = valuesUnder<AllocationBlockValue>(store, DATASTORE_KEYS.block(block))[0][1];
    expect(value.unallocated).toEqual(Array.from({ length: 44 }, (_, i) => i + 20));
    expect(value.attributes).toHaveLength(20);
    const handles = valuesUnder<{ block: Record<string, number> }>(store, '/calico/ipam/v2/handle/');
    expect(handles.map(([, handle]) => handle.block[block.toString()])).toEqual(Array(20).fill(1));
  });

  test("a restarted host gets its confirmed block back, and its tunnel address by handle; a fresh host gets the seed's block", async () => {
    const store = new MemoryCasStore();
    const ipam = new DatastoreIpam(store, SEED_POOL);
    const block = await ipam.claimBlock('master-node');
    expect(block).toEqual(preferredBlock(SEED_POOL, 'master-node'));
    expect(block.toString()).toBe('192.168.77.128/26');
    const { address } = await ipam.assign('master-node', block, 'ipip-tunnel-addr-master-node', {
      node: 'master-node',
    });
    expect(address.toString()).toBe('192.168.77.128');
    expect((await ipam.claimBlock('master-node')).toString()).toBe('192.168.77.128/26');
    expect((await ipam.addressOf(block, 'ipip-tunnel-addr-master-node'))?.toString()).toBe('192.168.77.128');
    expect(await ipam.addressOf(block, 'ipip-tunnel-addr-nobody')).toBeUndefined();
  });
});

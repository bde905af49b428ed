import { describe, expect, it } from 'vitest';
import { Ipv4Address, Ipv4Prefix } from '../../src/routing/address.js';
import {
  initialBlockIndex,
  Ipam,
  type IpPool,
  PoolExhaustedError,
  preferredBlock,
  tunnelHandle,
} from '../../src/calico/ipam.js';

function pool(cidr: string, blockSize: number, name = 'test-pool'): IpPool {
  return { name, cidr: Ipv4Prefix.parse(cidr), blockSize, ipipMode: 'Always' };
}

const DEFAULT_POOL = pool('192.168.0.0/16', 26, 'default-ipv4-ippool');
const texts = (values: { toString(): string }[]) => values.map(String);

describe('block choice reproduces real clusters', () => {
  // Seen in the seeds: tunl0 addresses and `route` output of two real Calico clusters.
  const KNOWN = [
    ['master-node', '192.168.77.128/26'],
    ['worker-node01', '192.168.87.192/26'],
    ['worker-node02', '192.168.158.0/26'],
    ['networking-control-plane', '192.168.223.128/26'],
    ['networking-worker', '192.168.78.128/26'],
    ['networking-worker2', '192.168.175.0/26'],
    ['networking-worker3', '192.168.21.128/26'],
  ] as const;

  it.each(KNOWN)('%s claims %s first', (host, block) => {
    expect(preferredBlock(DEFAULT_POOL, host).toString()).toBe(block);
  });

  it('gives each node of the seed clusters its block base as tunl0 address', () => {
    for (const hosts of [KNOWN.slice(0, 3), KNOWN.slice(3)]) {
      const ipam = new Ipam(DEFAULT_POOL);
      for (const [host, block] of hosts) {
        expect(ipam.assignTunnelAddress(host).toString()).toBe(block.split('/')[0]);
        expect(texts(ipam.blocksOf(host))).toEqual([block]);
        expect(ipam.affinityOf(Ipv4Prefix.parse(block))).toBe(host);
      }
    }
  });

  it("puts worker-node02's second and third pods at .158.2 and .158.3 after tunl0 and one earlier pod", () => {
    const ipam = new Ipam(DEFAULT_POOL);
    ipam.assignTunnelAddress('worker-node02');
    ipam.assign('worker-node02', 'k8s-pod-network.coredns');
    expect(ipam.assign('worker-node02', 'k8s-pod-network.db9tv').toString()).toBe('192.168.158.2');
    expect(ipam.assign('worker-node02', 'k8s-pod-network.vjr2r').toString()).toBe('192.168.158.3');
  });

  // go1.19 with Calico's randomBlockGenerator on 192.168.0.0/16 for host master-node.
  const MASTER_FIRST_BLOCK: Record<number, string> = {
    20: '192.168.96.0/20',
    21: '192.168.48.0/21',
    22: '192.168.216.0/22',
    23: '192.168.108.0/23',
    24: '192.168.198.0/24',
    25: '192.168.155.0/25',
    26: '192.168.77.128/26',
    27: '192.168.95.224/27',
    28: '192.168.147.96/28',
    29: '192.168.73.176/29',
    30: '192.168.251.24/30',
    31: '192.168.146.108/31',
    32: '192.168.73.54/32',
  };

  it.each(Object.entries(MASTER_FIRST_BLOCK))('blockSize %s: master-node starts at %s', (size, block) => {
    expect(preferredBlock(pool('192.168.0.0/16', Number(size)), 'master-node').toString()).toBe(block);
  });
});

describe('addresses inside a block', () => {
  it('hands out ordinals first-in-first-out from the block base, with no network/broadcast reservation', () => {
    const ipam = new Ipam(DEFAULT_POOL);
    const addresses = [ipam.assignTunnelAddress('master-node')];
    for (let i = 0; i < 63; i++) addresses.push(ipam.assign('master-node', `pod-${i}`));
    expect(addresses.map((a) => a.toString())).toEqual(Array.from({ length: 64 }, (_, i) => `192.168.77.${128 + i}`));
    expect(ipam.handleOf(Ipv4Address.parse('192.168.77.128'))).toBe('ipip-tunnel-addr-master-node');
    expect(ipam.handleOf(Ipv4Address.parse('192.168.77.191'))).toBe('pod-62');
    expect(ipam.blocksOf('master-node')).toHaveLength(1);
  });

  it('puts a released ordinal at the back of the free list', () => {
    // /30 blocks in a /24: 64 blocks, and "host" starts its walk at index 19.
    expect(initialBlockIndex(pool('10.0.0.0/24', 30), 'host')).toBe(19);
    const ipam = new Ipam(pool('10.0.0.0/24', 30));
    const [a, b, c] = ['p0', 'p1', 'p2'].map((h) => ipam.assign('host', h));
    expect(texts([a, b, c])).toEqual(['10.0.0.76', '10.0.0.77', '10.0.0.78']);
    expect(ipam.release(b)).toBe(true);
    expect(ipam.handleOf(b)).toBeUndefined();
    expect(ipam.assign('host', 'p3').toString()).toBe('10.0.0.79');
    expect(ipam.assign('host', 'p4').toString()).toBe('10.0.0.77');
    // Only now is the block full, so the host claims its next block on the walk.
    expect(ipam.assign('host', 'p5').toString()).toBe('10.0.0.80');
    expect(texts(ipam.blocksOf('host'))).toEqual(['10.0.0.76/30', '10.0.0.80/30']);
  });

  it('refills earlier blocks before later ones, in claim order', () => {
    const ipam = new Ipam(pool('10.0.0.0/24', 30));
    const first = Array.from({ length: 5 }, (_, i) => ipam.assign('host', `p${i}`));
    expect(first[4].toString()).toBe('10.0.0.80');
    ipam.release(first[1]);
    expect(ipam.assign('host', 'again').toString()).toBe('10.0.0.77');
  });

  it('reports releasing an unallocated address as false', () => {
    const ipam = new Ipam(DEFAULT_POOL);
    expect(ipam.release(Ipv4Address.parse('192.168.1.1'))).toBe(false);
    expect(ipam.release(Ipv4Address.parse('10.0.0.1'))).toBe(false);
  });

  it('releases every address of a handle, as CNI DEL does', () => {
    const ipam = new Ipam(DEFAULT_POOL);
    ipam.assignTunnelAddress('worker-node01');
    const pod = [ipam.assign('worker-node01', 'k8s-pod-network.x'), ipam.assign('worker-node01', 'k8s-pod-network.x')];
    expect(texts(ipam.releaseByHandle('k8s-pod-network.x'))).toEqual(texts(pod));
    expect(ipam.releaseByHandle('k8s-pod-network.x')).toEqual([]);
    expect(ipam.assign('worker-node01', 'next').toString()).toBe('192.168.87.195');
  });
});

describe('tunnel address', () => {
  it('is idempotent per host and uses the ipip-tunnel-addr handle', () => {
    const ipam = new Ipam(DEFAULT_POOL);
    const first = ipam.assignTunnelAddress('worker-node01');
    ipam.assign('worker-node01', 'pod');
    expect(ipam.assignTunnelAddress('worker-node01')).toEqual(first);
    expect(ipam.handleOf(first)).toBe(tunnelHandle('worker-node01'));
    expect(tunnelHandle('worker-node01')).toBe('ipip-tunnel-addr-worker-node01');
  });

  it('is refused on a pool without IPIP', () => {
    const ipam = new Ipam({ ...DEFAULT_POOL, ipipMode: 'Never' });
    expect(() => ipam.assignTunnelAddress('master-node')).toThrow(/ipipMode Never/);
    expect(ipam.assign('master-node', 'pod').toString()).toBe('192.168.77.128');
  });
});

describe('claiming, wrapping and borrowing', () => {
  // /28 in /30 blocks: 4 blocks; host "a" starts its walk at the last one (index 3).
  const TINY = pool('10.0.0.0/28', 30, 'tiny');

  it('wraps the claim walk past the last block of the pool', () => {
    expect(initialBlockIndex(TINY, 'a')).toBe(3);
    const ipam = new Ipam(TINY);
    for (let i = 0; i < 16; i++) ipam.assign('a', `p${i}`);
    expect(texts(ipam.blocksOf('a'))).toEqual(['10.0.0.12/30', '10.0.0.0/30', '10.0.0.4/30', '10.0.0.8/30']);
  });

  it('skips blocks other hosts hold and takes the next unclaimed one on the walk', () => {
    const ipam = new Ipam(TINY);
    expect([initialBlockIndex(TINY, 'b'), initialBlockIndex(TINY, 'c')]).toEqual([1, 1]);
    ipam.assign('b', 'pb');
    expect(ipam.assign('c', 'pc').toString()).toBe('10.0.0.8');
    expect(ipam.affinityOf(Ipv4Prefix.parse('10.0.0.8/30'))).toBe('c');
    expect(ipam.affinityOf(Ipv4Prefix.parse('10.0.0.0/30'))).toBeUndefined();
    expect(ipam.affinityOf(Ipv4Prefix.parse('10.0.0.8/29'))).toBeUndefined();
    expect(ipam.affinityOf(Ipv4Prefix.parse('10.0.1.0/30'))).toBeUndefined();
  });

  it('borrows from the first block with room on its own walk once every block is claimed', () => {
    const ipam = new Ipam(TINY);
    for (const host of ['a', 'b', 'c', 'node-2']) ipam.assign(host, `first-${host}`);
    expect(initialBlockIndex(TINY, 'node-3')).toBe(0);
    const borrowed = ipam.assign('node-3', 'borrower');
    expect(borrowed.toString()).toBe('10.0.0.1');
    expect(ipam.blocksOf('node-3')).toEqual([]);
    expect(ipam.affinityOf(Ipv4Prefix.parse('10.0.0.0/30'))).toBe('node-2');
    expect(ipam.allocations().find((a) => a.address.equals(borrowed))).toMatchObject({
      handle: 'borrower',
      host: 'node-3',
    });
  });

  // /22 in /30 blocks: 256 blocks of 4, so 20 full blocks take 80 assignments.
  const SMALL = pool('10.10.0.0/22', 30, 'small');

  it('borrows once its 20 blocks are full, walking from its own start and wrapping', () => {
    expect(['node-0', 'node-1', 'c'].map((host) => initialBlockIndex(SMALL, host))).toEqual([97, 25, 67]);
    const ipam = new Ipam(SMALL);
    ipam.assign('c', 'c-pod');
    ipam.assign('node-1', 'n1-pod');
    for (let i = 0; i < 80; i++) ipam.assign('node-0', `pod-${i}`);
    const blocks = ipam.blocksOf('node-0');
    expect(blocks).toHaveLength(20);
    expect(blocks[0].toString()).toBe('10.10.1.132/30');
    expect(blocks[19].toString()).toBe('10.10.1.208/30');
    // From index 97 the walk wraps to 0 and meets node-1's block 25 before c's block 67.
    const borrowed = ipam.assign('node-0', 'pod-80');
    expect(borrowed.toString()).toBe('10.10.0.101');
    expect(ipam.blocksOf('node-0')).toHaveLength(20);
    expect(ipam.assign('node-0', 'pod-81').toString()).toBe('10.10.0.102');
    expect(ipam.assign('node-0', 'pod-82').toString()).toBe('10.10.0.103');
    expect(ipam.assign('node-0', 'pod-83').toString()).toBe('10.10.1.13');
  });

  it('refuses to borrow with strict affinity, naming pool and host', () => {
    const ipam = new Ipam(SMALL, { strictAffinity: true });
    ipam.assign('node-1', 'n1-pod');
    for (let i = 0; i < 80; i++) ipam.assign('node-0', `pod-${i}`);
    const error = captureError(() => ipam.assign('node-0', 'pod-80'));
    expect(error).toBeInstanceOf(PoolExhaustedError);
    expect(error.message).toContain('small (10.10.0.0/22)');
    expect(error.message).toContain('node-0');
    expect(error.message).toContain('strict affinity');
    expect((error as PoolExhaustedError).host).toBe('node-0');
  });

  it('honours a smaller maxBlocksPerHost', () => {
    const ipam = new Ipam(TINY, { maxBlocksPerHost: 1 });
    for (let i = 0; i < 4; i++) ipam.assign('a', `p${i}`);
    expect(() => ipam.assign('a', 'p4')).toThrow(/maxBlocksPerHost \(1\)/);
    expect(() => new Ipam(TINY, { maxBlocksPerHost: 0 })).toThrow(RangeError);
  });

  it('throws PoolExhaustedError when every address is taken', () => {
    const ipam = new Ipam(TINY);
    for (let i = 0; i < 16; i++) ipam.assign(i % 2 ? 'a' : 'b', `p${i}`);
    expect(ipam.capacity()).toEqual({ addresses: 16, inUse: 16, free: 0, blocks: 4, claimedBlocks: 4 });
    const error = captureError(() => ipam.assign('c', 'one-too-many'));
    expect(error).toBeInstanceOf(PoolExhaustedError);
    expect(error.message).toMatch(/^No IPs available in pool tiny \(10\.0\.0\.0\/28\) for host c: /);
    ipam.release(Ipv4Address.parse('10.0.0.6'));
    expect(ipam.assign('c', 'after-release').toString()).toBe('10.0.0.6');
  });
});

describe('block size boundaries', () => {
  const SIZES = [26, 27, 28, 29, 30, 31, 32];
  it.each(SIZES)('blockSize %i: tunl0 is the first block base, a full block leads on to the next', (size) => {
    const ipam = new Ipam(pool('192.168.0.0/16', size));
    const first = preferredBlock(ipam.pool, 'master-node');
    expect(ipam.assignTunnelAddress('master-node')).toEqual(first.first());
    for (let i = 1; i < first.size; i++) expect(first.contains(ipam.assign('master-node', `p${i}`))).toBe(true);
    const next = ipam.assign('master-node', 'overflow');
    expect(first.contains(next)).toBe(false);
    expect(next.equals(first.last().add(1))).toBe(true);
    expect(ipam.blocksOf('master-node')).toHaveLength(2);
  });

  it('accepts a /20 block that is the whole pool', () => {
    const ipam = new Ipam(pool('10.0.0.0/20', 20));
    expect(ipam.assignTunnelAddress('master-node').toString()).toBe('10.0.0.0');
    expect(texts(ipam.blocksOf('master-node'))).toEqual(['10.0.0.0/20']);
    expect(ipam.capacity()).toEqual({ addresses: 4096, inUse: 1, free: 4095, blocks: 1, claimedBlocks: 1 });
  });

  it('gives /32 blocks one address each, so maxBlocksPerHost caps a host at 20 addresses', () => {
    const ipam = new Ipam(pool('10.0.0.0/24', 32));
    const addresses = Array.from({ length: 20 }, (_, i) => ipam.assign('master-node', `p${i}`).toString());
    expect(addresses[0]).toBe('10.0.0.198');
    expect(addresses[19]).toBe('10.0.0.217');
    expect(() => ipam.assign('master-node', 'p20')).toThrow(PoolExhaustedError);
  });

  it.each([
    ['10.0.0.0/16', 19],
    ['10.0.0.0/16', 33],
    ['10.0.0.0/16', 26.5],
    ['10.0.0.0/27', 26],
    ['10.0.0.1/16', 26],
  ])('rejects pool %s with blockSize %s', (cidr, size) => {
    expect(() => new Ipam(pool(cidr, size))).toThrow(RangeError);
    expect(() => preferredBlock(pool(cidr, size), 'x')).toThrow(RangeError);
  });

  it('rejects an empty host or handle', () => {
    const ipam = new Ipam(DEFAULT_POOL);
    expect(() => ipam.assign('', 'h')).toThrow(TypeError);
    expect(() => ipam.assign('h', '')).toThrow(TypeError);
  });
});

describe('queries and determinism', () => {
  function scenario(): Ipam {
    const ipam = new Ipam(pool('172.16.0.0/24', 29, 'p'), { maxBlocksPerHost: 2 });
    for (const host of ['master-node', 'worker-node01', 'worker-node02']) ipam.assignTunnelAddress(host);
    for (let i = 0; i < 30; i++) ipam.assign(['master-node', 'worker-node01', 'worker-node02'][i % 3], `pod-${i}`);
    ipam.release(ipam.allocations()[5].address);
    for (let i = 30; i < 40; i++) ipam.assign('worker-node02', `pod-${i}`);
    return ipam;
  }

  it('gives the same result for the same call sequence', () => {
    const a = scenario();
    const b = scenario();
    expect(JSON.stringify(a.allocations())).toBe(JSON.stringify(b.allocations()));
    for (const host of ['master-node', 'worker-node01', 'worker-node02']) {
      expect(texts(a.blocksOf(host))).toEqual(texts(b.blocksOf(host)));
    }
  });

  it('lists allocations in address order with handle, host and block', () => {
    const ipam = scenario();
    const all = ipam.allocations();
    const values = all.map((a) => a.address.value);
    expect(values).toEqual([...values].sort((x, y) => x - y));
    expect(all).toHaveLength(ipam.capacity().inUse);
    for (const allocation of all) {
      expect(allocation.block.contains(allocation.address)).toBe(true);
      expect(ipam.handleOf(allocation.address)).toBe(allocation.handle);
    }
    expect(ipam.capacity()).toMatchObject({ addresses: 256, blocks: 32 });
  });
});

function captureError(action: () => unknown): Error {
  try {
    action();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error');
}

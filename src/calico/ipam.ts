/**
 * Calico's block IPAM (libcalico-go/lib/ipam) as one in-memory, deterministic model: a pool cut into blocks, blocks
 * claimed by hosts (affinity), addresses handed out from a per-block FIFO free list. Block choice reproduces
 * `randomBlockGenerator` bit for bit, so a host gets the same block here as in a real cluster.
 */
import { Ipv4Address, Ipv4Prefix } from '../routing/address.js';
import { bigRandBelow, fnv1_32, GoRand } from './gorand.js';

export type IpipMode = 'Always' | 'CrossSubnet' | 'Never';

export interface IpPool {
  readonly name: string;
  readonly cidr: Ipv4Prefix;
  /** Prefix length of each block: 26 gives 64-address blocks. */
  readonly blockSize: number;
  readonly ipipMode: IpipMode;
}

export interface IpamOptions {
  /** Calico IPAMConfig maxBlocksPerHost; defaults to 20, the limit Calico documents for IPAMConfig. */
  readonly maxBlocksPerHost?: number;
  /** When true, a host whose blocks are full never borrows addresses from other hosts' blocks. */
  readonly strictAffinity?: boolean;
}

export interface Allocation {
  readonly address: Ipv4Address;
  readonly handle: string;
  /** The host the address was assigned for, which differs from the block's affinity when it was borrowed. */
  readonly host: string;
  readonly block: Ipv4Prefix;
}

export interface IpamCapacity {
  readonly addresses: number;
  readonly inUse: number;
  readonly free: number;
  readonly blocks: number;
  readonly claimedBlocks: number;
}

/** Thrown when an address cannot be assigned; names the pool and the host so the lab user sees which ran dry. */
export class PoolExhaustedError extends Error {
  constructor(
    readonly pool: IpPool,
    readonly host: string,
    detail: string,
  ) {
    super(`No IPs available in pool ${pool.name} (${pool.cidr}) for host ${host}: ${detail}`);
    this.name = 'PoolExhaustedError';
  }
}

/** The handle calico-node allocates the tunl0 address under (`assignHostTunnelAddr`). */
export function tunnelHandle(host: string): string {
  return `ipip-tunnel-addr-${host}`;
}

/** Calico's IPv4 pool validation accepts block sizes 20..32, and a block may not be larger than its pool. */
function validatePool(pool: IpPool): void {
  if (!Number.isInteger(pool.blockSize) || pool.blockSize < 20 || pool.blockSize > 32) {
    throw new RangeError(`pool ${pool.name}: blockSize must be 20..32, got ${pool.blockSize}`);
  }
  if (pool.blockSize < pool.cidr.length) {
    throw new RangeError(`pool ${pool.name}: blockSize /${pool.blockSize} is larger than the pool ${pool.cidr}`);
  }
  if (!pool.cidr.isMasked()) {
    throw new RangeError(`pool ${pool.name}: CIDR ${pool.cidr} has host bits set (use ${pool.cidr.masked()})`);
  }
}

function blockCount(pool: IpPool): number {
  return 2 ** (pool.blockSize - pool.cidr.length);
}

/**
 * Where `randomBlockGenerator(pool, host)` starts its walk: `big.Int.Rand` below the block count, from Go's math/rand
 * seeded with the FNV-1 hash of the hostname. For /32 blocks real Calico seeds with the clock instead
 * (`determineSeed`); we keep the hostname seed there too, because the emulator must be deterministic.
 */
export function initialBlockIndex(pool: IpPool, host: string): number {
  validatePool(pool);
  const rand = new GoRand(BigInt(fnv1_32(host)));
  return Number(bigRandBelow(rand, BigInt(blockCount(pool))));
}

/** The block a fresh host claims first when nobody holds it yet: e.g. master-node → 192.168.77.128/26. */
export function preferredBlock(pool: IpPool, host: string): Ipv4Prefix {
  return blockPrefix(pool, initialBlockIndex(pool, host));
}

/** Every block of the pool in the order a host tries them: from its hostname-seeded start, wrapping past the end. */
export function* blockWalk(pool: IpPool, host: string): Generator<Ipv4Prefix> {
  const count = blockCount(pool);
  const start = initialBlockIndex(pool, host);
  for (let step = 0; step < count; step++) yield blockPrefix(pool, (start + step) % count);
}

function blockPrefix(pool: IpPool, index: number): Ipv4Prefix {
  const base = pool.cidr.first().value + index * 2 ** (32 - pool.blockSize);
  return Ipv4Prefix.of(Ipv4Address.fromUint32(base), pool.blockSize);
}

interface Block {
  readonly index: number;
  readonly prefix: Ipv4Prefix;
  readonly affinity: string;
  /** Unallocated ordinals, handed out from the front; released ones rejoin at the back, as in Calico's block. */
  readonly free: number[];
}

interface Assignment {
  readonly handle: string;
  readonly host: string;
  readonly block: Block;
  readonly ordinal: number;
}

export class Ipam {
  private readonly maxBlocksPerHost: number;
  private readonly strictAffinity: boolean;
  private readonly numBlocks: number;
  private readonly blockAddresses: number;
  private readonly blocks = new Map<number, Block>();
  private readonly hostBlocks = new Map<string, Block[]>();
  private readonly startIndex = new Map<string, number>();
  private readonly assignments = new Map<number, Assignment>();
  private readonly handles = new Map<string, number[]>();

  constructor(
    readonly pool: IpPool,
    options: IpamOptions = {},
  ) {
    validatePool(pool);
    this.maxBlocksPerHost = options.maxBlocksPerHost ?? 20;
    this.strictAffinity = options.strictAffinity ?? false;
    if (!Number.isInteger(this.maxBlocksPerHost) || this.maxBlocksPerHost < 1) {
      throw new RangeError(`maxBlocksPerHost must be a positive integer, got ${this.maxBlocksPerHost}`);
    }
    this.numBlocks = blockCount(pool);
    this.blockAddresses = 2 ** (32 - pool.blockSize);
  }

  /**
   * tunl0's address, under handle `ipip-tunnel-addr-<host>`. calico-node allocates it before any pod, so it is the
   * base of the host's first block; asking again returns the address the host already has, as a restarted node does.
   */
  assignTunnelAddress(host: string): Ipv4Address {
    if (this.pool.ipipMode === 'Never') {
      throw new Error(`pool ${this.pool.name} has ipipMode Never: no IPIP tunnel address for host ${host}`);
    }
    const handle = tunnelHandle(host);
    const existing = this.handles.get(handle);
    if (existing && existing.length > 0) return Ipv4Address.fromUint32(existing[0]);
    return this.assign(host, handle);
  }

  /** One address for `handle` on `host`, following Calico's autoAssign order: own blocks, a new block, borrowing. */
  assign(host: string, handle: string): Ipv4Address {
    if (host === '') throw new TypeError('host must be a non-empty name');
    if (handle === '') throw new TypeError('handle must be a non-empty string');
    const owned = this.hostBlocks.get(host) ?? [];
    const affine = owned.find((block) => block.free.length > 0);
    if (affine) return this.take(affine, host, handle);

    if (owned.length < this.maxBlocksPerHost) {
      const claimed = this.claimBlock(host);
      if (claimed) return this.take(claimed, host, handle);
    }

    const borrowed = this.strictAffinity ? undefined : this.borrowBlock(host);
    if (borrowed) return this.take(borrowed, host, handle);
    throw new PoolExhaustedError(this.pool, host, this.exhaustionReason(owned.length));
  }

  /** Returns the address to its block's free list (at the back); false when it was not allocated. */
  release(address: Ipv4Address): boolean {
    const assignment = this.assignments.get(address.value);
    if (!assignment) return false;
    this.assignments.delete(address.value);
    assignment.block.free.push(assignment.ordinal);
    const held = this.handles.get(assignment.handle) ?? [];
    const remaining = held.filter((value) => value !== address.value);
    if (remaining.length > 0) this.handles.set(assignment.handle, remaining);
    else this.handles.delete(assignment.handle);
    return true;
  }

  /** Calico's ReleaseByHandle, as the CNI plugin's DEL does: every address of the handle, in assignment order. */
  releaseByHandle(handle: string): Ipv4Address[] {
    const released = (this.handles.get(handle) ?? []).map((value) => Ipv4Address.fromUint32(value));
    for (const address of released) this.release(address);
    return released;
  }

  /** The host's blocks in the order it claimed them. */
  blocksOf(host: string): Ipv4Prefix[] {
    return (this.hostBlocks.get(host) ?? []).map((block) => block.prefix);
  }

  affinityOf(block: Ipv4Prefix): string | undefined {
    const index = this.blockIndexOf(block.first());
    if (index === undefined || block.length !== this.pool.blockSize || !block.isMasked()) return undefined;
    return this.blocks.get(index)?.affinity;
  }

  handleOf(address: Ipv4Address): string | undefined {
    return this.assignments.get(address.value)?.handle;
  }

  /** Every allocated address, in address order. */
  allocations(): Allocation[] {
    return [...this.assignments.entries()]
      .sort(([a], [b]) => a - b)
      .map(([value, { handle, host, block }]) => ({
        address: Ipv4Address.fromUint32(value),
        handle,
        host,
        block: block.prefix,
      }));
  }

  capacity(): IpamCapacity {
    const addresses = this.pool.cidr.size;
    const inUse = this.assignments.size;
    return { addresses, inUse, free: addresses - inUse, blocks: this.numBlocks, claimedBlocks: this.blocks.size };
  }

  private exhaustionReason(owned: number): string {
    const full = `its ${owned} block(s) are full`;
    const noClaim =
      owned >= this.maxBlocksPerHost
        ? `it holds maxBlocksPerHost (${this.maxBlocksPerHost}) blocks`
        : `all ${this.numBlocks} blocks are claimed`;
    const noBorrow = this.strictAffinity
      ? 'strict affinity forbids borrowing'
      : "no other host's block has a free address";
    return `${full}, ${noClaim}, and ${noBorrow}`;
  }

  private blockIndexOf(address: Ipv4Address): number | undefined {
    if (!this.pool.cidr.contains(address)) return undefined;
    return Math.floor((address.value - this.pool.cidr.first().value) / this.blockAddresses);
  }

  private start(host: string): number {
    let index = this.startIndex.get(host);
    if (index === undefined) {
      index = initialBlockIndex(this.pool, host);
      this.startIndex.set(host, index);
    }
    return index;
  }

  /** Position of a block in the host's walk: the walk starts at the host's index and wraps past the last block. */
  private walkDistance(host: string, index: number): number {
    return (index - this.start(host) + this.numBlocks) % this.numBlocks;
  }

  /** `findUnclaimedBlock`: the first block on the host's walk that no host holds yet. */
  private claimBlock(host: string): Block | undefined {
    if (this.blocks.size >= this.numBlocks) return undefined;
    let index = this.start(host);
    while (this.blocks.has(index)) index = (index + 1) % this.numBlocks;
    const block: Block = {
      index,
      prefix: blockPrefix(this.pool, index),
      affinity: host,
      free: Array.from({ length: this.blockAddresses }, (_, ordinal) => ordinal),
    };
    this.blocks.set(index, block);
    const owned = this.hostBlocks.get(host);
    if (owned) owned.push(block);
    else this.hostBlocks.set(host, [block]);
    return block;
  }

  /**
   * The non-affine hunt: Calico walks the same hostname-seeded sequence over every block and takes the first one with
   * room. Only existing blocks can have room, so picking the nearest of those on the walk gives the same block without
   * stepping through every empty index of a large pool.
   */
  private borrowBlock(host: string): Block | undefined {
    let best: Block | undefined;
    for (const block of this.blocks.values()) {
      if (block.free.length === 0) continue;
      if (!best || this.walkDistance(host, block.index) < this.walkDistance(host, best.index)) best = block;
    }
    return best;
  }

  private take(block: Block, host: string, handle: string): Ipv4Address {
    const ordinal = block.free.shift() as number;
    const address = block.prefix.first().add(ordinal);
    this.assignments.set(address.value, { handle, host, block, ordinal });
    const held = this.handles.get(handle);
    if (held) held.push(address.value);
    else this.handles.set(handle, [address.value]);
    return address;
  }
}

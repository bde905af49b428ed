/**
 * Calico's IPAM against a shared datastore (libcalico-go lib/ipam/ipam_block_reader_writer.go and ipam.go): a host
 * claims a block as pending affinity → create block → confirm, each step a compare-and-swap, so that two hosts racing
 * for one block cannot both win: the loser removes its pending affinity and walks on. Addresses are then taken from
 * the block's free list by updating the block at the revision it was read at, and retried on a conflict.
 */
import { Ipv4Prefix, type Ipv4Address } from '../../routing/address.js';
import { blockWalk, type IpPool } from '../ipam.js';
import {
  DATASTORE_KEYS,
  cidrOfKey,
  newAllocationBlock,
  type AllocationBlockValue,
  type BlockAffinityValue,
  type IpamHandleValue,
} from './layout.js';

/** A value and the revision it was last written at (etcd's ModRevision). */
export interface Stored {
  value: string;
  revision: string;
}

/** The datastore operations Calico's etcdv3 backend builds on (lib/backend/etcdv3/etcdv3.go). */
export interface CasStore {
  get(key: string): Promise<Stored | undefined>;
  /** Every key under the prefix. */
  list(prefix: string): Promise<Map<string, Stored>>;
  /** Succeeds only if the key does not exist (`Version(key) = 0`); false: ErrorResourceAlreadyExists. */
  create(key: string, value: string): Promise<boolean>;
  /** Succeeds only at that revision (`ModRevision(key) = rev`); false: ErrorResourceUpdateConflict. */
  update(key: string, value: string, revision: string): Promise<boolean>;
  /** Deletes at that revision, or whatever the key holds without one; false if it changed or is gone. */
  delete(key: string, revision?: string): Promise<boolean>;
}

/** Every block is claimed, or none has a free address: the host cannot have one. */
export class NoBlockAvailableError extends Error {}

/** How many times a read-modify-write is retried on conflicts before giving up (Calico's datastoreRetries is 100). */
const CONFLICT_RETRIES = 100;

export interface AssignedAddress {
  address: Ipv4Address;
  block: Ipv4Prefix;
}

export class DatastoreIpam {
  constructor(
    private readonly store: CasStore,
    private readonly pool: IpPool,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** The blocks the host holds a confirmed affinity for, as its restart finds them. */
  async confirmedBlocks(host: string): Promise<Ipv4Prefix[]> {
    const affinities = await this.store.list(DATASTORE_KEYS.affinities(host));
    return [...affinities]
      .filter(([, stored]) => (JSON.parse(stored.value) as BlockAffinityValue).state === 'confirmed')
      .map(([key]) => Ipv4Prefix.parse(cidrOfKey(key)));
  }

  /**
   * The host's first block: the one it already holds, else the first it wins on its hostname-seeded walk. Blocks that
   * exist are skipped without a try; a block created by another host between our read and our create is a conflict,
   * after which the walk goes on.
   */
  async claimBlock(host: string): Promise<Ipv4Prefix> {
    const held = await this.confirmedBlocks(host);
    if (held.length > 0) return held[0];
    const existing = new Set((await this.store.list(DATASTORE_KEYS.blocks)).keys());
    for (const candidate of blockWalk(this.pool, host)) {
      if (existing.has(DATASTORE_KEYS.block(candidate))) continue;
      if (await this.claimAffineBlock(host, candidate)) return candidate;
    }
    throw new NoBlockAvailableError(`pool ${this.pool.name} (${this.pool.cidr}) has no unclaimed block for ${host}`);
  }

  /** One address for `handle` from the host's block, first free ordinal first, as `autoAssign` takes them. */
  async assign(
    host: string,
    block: Ipv4Prefix,
    handle: string,
    secondary: Record<string, string>,
  ): Promise<AssignedAddress> {
    const key = DATASTORE_KEYS.block(block);
    for (let attempt = 0; attempt < CONFLICT_RETRIES; attempt++) {
      const stored = await this.store.get(key);
      if (!stored) throw new Error(`block ${block} of ${host} is not in the datastore`);
      const value = JSON.parse(stored.value) as AllocationBlockValue;
      const ordinal = value.unallocated.shift();
      if (ordinal === undefined) throw new NoBlockAvailableError(`block ${block} of ${host} is full`);
      value.attributes.push({ handle_id: handle, secondary });
      value.allocations[ordinal] = value.attributes.length - 1;
      value.sequenceNumberForAllocation[String(ordinal)] = value.sequenceNumber;
      if (!(await this.store.update(key, JSON.stringify(value), stored.revision))) continue;
      await this.recordHandle(handle, block);
      return { address: block.first().add(ordinal), block };
    }
    throw new Error(`block ${block}: ${CONFLICT_RETRIES} conflicting updates in a row`);
  }

  /**
   * Calico's AssignIP: that very address for `handle`, in the claimed block that holds it. `held` when the handle
   * has it already (a restarted agent), `taken` when another handle has it, `no-block` when no claimed block holds it.
   */
  async assignAddress(
    address: Ipv4Address,
    handle: string,
    secondary: Record<string, string>,
  ): Promise<'assigned' | 'held' | 'taken' | 'no-block'> {
    const block = await this.blockHolding(address);
    if (!block) return 'no-block';
    const key = DATASTORE_KEYS.block(block);
    const ordinal = address.value - block.first().value;
    for (let attempt = 0; attempt < CONFLICT_RETRIES; attempt++) {
      const stored = await this.store.get(key);
      if (!stored) return 'no-block';
      const value = JSON.parse(stored.value) as AllocationBlockValue;
      const attribute = value.allocations[ordinal];
      if (attribute !== null) return value.attributes[attribute]?.handle_id === handle ? 'held' : 'taken';
      value.unallocated = value.unallocated.filter((free) => free !== ordinal);
      value.attributes.push({ handle_id: handle, secondary });
      value.allocations[ordinal] = value.attributes.length - 1;
      value.sequenceNumberForAllocation[String(ordinal)] = value.sequenceNumber;
      if (!(await this.store.update(key, JSON.stringify(value), stored.revision))) continue;
      await this.recordHandle(handle, block);
      return 'assigned';
    }
    throw new Error(`block ${block}: ${CONFLICT_RETRIES} conflicting updates in a row`);
  }

  /**
   * Calico's ReleaseByHandle: every address of `handle` goes back to the end of its block's free list (so it is the
   * last one handed out again), its attributes are dropped, and the handle is deleted. How many were released.
   */
  async releaseHandle(handle: string): Promise<number> {
    const stored = await this.store.get(DATASTORE_KEYS.handle(handle));
    if (!stored) return 0;
    let released = 0;
    for (const cidr of Object.keys((JSON.parse(stored.value) as IpamHandleValue).block)) {
      released += await this.releaseInBlock(Ipv4Prefix.parse(cidr), handle);
    }
    await this.store.delete(DATASTORE_KEYS.handle(handle));
    return released;
  }

  private async releaseInBlock(block: Ipv4Prefix, handle: string): Promise<number> {
    const key = DATASTORE_KEYS.block(block);
    for (let attempt = 0; attempt < CONFLICT_RETRIES; attempt++) {
      const stored = await this.store.get(key);
      if (!stored) return 0;
      const value = JSON.parse(stored.value) as AllocationBlockValue;
      const mine = new Set(
        value.attributes.flatMap((attribute, index) => (attribute.handle_id === handle ? [index] : [])),
      );
      const ordinals = value.allocations.flatMap((attribute, ordinal) =>
        attribute !== null && mine.has(attribute) ? [ordinal] : [],
      );
      if (ordinals.length === 0) return 0;
      // deleteAttributes: the others' attribute indexes close up over the removed ones.
      const renumbered = new Map<number, number>();
      value.attributes = value.attributes.filter((_, index) => {
        if (mine.has(index)) return false;
        renumbered.set(index, renumbered.size);
        return true;
      });
      value.allocations = value.allocations.map((attribute) =>
        attribute === null || mine.has(attribute) ? null : renumbered.get(attribute)!,
      );
      value.unallocated.push(...ordinals);
      for (const ordinal of ordinals) delete value.sequenceNumberForAllocation[String(ordinal)];
      if (await this.store.update(key, JSON.stringify(value), stored.revision)) return ordinals.length;
    }
    throw new Error(`block ${block}: ${CONFLICT_RETRIES} conflicting updates in a row`);
  }

  /** The claimed block that holds `address`, by its CIDR in the pool's block grid. */
  private async blockHolding(address: Ipv4Address): Promise<Ipv4Prefix | undefined> {
    if (!this.pool.cidr.contains(address)) return undefined;
    const block = Ipv4Prefix.of(address, this.pool.blockSize).masked();
    return (await this.store.get(DATASTORE_KEYS.block(block))) ? block : undefined;
  }

  /** The address handed out under `handle` in that block, if any: a restarted host finds its tunnel address again. */
  async addressOf(block: Ipv4Prefix, handle: string): Promise<Ipv4Address | undefined> {
    const stored = await this.store.get(DATASTORE_KEYS.block(block));
    if (!stored) return undefined;
    const value = JSON.parse(stored.value) as AllocationBlockValue;
    const ordinal = value.allocations.findIndex(
      (attribute) => attribute !== null && value.attributes[attribute]?.handle_id === handle,
    );
    return ordinal < 0 ? undefined : block.first().add(ordinal);
  }

  /** getPendingAffinity, then claimAffineBlock's create, then confirmAffinity. */
  private async claimAffineBlock(host: string, block: Ipv4Prefix): Promise<boolean> {
    const affinityKey = DATASTORE_KEYS.affinity(host, block);
    const pending: BlockAffinityValue = { state: 'pending', deleted: false };
    if (!(await this.store.create(affinityKey, JSON.stringify(pending)))) {
      const stored = await this.store.get(affinityKey);
      if (stored) await this.store.update(affinityKey, JSON.stringify(pending), stored.revision);
    }
    const created = await this.store.create(
      DATASTORE_KEYS.block(block),
      JSON.stringify(newAllocationBlock(block, host, this.now())),
    );
    if (!created) {
      const winner = await this.store.get(DATASTORE_KEYS.block(block));
      const affinity = winner && (JSON.parse(winner.value) as AllocationBlockValue).affinity;
      if (affinity !== `host:${host}`) {
        // errBlockClaimConflict: another host won this block; our pending affinity must not outlive the try.
        await this.store.delete(affinityKey);
        return false;
      }
    }
    const stored = await this.store.get(affinityKey);
    const confirmed: BlockAffinityValue = { state: 'confirmed', deleted: false };
    return stored !== undefined && (await this.store.update(affinityKey, JSON.stringify(confirmed), stored.revision));
  }

  private async recordHandle(handle: string, block: Ipv4Prefix): Promise<void> {
    const key = DATASTORE_KEYS.handle(handle);
    const cidr = block.toString();
    for (let attempt = 0; attempt < CONFLICT_RETRIES; attempt++) {
      const stored = await this.store.get(key);
      if (!stored) {
        const value: IpamHandleValue = { block: { [cidr]: 1 }, deleted: false };
        if (await this.store.create(key, JSON.stringify(value))) return;
        continue;
      }
      const value = JSON.parse(stored.value) as IpamHandleValue;
      value.block[cidr] = (value.block[cidr] ?? 0) + 1;
      if (await this.store.update(key, JSON.stringify(value), stored.revision)) return;
    }
    throw new Error(`handle ${handle}: ${CONFLICT_RETRIES} conflicting updates in a row`);
  }
}

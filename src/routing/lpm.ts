import { Ipv4Address, Ipv4Prefix, maskOf } from './address.js';

/*
 * A multibit (stride) trie with controlled prefix expansion, laid out in one Int32Array so that a lookup is a few
 * indexed reads and allocates nothing: a 2^ROOT_BITS-slot root indexed by the top address bits, then chunks of
 * 2^STRIDE slots for each further STRIDE bits. A slot is one word: 0 for none, an entry id (from 1 up), or minus the
 * offset of a child chunk (chunks live after the root, so offsets are positive). A slot with a child keeps its entry
 * in the child's first word, its header, instead. So a fresh zeroed array is an empty table.
 *
 * Each prefix lives only in the level whose bit range holds its last bit, expanded over the slots it covers there;
 * a slot keeps the longest such prefix. A lookup walks down and remembers the last entry it saw (a header on the way
 * down, or the slot it ends at), so prefixes are never pushed down into child chunks and removing one only touches
 * its own slots.
 *
 * Why 16 then 4: at 100k random /8../32 routes this did ~12M lookups/s where 8-bit chunks were barely faster in ten
 * times the memory and a 12-bit root was slower. The root costs every table 256 KB, as zeroed pages the OS only backs
 * once they are written. Why a header rather than [entry, child] pairs in every slot: a lookup reads as many words
 * either way, and chunks take 17 words instead of 32 (100k Calico /26 blocks: 1.8 MB instead of 3.4 MB).
 *
 * The entries themselves are columns indexed by id (network, length, value), not objects: an agent holds 100k
 * routes, and a prefix reference, a value and a Map entry keyed by a boxed double took ~70 B of heap per route, where
 * the columns and the exact-match index below take ~25 B, two thirds of it outside the heap.
 */
const ROOT_BITS = 16;
const STRIDE = 4;
const ROOT_SLOTS = 1 << ROOT_BITS;
const CHUNK_SLOTS = 1 << STRIDE;
const HEADER_WORDS = 1;
const CHUNK_WORDS = HEADER_WORDS + CHUNK_SLOTS;
const NONE = 0;
const INITIAL_CHUNKS = 16;
const INITIAL_ENTRIES = 16;
/** A power of two, as probing wraps around with a mask; the index is kept at most half full. */
const INITIAL_INDEX_SLOTS = 32;
/** Room for the 33 lengths, /0 to /32, below the network in a kernel order key. */
const KEY_LENGTHS = 64;

function levelOf(length: number): number {
  return length <= ROOT_BITS ? 0 : Math.ceil((length - ROOT_BITS) / STRIDE);
}

/** How many leading address bits have been consumed once a lookup has read a slot at `level`. */
function levelEnd(level: number): number {
  return ROOT_BITS + level * STRIDE;
}

function slotIndex(address: number, level: number): number {
  return level === 0 ? address >>> (32 - ROOT_BITS) : (address >>> (32 - levelEnd(level))) & (CHUNK_SLOTS - 1);
}

/** The chunk holding a word (its header or a slot) after the root. */
function chunkNumber(offset: number): number {
  return Math.floor((offset - ROOT_SLOTS) / CHUNK_WORDS);
}

function chunkOffset(chunk: number): number {
  return ROOT_SLOTS + chunk * CHUNK_WORDS;
}

/** The offset of the first slot of a chunk, or of the root for offset 0. */
function firstSlot(chunk: number): number {
  return chunk === 0 ? 0 : chunk + HEADER_WORDS;
}

/** The masked network of a prefix as uint32, without allocating a masked copy of it. */
function networkOf(prefix: Ipv4Prefix): number {
  return (prefix.addressValue & prefix.mask) >>> 0;
}

/**
 * Where the exact-match index starts probing for a prefix: Fibonacci hashing of network and length, which takes the
 * top bits of the product because every input bit reaches those, and networks end in zero bits (Calico's /26 blocks
 * in six of them).
 */
function homeSlot(network: number, length: number, indexBits: number): number {
  return Math.imul(network ^ Math.imul(length, 0x85ebca6b), 0x9e3779b1) >>> (32 - indexBits);
}

/** Longest-prefix match from IPv4 prefixes to values, like the kernel's FIB: one value per distinct prefix. */
export class LpmTable<T> {
  private slots = new Int32Array(ROOT_SLOTS + INITIAL_CHUNKS * CHUNK_WORDS);
  /** Per chunk: prefixes stored in it plus child chunks hanging off it. At zero the chunk is unlinked and reused. */
  private chunkUse = new Int32Array(INITIAL_CHUNKS);
  /** Per chunk: the slot pointing to it, which gets the header's entry back when the chunk is freed. */
  private chunkParent = new Int32Array(INITIAL_CHUNKS);
  private chunksAllocated = 0;
  private readonly freeChunks: number[] = [];
  /** Indexed by entry id; id 0 is the permanent "none", so `values[find(a)]` needs no branch. */
  private networks = new Uint32Array(INITIAL_ENTRIES);
  private lengths = new Uint8Array(INITIAL_ENTRIES);
  private readonly values: (T | undefined)[] = [undefined];
  private idsAllocated = 1;
  private readonly freeIds: number[] = [];
  /**
   * Exact match, (network, length) → id: open addressing with linear probing over ids (NONE marks a free slot), the
   * key read back from the id's columns. The trie cannot answer it: a prefix whose slots all went to longer ones of
   * its level is in none of them.
   */
  private index = new Int32Array(INITIAL_INDEX_SLOTS);
  private indexBits = Math.log2(INITIAL_INDEX_SLOTS);
  private entryCount = 0;

  get size(): number {
    return this.entryCount;
  }

  /** Adds a route for `prefix` (host bits are cleared first), replacing the value of an identical prefix. */
  insert(prefix: Ipv4Prefix, value: T): void {
    const network = networkOf(prefix);
    const { length } = prefix;
    const position = this.indexPosition(network, length);
    const existing = this.index[position];
    if (existing !== NONE) {
      this.values[existing] = value;
      return;
    }
    const id = this.allocateId();
    this.networks[id] = network;
    this.lengths[id] = length;
    this.values[id] = value;
    this.index[position] = id;
    if (++this.entryCount * 2 > this.index.length) this.growIndex();

    const level = levelOf(length);
    const chunk = this.descend(network, level);
    const [first, end] = this.span(chunk, network, length, level);
    for (let offset = first; offset < end; offset++) {
      const current = this.entryAt(offset);
      if (current === NONE || this.lengths[current] < length) this.setEntryAt(offset, id);
    }
    if (level > 0) this.chunkUse[chunkNumber(chunk)]++;
  }

  remove(prefix: Ipv4Prefix): boolean {
    const network = networkOf(prefix);
    const { length } = prefix;
    const position = this.indexPosition(network, length);
    const id = this.index[position];
    if (id === NONE) return false;
    this.unindex(position);
    this.entryCount--;

    const level = levelOf(length);
    const chunk = this.descend(network, level); // finds, never creates: the prefix is stored
    // Wherever this prefix won, the next best in the same level is the longest shorter prefix covering all of it.
    const heir = this.coveringId(network, length, level);
    const [first, end] = this.span(chunk, network, length, level);
    for (let offset = first; offset < end; offset++) {
      if (this.entryAt(offset) === id) this.setEntryAt(offset, heir);
    }
    if (level > 0) this.release(chunk);

    this.values[id] = undefined;
    this.freeIds.push(id);
    return true;
  }

  /** The value of exactly this prefix (host bits ignored), not a longest match. */
  get(prefix: Ipv4Prefix): T | undefined {
    return this.values[this.idOf(networkOf(prefix), prefix.length)];
  }

  /** Longest-prefix match for a uint32 address (its int32 reinterpretation, `a | 0`, works as well). */
  lookup(address: number): T | undefined {
    return this.values[this.find(address)];
  }

  /** The stored prefix that `lookup` matched, as a new Ipv4Prefix: the table keeps no prefix objects. */
  lookupPrefix(address: number): Ipv4Prefix | undefined {
    const id = this.find(address);
    return id === NONE ? undefined : prefixOf(this.networks[id], this.lengths[id]);
  }

  /**
   * A snapshot in kernel dump order, that of `ip route` and /proc/net/route: ascending network address, longer
   * prefixes first for the same address (the kernel's fib trie walks leaves by ascending network address, and a leaf
   * keeps its aliases sorted longest prefix first: fib_insert_alias orders them by ascending suffix length). Keys
   * and values are copied up front and each prefix made as it is reached, so a walk over the whole table never holds
   * every prefix at once.
   */
  *entries(): IterableIterator<[Ipv4Prefix, T]> {
    const order = new Float64Array(this.entryCount);
    let next = 0;
    for (const id of this.index) {
      if (id !== NONE) order[next++] = kernelOrderKey(this.networks[id], this.lengths[id]);
    }
    order.sort();
    const values = Array.from(order, (key) => this.values[this.idOf(networkOfKey(key), lengthOfKey(key))] as T);
    for (let i = 0; i < order.length; i++) yield [prefixOf(networkOfKey(order[i]), lengthOfKey(order[i])), values[i]];
  }

  private find(address: number): number {
    const slots = this.slots;
    let slot = slots[address >>> (32 - ROOT_BITS)];
    let best = NONE;
    let shift = 32 - ROOT_BITS - STRIDE;
    while (slot < 0) {
      const chunk = -slot;
      const header = slots[chunk];
      if (header !== NONE) best = header;
      slot = slots[chunk + HEADER_WORDS + ((address >>> shift) & (CHUNK_SLOTS - 1))];
      shift -= STRIDE;
    }
    return slot === NONE ? best : slot;
  }

  /** The entry of the slot at `offset`: the slot itself, or its child chunk's header. */
  private entryAt(offset: number): number {
    const slot = this.slots[offset];
    return slot < 0 ? this.slots[-slot] : slot;
  }

  private setEntryAt(offset: number, id: number): void {
    const slot = this.slots[offset];
    this.slots[slot < 0 ? -slot : offset] = id;
  }

  /** Word offsets [first, end) of the slots a prefix covers in the chunk (or root, offset 0) of its level. */
  private span(chunk: number, network: number, length: number, level: number): [number, number] {
    const first = firstSlot(chunk) + slotIndex(network, level);
    return [first, first + (1 << (levelEnd(level) - length))];
  }

  /** The chunk at `level` on the path to `network` (0, the root, at level 0), creating any that is missing. */
  private descend(network: number, level: number): number {
    let chunk = 0;
    for (let l = 0; l < level; l++) {
      const pointer = firstSlot(chunk) + slotIndex(network, l);
      const slot = this.slots[pointer];
      if (slot < 0) {
        chunk = -slot;
      } else {
        if (l > 0) this.chunkUse[chunkNumber(chunk)]++;
        chunk = this.allocateChunk(pointer);
      }
    }
    return chunk;
  }

  private coveringId(network: number, length: number, level: number): number {
    const shortest = level === 0 ? 0 : levelEnd(level - 1) + 1;
    for (let shorter = length - 1; shorter >= shortest; shorter--) {
      const id = this.idOf((network & maskOf(shorter)) >>> 0, shorter);
      if (id !== NONE) return id;
    }
    return NONE;
  }

  /** The id stored for exactly this masked network and length, or NONE. */
  private idOf(network: number, length: number): number {
    return this.index[this.indexPosition(network, length)];
  }

  /** The index slot holding the id of (network, length), or else the free slot where probing for it stopped. */
  private indexPosition(network: number, length: number): number {
    const { index, networks, lengths } = this;
    const last = index.length - 1;
    let position = homeSlot(network, length, this.indexBits);
    for (;;) {
      const id = index[position];
      if (id === NONE || (networks[id] === network && lengths[id] === length)) return position;
      position = (position + 1) & last;
    }
  }

  /**
   * Frees an index slot and moves later ids of its probe run back into the gap where their probing would pass it
   * (Knuth's algorithm R), so that a free slot still ends every probe run and removal leaves no tombstones.
   */
  private unindex(position: number): void {
    const { index, networks, lengths } = this;
    const last = index.length - 1;
    let gap = position;
    for (let next = (gap + 1) & last; index[next] !== NONE; next = (next + 1) & last) {
      const id = index[next];
      const home = homeSlot(networks[id], lengths[id], this.indexBits);
      // An id whose home lies cyclically in (gap, next] is found without passing the gap, so it stays.
      const stays = gap <= next ? gap < home && home <= next : gap < home || home <= next;
      if (!stays) {
        index[gap] = id;
        gap = next;
      }
    }
    index[gap] = NONE;
  }

  private growIndex(): void {
    const previous = this.index;
    this.index = new Int32Array(previous.length * 2);
    this.indexBits++;
    for (const id of previous) {
      if (id !== NONE) this.index[this.indexPosition(this.networks[id], this.lengths[id])] = id;
    }
  }

  private allocateId(): number {
    const reused = this.freeIds.pop();
    if (reused !== undefined) return reused;
    const id = this.idsAllocated++;
    if (id === this.networks.length) {
      this.networks = grown(this.networks, id * 2);
      this.lengths = grown(this.lengths, id * 2);
    }
    return id;
  }

  private allocateChunk(pointer: number): number {
    let chunk = this.freeChunks.pop();
    if (chunk === undefined) {
      chunk = this.chunksAllocated++;
      if (chunk === this.chunkUse.length) this.growChunks();
    }
    this.chunkUse[chunk] = 0;
    this.chunkParent[chunk] = pointer;
    const offset = chunkOffset(chunk);
    // The slot's entry moves to the header, where lookups and updates passing through the slot now find it.
    this.slots[offset] = this.slots[pointer];
    this.slots[pointer] = -offset;
    return offset;
  }

  /**
   * Drops one use of a chunk; an unused chunk is empty (all its slots were reset on removal), so it is unlinked and
   * its header's entry goes back into the slot that pointed to it.
   */
  private release(chunk: number): void {
    while (chunk !== 0) {
      const n = chunkNumber(chunk);
      if (--this.chunkUse[n] > 0) return;
      const pointer = this.chunkParent[n];
      this.slots[pointer] = this.slots[chunk];
      this.slots[chunk] = NONE;
      this.freeChunks.push(n);
      chunk = pointer < ROOT_SLOTS ? 0 : chunkOffset(chunkNumber(pointer));
    }
  }

  private growChunks(): void {
    const capacity = this.chunkUse.length * 2;
    this.slots = grown(this.slots, ROOT_SLOTS + capacity * CHUNK_WORDS);
    this.chunkUse = grown(this.chunkUse, capacity);
    this.chunkParent = grown(this.chunkParent, capacity);
  }
}

/** Orders prefixes as `entries()` lists them, for prefixes that are not in a table. */
export function comparePrefixesInKernelOrder(a: Ipv4Prefix, b: Ipv4Prefix): number {
  return kernelOrderKey(networkOf(a), a.length) - kernelOrderKey(networkOf(b), b.length);
}

/**
 * One number per entry that sorts in kernel dump order, so a plain numeric sort of a Float64Array (no comparator
 * calls) orders a whole table: the network, then the length reversed. 38 bits, well within a double's integers.
 */
function kernelOrderKey(network: number, length: number): number {
  return network * KEY_LENGTHS + (32 - length);
}

function networkOfKey(key: number): number {
  return Math.floor(key / KEY_LENGTHS);
}

function lengthOfKey(key: number): number {
  return 32 - (key % KEY_LENGTHS);
}

function prefixOf(network: number, length: number): Ipv4Prefix {
  return Ipv4Prefix.of(Ipv4Address.fromUint32(network), length);
}

type Column = Int32Array<ArrayBuffer> | Uint32Array<ArrayBuffer> | Uint8Array<ArrayBuffer>;

/** A copy of a typed array, zero-filled to `length`. */
function grown<A extends Column>(array: A, length: number): A {
  const larger = new (array.constructor as new (length: number) => A)(length);
  larger.set(array);
  return larger;
}

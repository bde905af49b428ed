/**
 * IPv4 reassembly with the rules of Linux `ip_fragment.c` (6.1): fragments are collected per (src, dst, protocol,
 * ID); a fragment that partly overlaps another discards the whole datagram (since 4.19, CVE-2018-5391, RFC 5722
 * applied to IPv4), a fragment lying wholly inside one already held is an ignorable duplicate; a queue lives 30 s
 * (`ipfrag_time`) from its first fragment; nothing more is held past 4 MiB (`ipfrag_high_thresh`), counting a
 * fixed overhead per fragment so that floods of tiny ones are bounded too.
 */
import { FRAGMENT_UNIT, IPV4_MAX_TOTAL_LENGTH, Ipv4View } from '../../../wire/ipv4.js';
import type { Timer, TimerSet } from './clock.js';

/** `ipfrag_time`. */
const TIMEOUT_MS = 30_000;
/** `ipfrag_high_thresh`. */
const MEMORY_BYTES = 4 * 1024 * 1024;

/** What a held fragment costs beyond its data, standing in for the kernel's skb truesize. */
const FRAGMENT_OVERHEAD = 256;

export type FragmentOutcome =
  | { kind: 'complete'; packet: Buffer }
  | { kind: 'pending' }
  | { kind: 'dropped'; reason: 'fragment-overlap' | 'fragment-duplicate' | 'fragment-invalid' | 'reassembly-memory' };

interface Piece {
  start: number;
  end: number;
  data: Buffer;
}

interface Queue {
  key: string;
  /** Sorted by `start`, never overlapping. */
  pieces: Piece[];
  /** Known length of the datagram's data: exact once the last fragment is in, a lower bound before. */
  length: number;
  lastSeen: boolean;
  /** The offset-0 fragment as received: its header heads the datagram and an expiry error quotes it. */
  first?: Buffer;
  dontFragment: boolean;
  cost: number;
  timer: Timer;
}

const PENDING: FragmentOutcome = { kind: 'pending' };

/**
 * A copy with memory of its own. `Buffer.from` of a few bytes is carved out of Node's shared 8 KiB pool, so one held
 * fragment would keep a whole slab alive: a stream of small fragments then pinned tens of times MEMORY_BYTES.
 */
function ownCopy(bytes: Uint8Array): Buffer {
  const copy = Buffer.allocUnsafeSlow(bytes.length);
  copy.set(bytes);
  return copy;
}

export class Reassembler {
  private readonly queues = new Map<string, Queue>();
  private memory = 0;

  constructor(
    private readonly timers: TimerSet,
    /** Called when a queue times out, with its first fragment if that had arrived (Linux then sends ICMP 11/1). */
    private readonly onExpire: (firstFragment: Ipv4View | undefined) => void,
  ) {}

  get heldBytes(): number {
    return this.memory;
  }

  get pendingDatagrams(): number {
    return this.queues.size;
  }

  /** `fragment` is a valid IPv4 packet with MF set or a nonzero offset; its bytes are copied, never kept. */
  add(fragment: Ipv4View): FragmentOutcome {
    const start = fragment.fragmentByteOffset;
    const payload = fragment.payload;
    const last = !fragment.moreFragments;
    // Only the last piece may end off an 8-byte boundary; the kernel trims the excess instead of refusing.
    const end = last ? start + payload.length : start + payload.length - ((start + payload.length) % FRAGMENT_UNIT);
    const cost = Math.max(0, end - start) + FRAGMENT_OVERHEAD;
    if (this.memory + cost > MEMORY_BYTES) return { kind: 'dropped', reason: 'reassembly-memory' };

    const key = `${fragment.src}/${fragment.dst}/${fragment.protocol}/${fragment.identification}`;
    const queue = this.queues.get(key) ?? this.createQueue(key);
    if (last) {
      if (end < queue.length || (queue.lastSeen && end !== queue.length)) {
        return this.discard(queue, 'fragment-invalid');
      }
      queue.lastSeen = true;
      queue.length = end;
    } else if (end > queue.length) {
      if (queue.lastSeen) return this.discard(queue, 'fragment-invalid');
      queue.length = end;
    }
    if (end <= start || fragment.headerLength + end > IPV4_MAX_TOTAL_LENGTH) {
      return this.discard(queue, 'fragment-invalid');
    }

    for (const piece of queue.pieces) {
      if (end <= piece.start || start >= piece.end) continue;
      if (start >= piece.start && end <= piece.end) return { kind: 'dropped', reason: 'fragment-duplicate' };
      return this.discard(queue, 'fragment-overlap');
    }

    this.memory += cost;
    queue.cost += cost;
    const index = queue.pieces.findIndex((piece) => piece.start > start);
    const piece = { start, end, data: ownCopy(payload.subarray(0, end - start)) };
    queue.pieces.splice(index === -1 ? queue.pieces.length : index, 0, piece);
    if (start === 0) queue.first = ownCopy(fragment.packet);
    queue.dontFragment ||= fragment.dontFragment;

    if (!this.isComplete(queue)) return PENDING;
    // Linux checks the rebuilt length only now (ip_frag_reasm), against the first piece's header.
    if (new Ipv4View(queue.first as Buffer).headerLength + queue.length > IPV4_MAX_TOTAL_LENGTH) {
      return this.discard(queue, 'fragment-invalid');
    }
    return { kind: 'complete', packet: this.join(queue) };
  }

  clear(): void {
    for (const queue of [...this.queues.values()]) this.remove(queue);
  }

  private createQueue(key: string): Queue {
    const queue: Queue = {
      key,
      pieces: [],
      length: 0,
      lastSeen: false,
      dontFragment: false,
      cost: 0,
      timer: this.timers.start(() => {
        this.remove(queue);
        this.onExpire(queue.first === undefined ? undefined : new Ipv4View(queue.first));
      }, TIMEOUT_MS),
    };
    this.queues.set(key, queue);
    return queue;
  }

  private discard(queue: Queue, reason: 'fragment-overlap' | 'fragment-invalid'): FragmentOutcome {
    this.remove(queue);
    return { kind: 'dropped', reason };
  }

  private remove(queue: Queue): void {
    queue.timer.cancel();
    this.memory -= queue.cost;
    this.queues.delete(queue.key);
  }

  private isComplete(queue: Queue): boolean {
    if (!queue.lastSeen) return false;
    let covered = 0;
    for (const piece of queue.pieces) {
      if (piece.start !== covered) return false;
      covered = piece.end;
    }
    return covered === queue.length;
  }

  /** The first fragment's header (options included, as Linux keeps it) over all the data, MF and offset cleared. */
  private join(queue: Queue): Buffer {
    this.remove(queue);
    const first = new Ipv4View(queue.first as Buffer);
    const headerLength = first.headerLength;
    const packet = Buffer.concat(
      [first.header, ...queue.pieces.map((piece) => piece.data)],
      headerLength + queue.length,
    );
    const view = new Ipv4View(packet);
    view.totalLength = packet.length;
    view.moreFragments = false;
    view.fragmentOffset = 0;
    view.dontFragment = queue.dontFragment;
    view.fillChecksum();
    return packet;
  }
}

/**
 * One capture: tap events in, a pcapng (or classic pcap) byte stream out, written as it goes so that
 * `… -w - | wireshark -k -i -` shows packets live.
 *
 * The tap listener runs on the forwarding hot path, so it only filters and encodes the record straight into a shared
 * chunk (which copies the packet out of the dataplane's buffer, with no allocation per packet); the sink is written
 * later, many records per write, at most once per FLUSH_INTERVAL_MS. When the sink falls behind, records wait, and
 * once `maxQueuedBytes` wait further records are dropped and counted: forwarding never waits for a reader.
 *
 * Nor does forwarding give up more than a share of its CPU: past the session's CpuBudget (budget.ts), records are
 * dropped and counted too.
 *
 * Link type: LINKTYPE_RAW (101) on every interface and in both formats, because every tap carries bare IPv4 and
 * that is what `tcpdump -i tunl0 -w` writes on Linux, so our files and the kernel's look alike to Wireshark.
 */
import { LINKTYPE, pcap, pcapng, type CapturedPacket } from '../../wire/pcapng.js';
import type { TapEvent } from '../tap-hub.js';
import { CpuBudget, type BudgetClock } from './budget.js';
import { parseFilter } from './filter.js';

export interface TapSource {
  /** Subscribes to the packets of `interfaces` (all when undefined); returns the unsubscribe function. */
  onTap(listener: (event: TapEvent) => void, interfaces?: Iterable<string>): () => void;
}

export interface CaptureOptions {
  interfaces: readonly string[] | 'any';
  /** A capture filter (see filter.ts); absent or empty keeps every packet. */
  filter?: string;
  /** Stop after this many packets are in the file. */
  count?: number;
  durationMs?: number;
  format: 'pcapng' | 'pcap';
  nodeName: string;
  /** The pcapng if_description of an interface; defaults to "NODE IFNAME". */
  describeInterface?: (name: string) => string;
  /**
   * The session writes to it but never ends it: the caller does, after `done`. Its errors reject `done`. The session
   * fills a buffer again once the sink has called back for it, so the sink must be done with the bytes by then, as
   * a file stream or a socket is.
   */
  sink: NodeJS.WritableStream;
  /** How far the file may run behind the taps before records are dropped; default 4 MiB. */
  maxQueuedBytes?: number;
  /** The share of the process's CPU time the session may spend before it drops records; default 1 %. */
  cpuShare?: number;
  /** For tests: the clocks the CPU budget reads. */
  clock?: BudgetClock;
}

export interface CaptureStats {
  /** Packets on a selected interface that passed the filter. */
  captured: number;
  /** Packets put in the file, in order. */
  written: number;
  /** Packets captured but left out of the file: the sink was behind, or the capture had spent its CPU share. */
  droppedRecords: number;
  /** File bytes produced, headers included. */
  bytesWritten: number;
}

const DEFAULT_MAX_QUEUED_BYTES = 4 * 1024 * 1024;
/**
 * Issue 5 allows a capture to slow forwarding by 10 %. What the session times of its records is well under half of
 * what capturing costs forwarding: in the forwarding benchmark, 5 % timed slowed the agent by ~13 % and 2 % by 8-10 %,
 * the rest being what the timing cannot see (handing every packet to the session, the caches the copies evict, the
 * collector, the file's writes). So 1 %.
 */
const DEFAULT_CPU_SHARE = 0.01;
/** While records are dropped for the budget, it is refilled this often (otherwise at each flush). */
const REFILL_INTERVAL_MS = 10;
/** Records are appended to chunks this big; a record that is bigger gets a chunk of its own size. */
const CHUNK_BYTES = 64 * 1024;
/**
 * A quiet capture writes each record at once; a busy one writes at most this often, so that its cost is one write
 * per interval rather than one per turn of the event loop, while a live Wireshark still sees packets without delay.
 */
const FLUSH_INTERVAL_MS = 10;

/** A buffer records are appended to, and how many of its parts the sink has yet to write. */
interface Chunk {
  readonly bytes: Buffer;
  /** Over exactly `bytes`, made once: DataView setters are what writeRecord is fast with. */
  readonly view: DataView;
  unwritten: number;
  /** Records go on in another chunk; this one is reused once the sink has written all of it. */
  full: boolean;
}

function newChunk(length: number): Chunk {
  const bytes = Buffer.allocUnsafe(length);
  return { bytes, view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), unwritten: 0, full: false };
}

/** What differs between the two file formats; queueing, clamping and stopping are shared. */
interface FileFormat {
  header: Buffer;
  /** The block that must precede an interface's first packet, if the format has one. */
  describe(name: string): Buffer | undefined;
  recordLength(packet: CapturedPacket): number;
  /** Writes all `recordLength` bytes of the record at `offset`, into a buffer that may hold old bytes. */
  writeRecord(target: Buffer, offset: number, packet: CapturedPacket, view: DataView): void;
}

function pcapngFormat(describe: (name: string) => string): FileFormat {
  return {
    header: pcapng.sectionHeader(),
    // pcapng lets an IDB come anywhere before its first packet, so a live stream names interfaces as they show up.
    describe: (name) => pcapng.interfaceDescription({ linkType: LINKTYPE.RAW, name, description: describe(name) }),
    recordLength: pcapng.enhancedPacketLength,
    writeRecord: pcapng.writeEnhancedPacket,
  };
}

/**
 * Classic pcap holds one link type, no interface blocks and no direction: packets from several interfaces lose
 * their names.
 */
const pcapFormat = (): FileFormat => ({
  header: pcap.globalHeader(LINKTYPE.RAW),
  describe: () => undefined,
  recordLength: pcap.recordLength,
  writeRecord: pcap.writeRecord,
});

function positive(name: string, value: number | undefined, integer: boolean): void {
  if (value === undefined) return;
  if (!(value > 0) || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new RangeError(`capture: ${name} must be a positive ${integer ? 'integer' : 'number'}, got ${value}`);
  }
}

export class CaptureSession {
  /** Settles once the session has stopped and the sink has taken every byte; rejects if the sink fails. */
  readonly done: Promise<CaptureStats>;
  private readonly format: FileFormat;
  private readonly matches: (packet: Buffer) => boolean;
  private readonly maxQueuedBytes: number;
  private readonly interfaceIds = new Map<string, number>();
  private readonly counts: CaptureStats = { captured: 0, written: 0, droppedRecords: 0, bytesWritten: 0 };
  /** Parts of chunks full of records, waiting for the next flush. */
  private queue: { bytes: Buffer; chunk: Chunk }[] = [];
  /** Records are appended at `chunkEnd`; `chunk.bytes[chunkStart, chunkEnd)` is not yet queued or written. */
  private chunk = newChunk(CHUNK_BYTES);
  private chunkStart = 0;
  private chunkEnd = 0;
  /**
   * Chunks whose bytes the sink has taken, to fill again: a busy capture goes through hundreds of MB/s, and fresh
   * buffers for all of it would make V8 collect the whole heap again and again for their external memory.
   */
  private readonly spareChunks: Chunk[] = [];
  /** The record being written, one object for all of them. */
  private readonly record: CapturedPacket = {
    interfaceId: 0,
    timestampNs: 0n,
    data: Buffer.alloc(0),
    direction: 'inbound',
  };
  /** Queued here plus handed to the sink and not yet acknowledged by its write callback. */
  private pendingBytes = 0;
  private flushScheduled = false;
  private flushTimer: NodeJS.Timeout | undefined;
  private lastFlushAt = Number.NEGATIVE_INFINITY;
  private sinkBlocked = false;
  private lastTimestampNs = 0n;
  private readonly budget: CpuBudget;
  private refillTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private settled = false;
  private readonly unsubscribe: () => void;
  private readonly timer: NodeJS.Timeout | undefined;
  private resolve!: (stats: CaptureStats) => void;
  private reject!: (error: Error) => void;

  constructor(
    source: TapSource,
    private readonly options: CaptureOptions,
  ) {
    positive('count', options.count, true);
    positive('durationMs', options.durationMs, false);
    positive('maxQueuedBytes', options.maxQueuedBytes, true);
    positive('cpuShare', options.cpuShare, false);
    const filter = parseFilter(options.filter ?? '');
    if (!filter.ok) throw new SyntaxError(filter.error);
    this.matches = filter.match;
    this.maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    this.budget = new CpuBudget(Math.min(1, options.cpuShare ?? DEFAULT_CPU_SHARE), options.clock);
    const describe = options.describeInterface ?? ((name: string) => `${options.nodeName} ${name}`);
    this.format = options.format === 'pcapng' ? pcapngFormat(describe) : pcapFormat();
    this.done = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });

    options.sink.on('error', this.onSinkError);
    options.sink.on('close', this.onSinkClose);
    this.enqueue(this.format.header);
    this.unsubscribe = source.onTap(this.onTap, options.interfaces === 'any' ? undefined : options.interfaces);
    this.timer = options.durationMs === undefined ? undefined : setTimeout(() => this.stop(), options.durationMs);
  }

  stats(): CaptureStats {
    return { ...this.counts };
  }

  /** Stops capturing; `done` settles when what is already queued has been written. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.unsubscribe();
    clearTimeout(this.timer);
    clearTimeout(this.refillTimer);
    if (this.flushTimer !== undefined) {
      // What waits for the interval is all there will be: write it now.
      clearTimeout(this.flushTimer);
      this.flushScheduled = false;
      this.scheduleFlush();
    }
    this.settleIfFlushed();
  }

  private readonly onTap = (event: TapEvent): void => {
    if (this.stopped) return;
    if (this.budget.exhausted) {
      this.refillLater();
      if (this.matches(event.packet)) {
        this.counts.captured++;
        this.counts.droppedRecords++;
      }
      return;
    }
    const startedAt = this.budget.recordStarts();
    if (!this.matches(event.packet)) return;
    this.counts.captured++;
    // Checked before encoding so that an overloaded capture costs the hot path as little as possible; the queue may
    // thus pass the limit by one record.
    if (this.pendingBytes >= this.maxQueuedBytes) {
      this.counts.droppedRecords++;
      return;
    }
    this.writeRecord(event);
    this.budget.recordEnds(startedAt);
    if (this.counts.written === this.options.count) this.stop();
  };

  private refillLater(): void {
    this.refillTimer ??= setTimeout(() => {
      this.refillTimer = undefined;
      this.budget.refill();
    }, REFILL_INTERVAL_MS);
  }

  private writeRecord(event: TapEvent): void {
    let interfaceId = this.interfaceIds.get(event.interfaceName);
    if (interfaceId === undefined) {
      interfaceId = this.interfaceIds.size;
      this.interfaceIds.set(event.interfaceName, interfaceId);
      const description = this.format.describe(event.interfaceName);
      if (description !== undefined) this.enqueue(description);
    }
    // Readers assume time runs forward; a source clock stepping back (NTP, a VM resuming) must not break that.
    const timestampNs = event.timestampNs;
    if (timestampNs > this.lastTimestampNs) this.lastTimestampNs = timestampNs;
    const record = this.record;
    record.interfaceId = interfaceId;
    record.timestampNs = this.lastTimestampNs;
    record.data = event.packet;
    record.direction = event.direction === 'rx' ? 'inbound' : 'outbound';
    const length = this.format.recordLength(record);
    this.reserve(length);
    this.format.writeRecord(this.chunk.bytes, this.chunkEnd, record, this.chunk.view);
    this.appended(length);
    this.counts.written++;
  }

  private enqueue(block: Buffer): void {
    this.reserve(block.length);
    block.copy(this.chunk.bytes, this.chunkEnd);
    this.appended(block.length);
  }

  /** Makes room for `length` bytes at `chunkEnd`. */
  private reserve(length: number): void {
    if (this.chunkEnd + length <= this.chunk.bytes.length) return;
    this.seal();
    this.chunk.full = true;
    this.recycleIfWritten(this.chunk);
    this.chunk = (length <= CHUNK_BYTES && this.spareChunks.pop()) || newChunk(Math.max(CHUNK_BYTES, length));
    this.chunkStart = this.chunkEnd = 0;
  }

  private recycleIfWritten(chunk: Chunk): void {
    // One bigger than CHUNK_BYTES was made for one large record; the pending limit bounds how many are spare.
    if (!chunk.full || chunk.unwritten > 0 || chunk.bytes.length !== CHUNK_BYTES) return;
    if (this.spareChunks.length * CHUNK_BYTES > this.maxQueuedBytes) return;
    chunk.full = false;
    this.spareChunks.push(chunk);
  }

  private appended(length: number): void {
    this.chunkEnd += length;
    this.pendingBytes += length;
    this.counts.bytesWritten += length;
    this.scheduleFlush();
  }

  /**
   * Queues what the chunk holds. The sink keeps that part until its write completes, and records go on after it:
   * a chunk is written over only once it has been filled and the sink has written every part of it.
   */
  private seal(): void {
    if (this.chunkEnd === this.chunkStart) return;
    this.queue.push({ bytes: this.chunk.bytes.subarray(this.chunkStart, this.chunkEnd), chunk: this.chunk });
    this.chunk.unwritten++;
    this.chunkStart = this.chunkEnd;
  }

  /** `now`: the sink has asked for more (or nothing more will come), so the interval does not apply. */
  private scheduleFlush(now = this.stopped): void {
    if (this.flushScheduled || this.sinkBlocked || this.settled) return;
    this.flushScheduled = true;
    const wait = now ? 0 : this.lastFlushAt + FLUSH_INTERVAL_MS - this.budget.now();
    if (wait > 0) this.flushTimer = setTimeout(this.flush, wait);
    else setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    this.flushTimer = undefined;
    const cpuMsAtStart = this.budget.cpuMs();
    this.lastFlushAt = this.budget.now();
    this.seal();
    if (this.settled || this.queue.length === 0) return;
    const { sink } = this.options;
    // All of it, even past the sink's high-water mark: maxQueuedBytes bounds what is pending either way, and a
    // writable with several chunks buffered writes them with one writev.
    let accepted = true;
    for (const { bytes, chunk } of this.queue) {
      accepted = sink.write(bytes, (error) => {
        this.pendingBytes -= bytes.length;
        chunk.unwritten--;
        if (error) return this.onSinkError(error);
        this.recycleIfWritten(chunk);
        this.settleIfFlushed();
      });
    }
    this.queue = [];
    this.budget.chargeCpuSince(cpuMsAtStart);
    this.budget.refill();
    if (!accepted) {
      this.sinkBlocked = true;
      sink.once('drain', this.onDrain);
    }
  };

  private readonly onDrain = (): void => {
    this.sinkBlocked = false;
    this.scheduleFlush(true);
  };

  private readonly onSinkError = (error: Error): void => {
    this.settle(error);
    this.stop();
  };

  /** The reader went away (Wireshark closed, the client hung up): nothing more can be delivered. */
  private readonly onSinkClose = (): void => {
    this.stop();
    this.settle();
  };

  private settleIfFlushed(): void {
    if (this.stopped && this.pendingBytes === 0) this.settle();
  }

  private settle(error?: Error): void {
    if (this.settled) return;
    this.settled = true;
    // The 'error' listener stays: a sink that failed emits its error after `done` has reported it, and an 'error'
    // event nobody listens to would take the whole agent down.
    const sink = this.options.sink;
    sink.removeListener('close', this.onSinkClose);
    sink.removeListener('drain', this.onDrain);
    if (error === undefined) this.resolve(this.stats());
    else this.reject(error);
  }
}

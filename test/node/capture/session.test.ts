/**
 * Capture sessions fed by a fake tap with the kernel's own packets, their output read back by tshark (which must be
 * installed: a missing tshark fails these tests rather than skipping them).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { TapEvent } from '../../../src/node/userspace/dataplane.js';
import { CaptureSession, type CaptureOptions, type TapSource } from '../../../src/node/capture/index.js';
import { LINKTYPE, pcapng } from '../../../src/wire/pcapng.js';
import { frameOf } from '../../support/wire-vectors.js';
import { tsharkRows } from '../../support/wire-tshark.js';

const CALI = 'cali12345678901';
/** A pod's echo request as eth0 (outer IPIP), tunl0 and the pod's cali interface each see it. */
const OUTER = frameOf('ping-df.pcapng', 1);
const INNER = OUTER.subarray(20);
const REPLY = frameOf('ping-df.pcapng', 2);
const T0 = 1_700_000_000_123_456_789n;

/**
 * The dataplane's contract, including the hard part: the packet buffer is overwritten as soon as the listener
 * returns, so a session that kept a reference instead of a copy writes garbage.
 */
class FakeTap implements TapSource {
  readonly listeners = new Map<(event: TapEvent) => void, ReadonlySet<string> | undefined>();

  onTap(listener: (event: TapEvent) => void, interfaces?: Iterable<string>): () => void {
    this.listeners.set(listener, interfaces === undefined ? undefined : new Set(interfaces));
    return () => this.listeners.delete(listener);
  }

  emit(interfaceName: string, packet: Buffer, timestampNs: bigint, direction: TapEvent['direction'] = 'tx'): void {
    const reused = Buffer.from(packet);
    for (const [listener, interfaces] of this.listeners) {
      if (interfaces === undefined || interfaces.has(interfaceName))
        listener({ interfaceName, direction, packet: reused, timestampNs });
    }
    reused.fill(0xee);
  }
}

/** Keeps a copy of what it is given, as a file or socket would: the session fills a buffer again once written. */
class MemorySink extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.chunks.push(Buffer.from(chunk));
    callback();
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

const directory = mkdtempSync(join(tmpdir(), 'ipip-lab-capture-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));
let files = 0;

function saved(bytes: Buffer, extension = 'pcapng'): string {
  const file = join(directory, `capture-${++files}.${extension}`);
  writeFileSync(file, bytes);
  return file;
}

function start(options: Partial<CaptureOptions> = {}) {
  const tap = new FakeTap();
  const sink = new MemorySink();
  const session = new CaptureSession(tap, {
    interfaces: 'any',
    format: 'pcapng',
    nodeName: 'worker-node01',
    sink,
    ...options,
  });
  return { tap, sink, session };
}

const fields = (file: string, names: string[], extra: string[] = []) =>
  tsharkRows(['-r', file, ...extra, '-T', 'fields', '-E', 'occurrence=a', ...names.flatMap((name) => ['-e', name])]);

describe('CaptureSession output, read by tshark', () => {
  it('names each interface, nests IPIP on eth0 and keeps the bytes it was shown', async () => {
    const pod = (name: string) => (name === CALI ? ' → pod hello-world-5d8d8c7c9b-x2x7q' : '');
    const { tap, sink, session } = start({ describeInterface: (name) => `worker-node01 ${name}${pod(name)}` });
    tap.emit(CALI, INNER, T0, 'rx');
    tap.emit('tunl0', INNER, T0 + 1000n);
    tap.emit('eth0', OUTER, T0 + 2000n);
    tap.emit('eth0', REPLY, T0 + 3000n, 'rx');
    tap.emit(CALI, INNER, T0 + 4000n);
    session.stop();
    expect(await session.done).toMatchObject({ captured: 5, written: 5, droppedRecords: 0 });
    const bytes = sink.bytes();
    expect(session.stats().bytesWritten).toBe(bytes.length);

    const file = saved(bytes);
    const local = '192.168.77.130';
    const remote = '192.168.87.198';
    expect(await fields(file, ['frame.interface_name', 'ip.src', 'ip.dst'])).toEqual([
      [CALI, local, remote],
      ['tunl0', local, remote],
      ['eth0', `10.0.0.10,${local}`, `10.0.0.11,${remote}`],
      ['eth0', `10.0.0.11,${remote}`, `10.0.0.10,${local}`],
      [CALI, local, remote],
    ]);
    expect(await fields(file, ['frame.interface_description'])).toEqual([
      ['worker-node01 cali12345678901 → pod hello-world-5d8d8c7c9b-x2x7q'],
      ['worker-node01 tunl0'],
      ['worker-node01 eth0'],
      ['worker-node01 eth0'],
      ['worker-node01 cali12345678901 → pod hello-world-5d8d8c7c9b-x2x7q'],
    ]);

    // One IDB per interface, in order of first appearance, raw IPv4; the packets are the bytes the tap showed.
    const decoded = pcapng.decode(bytes);
    if (!decoded.ok) throw new Error(decoded.reason);
    expect(decoded.value.interfaces.map(({ name, linkType }) => [name, linkType])).toEqual([
      [CALI, LINKTYPE.RAW],
      ['tunl0', LINKTYPE.RAW],
      ['eth0', LINKTYPE.RAW],
    ]);
    expect(decoded.value.packets.map((packet) => packet.data)).toEqual([INNER, INNER, OUTER, REPLY, INNER]);
  });

  it('writes no bad IPv4 checksum, as tshark checks them', async () => {
    const checkBad = ['-o', 'ip.check_checksum:TRUE', '-Y', 'ip.checksum.status == "Bad"'];
    const { tap, sink, session } = start();
    for (const [index, packet] of [OUTER, REPLY, INNER].entries()) tap.emit('eth0', packet, T0 + BigInt(index));
    session.stop();
    await session.done;
    const file = saved(sink.bytes());
    expect(await fields(file, ['frame.number'], ['-o', 'ip.check_checksum:TRUE'])).toHaveLength(3);
    expect(await fields(file, ['frame.number'], checkBad)).toEqual([]);

    // The same check does see a bad checksum, so the empty answer above means something.
    const corrupt = start();
    const broken = Buffer.from(OUTER);
    broken[10] ^= 0xff;
    corrupt.tap.emit('eth0', broken, T0);
    corrupt.session.stop();
    await corrupt.session.done;
    expect(await fields(saved(corrupt.sink.bytes()), ['frame.number'], checkBad)).toEqual([['1']]);
  });

  it('never lets timestamps go backwards, to the nanosecond', async () => {
    const { tap, sink, session } = start();
    const stamps = [T0, T0 + 5n, T0 - 1_000_000n, T0 + 7n, T0 + 7n, T0 + 2_000_000_000n];
    for (const stamp of stamps) tap.emit('eth0', OUTER, stamp);
    session.stop();
    await session.done;
    const rows = await fields(saved(sink.bytes()), ['frame.time_epoch']);
    const written = rows.map(([epoch]) => BigInt(epoch.replace('.', '')));
    expect(written).toEqual([T0, T0 + 5n, T0 + 5n, T0 + 7n, T0 + 7n, T0 + 2_000_000_000n]);
  });

  it('writes classic pcap that tshark reads, without interface names', async () => {
    const { tap, sink, session } = start({ format: 'pcap' });
    tap.emit('eth0', OUTER, T0);
    tap.emit('tunl0', INNER, T0 + 1n);
    session.stop();
    await session.done;
    const file = saved(sink.bytes(), 'pcap');
    expect(await fields(file, ['frame.interface_name', 'ip.src', 'ip.dst', 'frame.time_epoch'])).toEqual([
      ['', '10.0.0.10,192.168.77.130', '10.0.0.11,192.168.87.198', '1700000000.123456789'],
      ['', '192.168.77.130', '192.168.87.198', '1700000000.123456790'],
    ]);
    const WTAP_ENCAP_RAW_IP = '7';
    expect(await fields(file, ['frame.encap_type'])).toEqual([[WTAP_ENCAP_RAW_IP], [WTAP_ENCAP_RAW_IP]]);
  });

  it('writes a valid file when nothing was captured', async () => {
    const { sink, session } = start();
    session.stop();
    const stats = await session.done;
    expect(stats).toEqual({ captured: 0, written: 0, droppedRecords: 0, bytesWritten: sink.bytes().length });
    expect(await fields(saved(sink.bytes()), ['frame.number'])).toEqual([]);
  });
});

describe('CaptureSession selection and stopping', () => {
  it('keeps only the selected interfaces and what the filter accepts', async () => {
    const filter = 'inner src host 192.168.87.198 or icmp';
    const { tap, sink, session } = start({ interfaces: ['eth0', CALI], filter });
    tap.emit('eth0', OUTER, T0);
    tap.emit('eth0', REPLY, T0 + 1n);
    tap.emit('tunl0', INNER, T0 + 2n);
    tap.emit(CALI, INNER, T0 + 3n);
    session.stop();
    expect(await session.done).toMatchObject({ captured: 2, written: 2 });
    expect(await fields(saved(sink.bytes()), ['frame.interface_name', 'ip.src'])).toEqual([
      ['eth0', '10.0.0.11,192.168.87.198'],
      [CALI, '192.168.77.130'],
    ]);
  });

  it('refuses a bad filter with its message, before subscribing', () => {
    const tap = new FakeTap();
    const options = { interfaces: 'any', format: 'pcapng', nodeName: 'n', sink: new MemorySink() } as const;
    expect(() => new CaptureSession(tap, { ...options, filter: 'host ' })).toThrow(
      'filter: expected an address after "host" at column 6',
    );
    expect(() => new CaptureSession(tap, { ...options, count: 0 })).toThrow(RangeError);
    expect(() => new CaptureSession(tap, { ...options, durationMs: Number.NaN })).toThrow(RangeError);
    expect(tap.listeners.size).toBe(0);
  });

  it('stops after count packets and unsubscribes', async () => {
    const { tap, sink, session } = start({ count: 3 });
    for (let i = 0; i < 10; i++) tap.emit('eth0', OUTER, T0 + BigInt(i));
    expect(tap.listeners.size).toBe(0);
    expect(await session.done).toMatchObject({ captured: 3, written: 3 });
    expect(await fields(saved(sink.bytes()), ['frame.time_epoch'])).toEqual([
      ['1700000000.123456789'],
      ['1700000000.123456790'],
      ['1700000000.123456791'],
    ]);
  });

  it('stops after its duration', async () => {
    const { tap, sink, session } = start({ durationMs: 80 });
    const started = performance.now();
    tap.emit('eth0', OUTER, T0);
    tap.emit('eth0', REPLY, T0 + 1n);
    expect(tap.listeners.size).toBe(1);
    expect(await session.done).toMatchObject({ captured: 2, written: 2 });
    expect(performance.now() - started).toBeGreaterThanOrEqual(75);
    expect(tap.listeners.size).toBe(0);
    expect(await fields(saved(sink.bytes()), ['frame.number'])).toHaveLength(2);
  });

  it('ends when the reader goes away, and fails when the sink fails', async () => {
    const closed = start();
    closed.sink.destroy();
    await expect(closed.session.done).resolves.toMatchObject({ written: 0 });
    expect(closed.tap.listeners.size).toBe(0);

    const tap = new FakeTap();
    const failing = new Writable({ write: (_chunk, _encoding, callback) => callback(new Error('disk full')) });
    const session = new CaptureSession(tap, { interfaces: 'any', format: 'pcapng', nodeName: 'n', sink: failing });
    tap.emit('eth0', OUTER, T0);
    await expect(session.done).rejects.toThrow('disk full');
    expect(tap.listeners.size).toBe(0);
  });
});

describe('CaptureSession records', () => {
  it('marks each packet inbound or outbound, as tshark shows the direction', async () => {
    const { tap, sink, session } = start();
    tap.emit(CALI, INNER, T0, 'rx');
    tap.emit('eth0', OUTER, T0 + 1n, 'tx');
    session.stop();
    await session.done;
    expect(await fields(saved(sink.bytes()), ['frame.interface_name', 'frame.packet_flags_direction'])).toEqual([
      [CALI, '0x00000001'],
      ['eth0', '0x00000002'],
    ]);
  });

  it('writes a packet bigger than its chunks, between small ones, intact', async () => {
    const { tap, sink, session } = start();
    const big = Buffer.alloc(65_535, 0x5a);
    tap.emit('eth0', OUTER, T0);
    tap.emit('eth0', big, T0 + 1n);
    tap.emit('eth0', REPLY, T0 + 2n);
    session.stop();
    await session.done;
    const decoded = pcapng.decode(sink.bytes());
    if (!decoded.ok) throw new Error(decoded.reason);
    expect(decoded.value.packets.map((packet) => packet.data)).toEqual([OUTER, big, REPLY]);
  });

  it('fills its buffers again once the sink has written them, and every record comes out whole and in order', async () => {
    // A sink that takes its time: each write is done on a later turn, as a file's or a socket's is.
    class SlowSink extends MemorySink {
      override _write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
        super._write(chunk, encoding, () => setImmediate(callback));
      }
    }
    const tap = new FakeTap();
    const sink = new SlowSink();
    // The whole CPU: this test is about buffers, and a loaded machine must not make the budget drop records.
    const session = new CaptureSession(tap, { interfaces: 'any', format: 'pcapng', nodeName: 'n', sink, cpuShare: 1 });
    // 3,000 records of ~1.5 KB: some 70 chunks' worth, so the same few buffers are filled again and again.
    const big = Buffer.concat([OUTER, Buffer.alloc(1400)]);
    const sent: Buffer[] = [];
    for (let turn = 0; turn < 30; turn++) {
      for (let i = 0; i < 100; i++) {
        const packet = Buffer.from(big);
        packet.writeUInt32BE(turn * 100 + i, packet.length - 4);
        sent.push(packet);
        tap.emit('eth0', packet, T0 + BigInt(turn * 100 + i));
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    session.stop();
    expect(await session.done).toMatchObject({ captured: 3000, written: 3000, droppedRecords: 0 });
    const decoded = pcapng.decode(sink.bytes());
    if (!decoded.ok) throw new Error(decoded.reason);
    const records = decoded.value.packets.map((packet) => packet.data);
    expect(records.length).toBe(sent.length);
    // One comparison of it all: toEqual on 3,000 buffers takes seconds.
    expect(Buffer.concat(records).equals(Buffer.concat(sent))).toBe(true);
  });

  it('writes a quiet capture at once and a busy one in a few large writes', async () => {
    class CountingSink extends MemorySink {
      writes = 0;
      override _write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
        this.writes++;
        super._write(chunk, encoding, callback);
      }
    }
    const tap = new FakeTap();
    const sink = new CountingSink();
    const session = new CaptureSession(tap, { interfaces: 'any', format: 'pcapng', nodeName: 'n', sink });
    await vi.waitFor(() => expect(sink.writes).toBe(1));
    await new Promise((resolve) => setTimeout(resolve, 20));
    tap.emit('eth0', OUTER, T0);
    // Quiet for longer than the flush interval: the packet goes out on the next turn of the event loop.
    await new Promise((resolve) => setImmediate(resolve));
    expect(sink.writes).toBe(2);

    const turns = 50;
    const started = performance.now();
    for (let turn = 0; turn < turns; turn++) {
      for (let i = 0; i < 10; i++) tap.emit('eth0', OUTER, T0 + BigInt(turn * 10 + i));
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const elapsedMs = performance.now() - started;
    session.stop();
    expect(await session.done).toMatchObject({ written: 1 + turns * 10, droppedRecords: 0 });
    // About one write per 10 ms (a 64 KiB chunk that filled up is a write of its own, and stop() writes what it
    // found queued), not one per turn of the event loop.
    expect(sink.writes - 2).toBeLessThanOrEqual(Math.ceil(elapsedMs / 10) + 3);
    expect(sink.writes - 2).toBeLessThan(turns / 2);
    expect(pcapng.decode(sink.bytes()).ok).toBe(true);
  });
});

describe('CaptureSession backpressure', () => {
  /** A reader that has stopped reading: writes wait until `resume()`, and go straight through after it. */
  class StalledSink extends Writable {
    readonly taken: Buffer[] = [];
    writes = 0;
    private waiting: (() => void)[] | undefined = [];
    constructor() {
      super({ highWaterMark: 1024 });
    }
    override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
      this.writes++;
      const take = () => {
        this.taken.push(chunk);
        callback();
      };
      if (this.waiting === undefined) take();
      else this.waiting.push(take);
    }
    resume(): void {
      const waiting = this.waiting ?? [];
      this.waiting = undefined;
      for (const take of waiting) take();
    }
  }

  it('spends at most its share of the CPU (after a burst), dropping the records beyond it until the CPU time grows', async () => {
    // Every clock read takes 2 µs, so a timed record costs 2 µs; the process's CPU time moves only when told to.
    let nowMs = 0;
    let cpuMs = 0;
    const clock = { now: () => (nowMs += 0.002), cpuMs: () => cpuMs, idleMs: () => 0 };
    const tap = new FakeTap();
    const sink = new MemorySink();
    const session = new CaptureSession(tap, {
      interfaces: 'any',
      format: 'pcapng',
      nodeName: 'n',
      sink,
      cpuShare: 0.05,
      clock,
    });
    const emit = (records: number): void => {
      for (let i = 0; i < records; i++) tap.emit('eth0', OUTER, T0 + BigInt(i));
    };

    emit(1000);
    expect(session.stats()).toMatchObject({ captured: 1000, written: 1000, droppedRecords: 0 });
    emit(10_000);
    const spent = session.stats();
    // The 5 ms burst holds about 2,500 records of 2 µs.
    expect(spent.written).toBeGreaterThan(2000);
    expect(spent.written).toBeLessThan(3000);
    expect(spent.written + spent.droppedRecords).toBe(11_000);

    // Once the process has used 100 ms more, 5 % of it (5 ms, the burst's cap) is there to spend again.
    cpuMs += 100;
    await vi.waitFor(() => {
      emit(1);
      expect(session.stats().written).toBeGreaterThan(spent.written);
    });
    const resumed = session.stats();
    emit(1000);
    expect(session.stats()).toMatchObject({ written: resumed.written + 1000, droppedRecords: resumed.droppedRecords });
    session.stop();
    expect(await session.done).toMatchObject({ captured: resumed.captured + 1000, written: resumed.written + 1000 });
  });

  it("keeps every record on a node that is mostly idle: half the time the loop waits is the capture's", async () => {
    let nowMs = 0;
    let idleMs = 0;
    const clock = { now: () => (nowMs += 0.002), cpuMs: () => 0, idleMs: () => idleMs };
    const tap = new FakeTap();
    const session = new CaptureSession(tap, {
      interfaces: 'any',
      format: 'pcapng',
      nodeName: 'n',
      sink: new MemorySink(),
      clock,
    });
    for (let burst = 0; burst < 5; burst++) {
      for (let i = 0; i < 2000; i++) tap.emit('eth0', OUTER, T0 + BigInt(i));
      idleMs += 20;
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    session.stop();
    expect(await session.done).toMatchObject({ captured: 10_000, written: 10_000, droppedRecords: 0 });
  });

  it('drops capture records, never blocking the tap, and resumes on drain', async () => {
    const tap = new FakeTap();
    const sink = new StalledSink();
    const options = { interfaces: 'any', format: 'pcapng', nodeName: 'n', sink, maxQueuedBytes: 8192 } as const;
    const session = new CaptureSession(tap, options);
    await new Promise((resolve) => setImmediate(resolve));
    expect(sink.writes).toBe(1); // the section header, which now waits in the stalled sink

    const started = performance.now();
    for (let i = 0; i < 5000; i++) tap.emit('eth0', OUTER, T0 + BigInt(i));
    const elapsed = performance.now() - started;
    // The tap returned without touching the sink, and the queue stayed near its limit.
    expect(sink.writes).toBe(1);
    expect(elapsed).toBeLessThan(1000);
    const during = session.stats();
    expect(during.captured).toBe(5000);
    expect(during.droppedRecords).toBeGreaterThan(4800);
    expect(during.written + during.droppedRecords).toBe(5000);
    expect(during.bytesWritten).toBeLessThan(8192 + 200);

    sink.resume();
    // On 'drain' the session writes what it had queued, in one write.
    await vi.waitFor(() => expect(sink.writes).toBe(2));
    tap.emit('eth0', REPLY, T0 + 10_000n);
    session.stop();
    const stats = await session.done;
    expect(stats).toMatchObject({ captured: 5001, written: during.written + 1, droppedRecords: during.droppedRecords });

    const rows = await fields(saved(Buffer.concat(sink.taken)), ['ip.src']);
    expect(rows).toHaveLength(stats.written);
    expect(rows.at(-1)).toEqual(['10.0.0.11,192.168.87.198']);
  });
});

describe('CaptureSession streaming', () => {
  it('feeds tshark -r - through a pipe as packets arrive', async () => {
    // Node gives a child socketpairs, not pipes, and tshark refuses a socket on stdin: cat puts a real pipe in
    // between, as the shell does for `ipip-lab capture -w - | tshark -r -`.
    const tshark = spawn('sh', ['-c', 'cat | exec tshark -l -r - -T fields -e frame.interface_name -e ip.dst'], {
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    const exited = new Promise<number | null>((resolve, reject) => {
      tshark.on('error', reject);
      tshark.on('close', resolve);
    });
    const lines: string[] = [];
    let buffered = '';
    let seen = () => {};
    tshark.stdout.setEncoding('utf8').on('data', (text: string) => {
      const complete = (buffered + text).split('\n');
      buffered = complete.pop()!;
      lines.push(...complete);
      seen();
    });
    const printed = (count: number) =>
      Promise.race([
        new Promise<void>((resolve) => {
          seen = () => lines.length >= count && resolve();
          seen();
        }),
        exited.then((code) => Promise.reject(new Error(`tshark exited (${code}) after ${JSON.stringify(lines)}`))),
      ]);

    const tap = new FakeTap();
    // The whole CPU: this test is about the stream, and a loaded machine must not make the budget drop a record.
    const session = new CaptureSession(tap, {
      interfaces: 'any',
      format: 'pcapng',
      nodeName: 'n',
      sink: tshark.stdin,
      cpuShare: 1,
    });
    tap.emit('eth0', OUTER, T0);
    // tshark prints the first packet while the capture is still running: the stream is live, not a file at the end.
    await printed(1);
    expect(lines).toEqual(['eth0\t10.0.0.11,192.168.87.198']);
    tap.emit('tunl0', INNER, T0 + 1n);
    session.stop();
    await session.done;
    tshark.stdin.end();
    expect(await exited).toBe(0);
    expect(lines).toEqual(['eth0\t10.0.0.11,192.168.87.198', 'tunl0\t192.168.87.198']);
  });
});

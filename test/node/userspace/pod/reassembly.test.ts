import { describe, expect, it } from 'vitest';
import { icmp } from '../../../../src/wire/icmp.js';
import { IP_PROTOCOL, Ipv4View, ipv4 } from '../../../../src/wire/ipv4.js';
import { TimerSet } from '../../../../src/node/userspace/pod/clock.js';
import { Reassembler } from '../../../../src/node/userspace/pod/reassembly.js';
import { formatPing } from '../../../../src/node/userspace/pod/report-text.js';
import { FakeClock, POD_A, POD_B, twoPods } from './harness.js';

const SERVER = 'hello-world-54575d5b77-rz8vs';

/** An echo request's ICMP bytes: 8 header + 40 data = 48 bytes, enough for three 16/24-byte pieces. */
const echo = icmp.encode({ kind: 'echo-request', identifier: 77, sequence: 1, data: Buffer.alloc(40, 0x5a) });

function piece(start: number, end: number, more: boolean, identification = 0x1234): Buffer {
  return ipv4.encode({
    identification,
    moreFragments: more,
    fragmentOffset: start,
    ttl: 63,
    protocol: IP_PROTOCOL.ICMP,
    src: POD_A,
    dst: POD_B,
    payload: echo.subarray(start, end),
  });
}

describe('reassembly in a pod', () => {
  it('rebuilds a datagram from pieces arriving in any order and answers it', async () => {
    const { clock, host, b } = twoPods();
    b.receive(piece(32, 48, false));
    b.receive(piece(0, 16, true));
    b.receive(piece(16, 32, true));
    await clock.advance(5);
    const [reply] = host.sentBy(SERVER);
    expect(reply.totalLength).toBe(20 + 48);
    expect(b.counters.reassembled).toBe(1);
  });

  it('drops the whole datagram when pieces overlap (Linux ≥ 4.19), and counts it', async () => {
    const { clock, host, b } = twoPods();
    b.receive(piece(0, 24, true));
    b.receive(piece(16, 40, true));
    b.receive(piece(24, 48, false));
    await clock.advance(5);
    expect(host.sentBy(SERVER)).toHaveLength(0);
    expect(b.counters.drops['fragment-overlap']).toBe(1);
    // What came after the overlap started a new datagram that never completes; without its first piece, it
    // times out silently.
    await clock.advance(30_000);
    expect(b.counters.drops['reassembly-timeout']).toBe(1);
    expect(host.sentBy(SERVER)).toHaveLength(0);
  });

  it('ignores an exact duplicate and still completes', async () => {
    const { clock, host, b } = twoPods();
    b.receive(piece(0, 24, true));
    b.receive(piece(0, 24, true));
    b.receive(piece(8, 16, true));
    b.receive(piece(24, 48, false));
    await clock.advance(5);
    expect(host.sentBy(SERVER)).toHaveLength(1);
    expect(b.counters.drops['fragment-duplicate']).toBe(2);
  });

  it('discards a datagram whose end moves after its last piece arrived', () => {
    const { b } = twoPods();
    b.receive(piece(24, 48, false));
    b.receive(piece(8, 32, false));
    expect(b.counters.drops['fragment-invalid']).toBe(1);
  });

  it('keeps pieces from different IDs apart', async () => {
    const { clock, host, b } = twoPods();
    b.receive(piece(0, 24, true, 1));
    b.receive(piece(24, 48, false, 2));
    await clock.advance(5);
    expect(host.sentBy(SERVER)).toHaveLength(0);
  });

  it('times out after 30 s with ICMP 11/1 when the first piece came, which ping reports', async () => {
    // The request's second fragment is lost: B holds the first for ipfrag_time, then says so.
    const { clock, a } = twoPods({
      keep: (entry) => !(entry.from === 'client-7d9f8' && entry.view.fragmentByteOffset > 0),
    });
    const report = await clock.settle(a.ping(POD_B, { count: 1, size: 1473, df: false, timeoutMs: 40_000 }));
    expect(formatPing(report)).toContain('From 192.168.87.198 icmp_seq=1 Frag reassembly time exceeded\n');
    expect(report.errors).toBe(1);
  });

  it('stops starting datagrams past 4 MiB held, and frees everything on expiry', async () => {
    const { clock, b } = twoPods();
    const big = icmp.encode({ kind: 'echo-request', identifier: 1, sequence: 1, data: Buffer.alloc(1448) });
    for (let id = 0; id < 4000; id++) {
      b.receive(
        ipv4.encode({
          identification: id,
          moreFragments: true,
          ttl: 63,
          protocol: IP_PROTOCOL.ICMP,
          src: POD_A,
          dst: POD_B,
          payload: big,
        }),
      );
    }
    const refused = b.counters.drops['reassembly-memory'] ?? 0;
    expect(refused).toBeGreaterThan(1000);
    expect(4000 - refused).toBeLessThanOrEqual(Math.ceil((4 * 1024 * 1024) / (1456 + 256)) + 1);
    // Expiry sends a (rate-limited) ICMP 11/1 per datagram; let those arrive too.
    await clock.advance(30_100);
    expect(clock.pendingTimers).toBe(0);
    expect(b.counters.drops['reassembly-timeout']).toBe(4000 - refused);
  });
});

describe('Reassembler', () => {
  it('accounts held bytes and releases them when a datagram completes', () => {
    const clock = new FakeClock();
    const expired: Array<Ipv4View | undefined> = [];
    const reassembler = new Reassembler(new TimerSet(clock.setTimer), (first) => expired.push(first));
    expect(reassembler.add(new Ipv4View(piece(0, 24, true)))).toEqual({ kind: 'pending' });
    expect(reassembler.heldBytes).toBeGreaterThan(24);
    const done = reassembler.add(new Ipv4View(piece(24, 48, false)));
    expect(done.kind).toBe('complete');
    if (done.kind !== 'complete') return;
    const view = new Ipv4View(done.packet);
    expect(view).toMatchObject({ totalLength: 68, moreFragments: false, fragmentOffset: 0, identification: 0x1234 });
    expect(view.verifyChecksum()).toBe(true);
    expect(view.payload.equals(echo)).toBe(true);
    expect(reassembler.heldBytes).toBe(0);
    expect(reassembler.pendingDatagrams).toBe(0);
  });

  it('trims a non-last piece to a multiple of 8 bytes, as the kernel does', () => {
    const clock = new FakeClock();
    const reassembler = new Reassembler(new TimerSet(clock.setTimer), () => undefined);
    reassembler.add(new Ipv4View(piece(0, 27, true)));
    const done = reassembler.add(new Ipv4View(piece(24, 48, false)));
    expect(done.kind).toBe('complete');
  });

  it('hands the first piece to the expiry callback', async () => {
    const clock = new FakeClock();
    const expired: Array<number | undefined> = [];
    const reassembler = new Reassembler(new TimerSet(clock.setTimer), (first) =>
      expired.push(first?.fragmentByteOffset),
    );
    reassembler.add(new Ipv4View(piece(0, 24, true, 1)));
    reassembler.add(new Ipv4View(piece(24, 48, false, 2)));
    await clock.advance(30_000);
    expect(expired).toEqual([0, undefined]);
  });
});

/**
 * A bug the fuzz exposed: the agent's RSS doubled under random fragments and kept growing. The pods' reassembly is
 * bounded at 4 MiB of fragment data (as ipfrag_high_thresh), but each held piece was a `Buffer.from` copy, which
 * Node carves out of a shared 8 KiB pool slab: one small fragment kept its whole slab, and the packets received
 * between two fragments filled the rest, so 4 MiB of accounted data pinned tens of times that. Held pieces now own
 * exactly their bytes.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { expect, it } from 'vitest';
import { Reassembler } from '../../src/node/userspace/pod/reassembly.js';
import { TimerSet } from '../../src/node/userspace/pod/clock.js';
import { IP_PROTOCOL, Ipv4View, ipv4 } from '../../src/wire/index.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** A first fragment (MF, offset 0) of 16 bytes, in a buffer from Node's pool, as the underlay's copies are. */
function smallFragment(id: number): Ipv4View {
  const encoded = ipv4.encode({
    identification: id & 0xffff,
    moreFragments: true,
    ttl: 64,
    protocol: IP_PROTOCOL.UDP,
    src: 0xc0a84d80 + (id >>> 16),
    dst: 0xc0a857c1,
    payload: Buffer.alloc(16, id & 0xff),
  });
  return new Ipv4View(Buffer.from(encoded));
}

/** Collects garbage until the array buffers V8 frees in the background are gone from the count. */
async function settledArrayBuffers(): Promise<number> {
  let previous = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 10; round++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const now = process.memoryUsage().arrayBuffers;
    if (now >= previous) return now;
    previous = now;
  }
  return previous;
}

it('fragments held for reassembly cost what they are, not the 8 KiB pool slabs they were received in', async () => {
  const timers = new TimerSet(() => ({ cancel: () => {} }));
  const reassembler = new Reassembler(timers, () => {});
  const before = await settledArrayBuffers();
  let held = 0;
  for (let id = 0; held < 2_000; id++) {
    const outcome = reassembler.add(smallFragment(id));
    if (outcome.kind === 'pending') held++;
    // What else a node receives meanwhile: pooled copies (under 4 KiB) that are garbage at once, filling the slab.
    for (let other = 0; other < 2; other++) Buffer.from(Buffer.alloc(4_000));
  }
  const retained = (await settledArrayBuffers()) - before;
  expect(reassembler.pendingDatagrams).toBe(2_000);
  // 2,000 first fragments of 36 bytes, each held twice (its data, the whole fragment): a few hundred kB at most.
  // With the pool slabs pinned it was 2,000 slabs of 8 KiB.
  expect(retained).toBeLessThan(4 * 1024 * 1024);
  reassembler.clear();
});

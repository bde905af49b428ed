/*
 * The tunnel's own cost per packet, in process: src/wire's `encapsulate` of an inner echo request into a reused
 * buffer (as the dataplane sends: outer header built, checksum filled, inner bytes copied) and then `decapsulate` of
 * the result (both headers validated, checksums included, and the RFC 6040 table applied), for an 84-byte and a
 * 1400-byte inner packet. The baseline is the least any tunnel does with the same bytes: one Buffer copy of the
 * inner packet behind a 20-byte gap. Runs alternate between the two loops and the medians are compared.
 */
import { performance } from 'node:perf_hooks';
import { decapsulate, encapsulate, IPIP_OVERHEAD, ipv4FromString, type TunnelHeader } from '../src/wire/index.js';
import { echoRequest } from '../test/support/lab-packets.js';
import { median, resultOf, type BenchResult } from './result.js';

const SIZES = [84, 1400];
const PACKETS_PER_RUN = 200_000;
const RUNS = 9;
const ICMP_AND_IP_HEADERS = 28;

type Loop = (inner: Buffer, out: Buffer, header: TunnelHeader) => number;

/** Returns a figure of every packet it handled, so that no work can be optimised away. */
const encapsulateAndDecapsulate: Loop = (inner, out, header) => {
  let checked = 0;
  for (let i = 0; i < PACKETS_PER_RUN; i++) {
    header.id = i & 0xffff;
    const length = encapsulate(inner, header, out, 0);
    const result = decapsulate(out.subarray(0, length));
    if (!result.ok) throw new Error(`decapsulate refused its own packet: ${result.reason}`);
    checked += result.value.inner.totalLength;
  }
  return checked;
};

const copyOnly: Loop = (inner, out) => {
  let checked = 0;
  for (let i = 0; i < PACKETS_PER_RUN; i++) {
    inner.copy(out, IPIP_OVERHEAD);
    checked += out[IPIP_OVERHEAD + 3];
  }
  return checked;
};

function nanosecondsPerPacket(loop: Loop, inner: Buffer, out: Buffer, header: TunnelHeader): number {
  const start = performance.now();
  loop(inner, out, header);
  return ((performance.now() - start) * 1e6) / PACKETS_PER_RUN;
}

/** Synchronous, timed in one piece; a Promise only because every benchmark of run.ts returns one. */
export function benchEncap(): Promise<BenchResult[]> {
  const header: TunnelHeader = { src: ipv4FromString('10.40.0.11')!, dst: ipv4FromString('10.40.0.10')!, id: 0 };
  return Promise.resolve(
    SIZES.map((size) => {
      const inner = echoRequest({
        src: '192.168.250.129',
        dst: '192.168.163.1',
        size: size - ICMP_AND_IP_HEADERS,
        ttl: 63,
      });
      const out = Buffer.alloc(IPIP_OVERHEAD + inner.length);
      // Warm-up: both loops optimised before anything is timed.
      nanosecondsPerPacket(encapsulateAndDecapsulate, inner, out, header);
      nanosecondsPerPacket(copyOnly, inner, out, header);
      const tunnel: number[] = [];
      const copy: number[] = [];
      for (let run = 0; run < RUNS; run++) {
        if (run % 2 === 0) copy.push(nanosecondsPerPacket(copyOnly, inner, out, header));
        tunnel.push(nanosecondsPerPacket(encapsulateAndDecapsulate, inner, out, header));
        if (run % 2 === 1) copy.push(nanosecondsPerPacket(copyOnly, inner, out, header));
      }
      return resultOf(
        `IPIP encapsulate + decapsulate (src/wire), ${size}-byte inner packet (median of ${RUNS} x ${PACKETS_PER_RUN / 1000}k)`,
        'ns/packet',
        median(tunnel),
        { name: `Buffer copy of the ${size} bytes`, value: median(copy) },
      );
    }),
  );
}

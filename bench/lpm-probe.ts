/*
 * The measuring half of the LPM benchmark, run by bench/lpm.ts in a child process started with --expose-gc (to
 * start every timed loop from a collected heap) and a fixed 128 MB young generation (so that what a loop allocates
 * stays in the heap to be counted instead of being swept away by scavenges; any scavenge that still happens is
 * counted as a GC event). Prints one JSON document on stdout.
 */
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Ipv4Prefix } from '../src/routing/address.js';
import { LpmTable } from '../src/routing/lpm.js';
import { mulberry32, randomInt, randomUint32 } from '../test/support/random.js';
import { addressIn, randomPrefixes } from '../test/support/routing-random.js';

const ROUTE_COUNTS = [1_000, 10_000, 100_000];
const ROUTE_SHAPE = { minLength: 8, maxLength: 32, clusters: 0 };
const LOOKUPS = 1 << 20;
const RUNS = 5;
const SEED = 20_240_917;

export interface LoopStats {
  /** Median over the timed runs. */
  readonly lookupsPerSecond: number;
  /**
   * Heap growth per lookup in the run that grew least, net of what `timed` itself allocates. An allocation per
   * lookup shows in every run, while the compiler and runtime now and then allocate a few hundred KB of their own
   * (as often in Map.get's runs as in ours), so the least-growing run is the one that tells.
   */
  readonly bytesPerLookup: number;
  /** GC events (PerformanceObserver 'gc') that started inside any of the timed loops. */
  readonly gcEvents: number;
  /** Lookups that found something, out of `lookups` (a check that both loops did the same work). */
  readonly hits: number;
}

export interface ProbeReport {
  readonly routes: number;
  /** How the routes were drawn, for the report's labels. */
  readonly shape: string;
  readonly lookups: number;
  readonly runs: number;
  readonly lpm: LoopStats;
  readonly map: LoopStats;
}

interface Sample {
  readonly seconds: number;
  readonly heapGrowth: number;
  readonly start: number;
  readonly end: number;
  readonly hits: number;
}

function lpmLoop(table: LpmTable<number>, addresses: Uint32Array): number {
  let hits = 0;
  for (let i = 0; i < addresses.length; i++) {
    if (table.lookup(addresses[i]) !== undefined) hits++;
  }
  return hits;
}

/** The baseline: one hash probe per lookup. Keys are int32 so neither side boxes a number. */
function mapLoop(map: Map<number, number>, addresses: Uint32Array): number {
  let hits = 0;
  for (let i = 0; i < addresses.length; i++) {
    if (map.get(addresses[i] | 0) !== undefined) hits++;
  }
  return hits;
}

function timed(collect: () => void, loop: () => number): Sample {
  collect();
  const heapBefore = process.memoryUsage().heapUsed;
  const start = performance.now();
  const hits = loop();
  const end = performance.now();
  const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
  return { seconds: (end - start) / 1000, heapGrowth, start, end, hits };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function build(routes: number): { table: LpmTable<number>; map: Map<number, number>; addresses: Uint32Array } {
  const random = mulberry32(SEED + routes);
  const table = new LpmTable<number>();
  const map = new Map<number, number>();
  const prefixes: Ipv4Prefix[] = [];
  while (table.size < routes) {
    const [prefix] = randomPrefixes(random, 1, ROUTE_SHAPE);
    if (table.get(prefix) !== undefined) continue;
    table.insert(prefix, prefixes.length);
    map.set(prefix.address.value | 0, prefixes.length);
    prefixes.push(prefix);
  }
  // Half the lookups land inside a route (as forwarded traffic does), half anywhere.
  const addresses = new Uint32Array(LOOKUPS);
  for (let i = 0; i < LOOKUPS; i++) {
    addresses[i] = i % 2 === 0 ? addressIn(random, prefixes[randomInt(random, prefixes.length)]) : randomUint32(random);
  }
  return { table, map, addresses };
}

async function probe(collect: () => void, gcStarts: readonly number[]): Promise<ProbeReport[]> {
  const reports: ProbeReport[] = [];
  for (const routes of ROUTE_COUNTS) {
    const { table, map, addresses } = build(routes);
    const empty = new Uint32Array(0);
    const runLpm = (): number => lpmLoop(table, addresses);
    const runMap = (): number => mapLoop(map, addresses);
    // Warm both loops and `timed` up to optimized code, then learn what `timed` allocates around an empty loop.
    for (let i = 0; i < 3; i++) {
      timed(collect, runLpm);
      timed(collect, runMap);
    }
    const overhead = Math.min(...[0, 1, 2, 3, 4].map(() => timed(collect, () => lpmLoop(table, empty)).heapGrowth));

    const lpmSamples: Sample[] = [];
    const mapSamples: Sample[] = [];
    for (let run = 0; run < RUNS; run++) {
      lpmSamples.push(timed(collect, runLpm));
      mapSamples.push(timed(collect, runMap));
    }
    await sleep(50); // GC entries reach the observer asynchronously.
    const stats = (samples: Sample[]): LoopStats => ({
      lookupsPerSecond: median(samples.map((s) => LOOKUPS / s.seconds)),
      bytesPerLookup: Math.min(...samples.map((s) => (s.heapGrowth - overhead) / LOOKUPS)),
      gcEvents: gcStarts.filter((t) => samples.some((s) => t >= s.start && t <= s.end)).length,
      hits: samples[samples.length - 1].hits,
    });
    const shape = `random networks, /${ROUTE_SHAPE.minLength}../${ROUTE_SHAPE.maxLength}`;
    reports.push({ routes, shape, lookups: LOOKUPS, runs: RUNS, lpm: stats(lpmSamples), map: stats(mapSamples) });
  }
  return reports;
}

const collect = (globalThis as { gc?: () => void }).gc;
if (!collect) throw new Error('lpm-probe needs --expose-gc');
const gcStarts: number[] = [];
const observer = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcStarts.push(entry.startTime);
});
observer.observe({ entryTypes: ['gc'] });
const reports = await probe(collect, gcStarts);
observer.disconnect();
process.stdout.write(JSON.stringify(reports) + '\n');

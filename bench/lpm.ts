import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { LoopStats, ProbeReport } from './lpm-probe.js';
import { resultOf, type BenchResult } from './result.js';

const TARGET_ROUTES = 100_000;
const TARGET_LOOKUPS_PER_SECOND = 5_000_000;

/**
 * LpmTable.lookup at 1k, 10k and 100k routes against Map.get on exact keys: speed, bytes allocated per lookup and
 * GC events during the timed loops. Measured in a child process so the heap flags apply to nothing else.
 */
export async function benchLpm(): Promise<BenchResult[]> {
  const probe = fileURLToPath(new URL('./lpm-probe.js', import.meta.url));
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--expose-gc', '--min-semi-space-size=128', '--max-semi-space-size=128', probe],
    { maxBuffer: 1 << 20 },
  );
  return (JSON.parse(stdout) as ProbeReport[]).flatMap(resultsOf);
}

function resultsOf(report: ProbeReport): BenchResult[] {
  const name = `LpmTable.lookup, ${report.routes / 1000}k routes (${report.shape})`;
  const baseline = (figure: (stats: LoopStats) => number): BenchResult['baseline'] => ({
    name: `Map.get, ${report.routes / 1000}k exact keys`,
    value: figure(report.map),
  });
  const targeted = report.routes === TARGET_ROUTES;
  const { lookupsPerSecond, bytesPerLookup, gcEvents } = report.lpm;
  return [
    resultOf(
      name,
      'lookups/s',
      lookupsPerSecond,
      baseline((stats) => stats.lookupsPerSecond),
      targeted
        ? { text: `>= ${TARGET_LOOKUPS_PER_SECOND / 1e6}M`, pass: lookupsPerSecond >= TARGET_LOOKUPS_PER_SECOND }
        : undefined,
    ),
    resultOf(
      name,
      'bytes/lookup',
      bytesPerLookup,
      baseline((stats) => stats.bytesPerLookup),
      targeted ? { text: '0', pass: bytesPerLookup === 0 } : undefined,
    ),
    resultOf(
      name,
      `GC events in ${report.runs} timed loops`,
      gcEvents,
      baseline((stats) => stats.gcEvents),
      targeted ? { text: '0', pass: gcEvents === 0 } : undefined,
    ),
  ];
}

/*
 * `npm run bench`: runs every benchmark below, prints one table and then the figures as JSON (`--json`: JSON only).
 * A new benchmark is one more entry in BENCHMARKS.
 */
import os from 'node:os';
import { benchCapture } from './capture.js';
import { benchLpm } from './lpm.js';
import type { Benchmark, BenchResult } from './result.js';

const BENCHMARKS: readonly Benchmark[] = [
  { name: 'lpm', run: benchLpm },
  { name: 'capture', run: benchCapture },
];

function figure(value: number): string {
  if (value === 0 || Number.isInteger(value)) return value >= 1e6 ? `${(value / 1e6).toFixed(2)}M` : String(value);
  if (Math.abs(value) >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  return value >= 1 ? value.toFixed(2) : value.toPrecision(3);
}

function table(results: readonly BenchResult[]): string {
  const header = ['benchmark', 'unit', 'value', 'baseline (same run)', 'baseline', 'ratio', 'target', ''];
  const rows = results.map((r) => [
    r.name,
    r.unit,
    figure(r.value),
    r.baseline.name,
    figure(r.baseline.value),
    r.ratio === null ? '-' : `${r.ratio.toFixed(2)}x`,
    r.target?.text ?? '',
    r.target ? (r.target.pass ? 'PASS' : 'MISS') : '',
  ]);
  const widths = header.map((_, i) => Math.max(...[header, ...rows].map((row) => row[i].length)));
  const numeric = new Set([2, 4, 5]);
  const line = (row: string[]): string =>
    row
      .map((cell, i) => (numeric.has(i) ? cell.padStart(widths[i]) : cell.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

const jsonOnly = process.argv.includes('--json');
const results: BenchResult[] = [];
for (const benchmark of BENCHMARKS) {
  if (!jsonOnly) process.stderr.write(`running ${benchmark.name}…\n`);
  results.push(...(await benchmark.run()));
}
const environment = { node: process.version, cpu: os.cpus()[0]?.model ?? 'unknown', cpus: os.cpus().length };
if (!jsonOnly) process.stdout.write(`${table(results)}\n`);
process.stdout.write(JSON.stringify({ environment, results }, null, 2) + '\n');

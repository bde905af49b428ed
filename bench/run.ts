/*
 * `npm run bench`: runs every benchmark below, prints one table and then the figures as JSON (`--json`: JSON only).
 * `npm run bench -- forwarding memory` runs only the benchmarks named. A new benchmark is one more entry in
 * BENCHMARKS. A benchmark that fails is reported on stderr, the others still run, and the exit code is 1.
 */
import os from 'node:os';
import { benchCapture } from './capture.js';
import { benchEncap } from './encap.js';
import { benchForwarding } from './forwarding.js';
import { benchLpm } from './lpm.js';
import { benchMemory } from './memory.js';
import { benchSwarm } from './swarm.js';
import type { Benchmark, BenchResult } from './result.js';

const BENCHMARKS: readonly Benchmark[] = [
  { name: 'lpm', run: benchLpm },
  { name: 'encap', run: benchEncap },
  { name: 'capture', run: benchCapture },
  { name: 'memory', run: benchMemory },
  { name: 'forwarding', run: benchForwarding },
  { name: 'swarm', run: benchSwarm },
];

function figure(value: number): string {
  if (value === 0 || Number.isInteger(value)) return value >= 1e6 ? `${(value / 1e6).toFixed(2)}M` : String(value);
  if (Math.abs(value) >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  return value >= 1 ? value.toFixed(2) : value.toPrecision(3);
}

function table(results: readonly BenchResult[]): string {
  const header = ['benchmark', 'unit', 'value', 'baseline (same run)', 'baseline', 'ratio', 'target', ''];
  const notes: string[] = [];
  const rows = results.map((r) => [
    r.note === undefined ? r.name : `${r.name} [${notes.push(r.note)}]`,
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
  return [line(header), ...rows.map(line), ...notes.map((note, i) => `[${i + 1}] ${note}`)].join('\n') + '\n';
}

function selected(names: readonly string[]): readonly Benchmark[] {
  const unknown = names.filter((name) => !BENCHMARKS.some((benchmark) => benchmark.name === name));
  if (unknown.length > 0) {
    process.stderr.write(
      `no benchmark ${unknown.join(', ')} (benchmarks: ${BENCHMARKS.map((b) => b.name).join(', ')})\n`,
    );
    process.exit(2);
  }
  return names.length === 0 ? BENCHMARKS : BENCHMARKS.filter((benchmark) => names.includes(benchmark.name));
}

const args = process.argv.slice(2);
const jsonOnly = args.includes('--json');
const results: BenchResult[] = [];
const failed: string[] = [];
for (const benchmark of selected(args.filter((arg) => arg !== '--json'))) {
  if (!jsonOnly) process.stderr.write(`running ${benchmark.name}…\n`);
  try {
    results.push(...(await benchmark.run()));
  } catch (error) {
    failed.push(benchmark.name);
    process.stderr.write(
      `${benchmark.name} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
  }
}
const environment = { node: process.version, cpu: os.cpus()[0]?.model ?? 'unknown', cpus: os.cpus().length };
if (!jsonOnly) process.stdout.write(`${table(results)}\n`);
process.stdout.write(JSON.stringify({ environment, results, failed }, null, 2) + '\n');
if (failed.length > 0) process.exitCode = 1;

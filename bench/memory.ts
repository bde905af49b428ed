/*
 * The agent's memory with 1,000 pods on its node and 100,000 routes in its table: RSS of a child process that builds
 * that node as the agent does (bench/memory-probe.ts), against the RSS of an empty Node.js child measured the same
 * way in the same run. Two more children, one without the routes and one without the pods, tell where it goes; all
 * four run at once, since each mostly waits for V8 to give memory back.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { MemoryReport } from './memory-probe.js';
import { resultOf, type BenchResult } from './result.js';

const PODS = 1_000;
const ROUTES = 100_000;
/** V8's memory reducer shrinks what the build grew some 15 s after allocation stops (8 s, then a round of marking). */
const SETTLE_MS = 30_000;
const TARGET_MB = 80;
const MB = 1024 * 1024;

/** The V8 flags the agent runs with: those its command's first line gives node. */
function agentNodeFlags(): string[] {
  const main = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const shebang = readFileSync(main, 'utf8').split('\n', 1)[0];
  const flags = /^#!\/usr\/bin\/env -S node((?: --[\w-]+(?:=\S+)?)*)$/.exec(shebang)?.[1];
  if (flags === undefined) throw new Error(`memory bench: cannot read the agent's node flags from ${main}: ${shebang}`);
  return flags.split(' ').filter(Boolean);
}

async function probe(args: string[]): Promise<MemoryReport> {
  const script = fileURLToPath(new URL('./memory-probe.js', import.meta.url));
  const flags = ['--expose-gc', ...agentNodeFlags()];
  const { stdout } = await promisify(execFile)(process.execPath, [
    ...flags,
    script,
    ...args,
    '--settle-ms',
    String(SETTLE_MS),
  ]);
  return JSON.parse(stdout) as MemoryReport;
}

const node = (pods: number, routes: number): Promise<MemoryReport> =>
  probe(['--pods', String(pods), '--routes', String(routes)]);

export async function benchMemory(): Promise<BenchResult[]> {
  const [empty, full, podsOnly, routesOnly] = await Promise.all([
    probe(['--empty']),
    node(PODS, ROUTES),
    node(PODS, 0),
    node(0, ROUTES),
  ]);
  const nodeAlone = { name: 'Node.js alone (empty child)', value: empty.settledRss / MB };
  const both = `${PODS / 1000}k pods + ${ROUTES / 1000}k routes`;
  const perPod = (full.built.heapUsed - routesOnly.built.heapUsed) / PODS;
  const perRoute = (full.built.heapUsed - podsOnly.built.heapUsed) / ROUTES;
  const triePerRoute = (full.built.arrayBuffers - podsOnly.built.arrayBuffers) / ROUTES;
  return [
    resultOf(
      `agent memory, ${both}: RSS idle`,
      'MB',
      full.settledRss / MB,
      nodeAlone,
      { text: `< ${TARGET_MB} MB`, pass: full.settledRss / MB < TARGET_MB },
      {
        note:
          `a LabNode as the agent builds it (dataplane, route table, simulated pods) in a child process: ${PODS} hello-app ` +
          `pods on the node, ${ROUTES} routes to other nodes' blocks, ${full.tableRoutes} routes in its table; the lowest ` +
          `RSS in ${SETTLE_MS / 1000} s of idling after a full GC, the empty child measured the same way`,
      },
    ),
    resultOf(
      `agent memory, ${both}: RSS idle less its file-backed pages (the node executable's, shared and clean)`,
      'MB',
      (full.settledRss - full.settledFileRss) / MB,
      { name: 'Node.js alone, the same way', value: (empty.settledRss - empty.settledFileRss) / MB },
      undefined,
      {
        note: `file-backed: ${(full.settledFileRss / MB).toFixed(1)} MB of the agent's RSS, ${(empty.settledFileRss / MB).toFixed(1)} MB of Node.js alone`,
      },
    ),
    resultOf(`agent memory, ${both}: RSS right after building, after a full GC`, 'MB', full.built.rss / MB, {
      name: 'Node.js alone',
      value: empty.built.rss / MB,
    }),
    resultOf(`agent memory, ${both}: V8 heap used after a full GC`, 'MB', full.built.heapUsed / MB, {
      name: 'Node.js alone',
      value: empty.built.heapUsed / MB,
    }),
    resultOf(
      `agent memory, ${PODS / 1000}k pods, no extra routes: RSS idle`,
      'MB',
      podsOnly.settledRss / MB,
      nodeAlone,
    ),
    resultOf(`agent memory, ${ROUTES / 1000}k routes, no pods: RSS idle`, 'MB', routesOnly.settledRss / MB, nodeAlone),
    // A difference of two runs above: there is no baseline of its own to set beside it.
    resultOf('agent memory: V8 heap per pod (pod stack, dataplane port, /32 route)', 'bytes', perPod, {
      name: 'none',
      value: 0,
    }),
    resultOf('agent memory: V8 heap per route (route, prefix, table entry, cluster state)', 'bytes', perRoute, {
      name: 'LPM trie arrays per route',
      value: triePerRoute,
    }),
  ];
}

/**
 * The host side of the robustness suite: ships lab-tool.mjs into containers and runs it there, reads what only the
 * container can see (the agent's RSS, the raw socket's kernel drop counter), compares counters before and after,
 * and records the figures the README's "Reliability" section quotes.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { StartedTestContainer } from 'testcontainers';
import type { DataplaneStats } from '../../../src/node/userspace/dataplane.js';
import { Ipv4Address } from '../../../src/routing/index.js';
import type { Lab, LabNodeHandle } from '../../../src/testing/index.js';

/** `npm run test:nightly` sets this: the long runs (1,000,000 packets, a 60 s flood) instead of CI's short ones. */
export const NIGHTLY = process.env.IPIP_LAB_NIGHTLY === '1';

const TOOL_SOURCE = readFileSync(new URL('./lab-tool.mjs', import.meta.url), 'utf8');
const TOOL_PATH = '/tmp/ipip-lab-robustness-tool.mjs';

export async function installTool(container: StartedTestContainer): Promise<void> {
  await container.copyContentToContainer([{ content: TOOL_SOURCE, target: TOOL_PATH }]);
}

/** Runs lab-tool.mjs in the container with `config` and returns the JSON line it printed. */
export async function runTool<T>(container: StartedTestContainer, config: Record<string, unknown>): Promise<T> {
  const result = await container.exec(['node', TOOL_PATH, JSON.stringify(config)]);
  const last = result.stdout.trim().split('\n').at(-1) ?? '';
  if (result.exitCode !== 0 || !last.startsWith('{')) {
    throw new Error(
      `lab-tool ${String(config.mode)} exited ${result.exitCode}: ${result.stderr.trim() || result.stdout.trim()}`,
    );
  }
  return JSON.parse(last) as T;
}

/** Where the packets go and what they may pretend to be: the tool's `lab` config. */
export interface ToolLab {
  target: { ip: string; tunnel: string; pods: string[]; interfaces: string[]; blackhole: string };
  peer: { ip: string; tunnel: string; blockFree: string };
  third: { ip: string; pods: string[] };
  stranger: string;
  broadcast: string;
}

export function toolLab(lab: Lab, names: { target: string; peer: string; third: string }, stranger: string): ToolLab {
  const target = lab.node(names.target).state;
  const peer = lab.node(names.peer).state;
  const third = lab.node(names.third).state;
  const pods = lab.podsOn(target.name);
  const block = target.blocks[0];
  // The last address but one of the target's block: no pod has it, so the blackhole route takes it.
  const blackhole = Ipv4Address.fromUint32(block.last().value - 1);
  if (pods.some((pod) => pod.ip.equals(blackhole))) throw new Error(`${blackhole} is a pod's address`);
  return {
    target: {
      ip: target.ip.toString(),
      tunnel: String(target.tunnelAddress),
      pods: pods.map((pod) => pod.ip.toString()),
      interfaces: pods.map((pod) => pod.hostInterface),
      blackhole: blackhole.toString(),
    },
    peer: {
      ip: peer.ip.toString(),
      tunnel: String(peer.tunnelAddress),
      blockFree: Ipv4Address.fromUint32(peer.blocks[0].first().value + 5).toString(),
    },
    third: { ip: third.ip.toString(), pods: lab.podsOn(third.name).map((pod) => pod.ip.toString()) },
    stranger,
    broadcast: lab.cluster.spec.network.cidr.last().toString(),
  };
}

/** What lab-tool adds up for exact packets: the target's counters must move by exactly this much. */
export interface Expected {
  received: number;
  delivered: number;
  forwarded: number;
  consumed: number;
  originated: number;
  /** rx on the pods' cali interfaces: their replies, and what was injected there. */
  caliRx: number;
  drops: Record<string, number>;
  events: Record<string, number>;
}

export interface WireResult {
  sent: number;
  errors: number;
  seconds: number;
  pps: number;
  errorSamples: string[];
  byCategory: Record<string, number>;
  expected?: Expected;
}

export interface InjectResult {
  requests: number;
  statuses: Record<string, number>;
  failures: string[];
  seconds: number;
  rate: number;
  byCategory: Record<string, number>;
  expected?: Expected;
}

/** The agent's resident memory in kB (it is PID 1 of its container). */
export async function agentRssKb(node: LabNodeHandle): Promise<number> {
  const status = await node.exec(['cat', '/proc/1/status']);
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status.stdout);
  if (!match) throw new Error(`no VmRSS in /proc/1/status on ${node.name}: ${status.stderr}`);
  return Number(match[1]);
}

/**
 * Packets the kernel dropped because the agent's raw IPIP socket was full (the `drops` column of /proc/net/raw,
 * local port 0004): they never reached the agent, so only the kernel can count them.
 */
export async function rawSocketDrops(node: LabNodeHandle): Promise<number> {
  const table = await node.exec(['cat', '/proc/net/raw']);
  const line = table.stdout.split('\n').find((row) => / 00000000:0004 /.test(row));
  if (!line) throw new Error(`no raw IPIP socket in /proc/net/raw on ${node.name}:\n${table.stdout}`);
  return Number(line.trim().split(/\s+/).at(-1));
}

/** after − before, field by field, for the totals, drops, events and the interfaces' rx. */
export function delta(before: DataplaneStats, after: DataplaneStats) {
  const sub = (a: Record<string, number>, b: Record<string, number>) =>
    Object.fromEntries(Object.keys(a).map((key) => [key, a[key] - (b[key] ?? 0)]));
  const caliRx = Object.entries(after.interfaces)
    .filter(([name]) => name.startsWith('cali'))
    .reduce((sum, [name, stats]) => sum + stats.rxPackets - (before.interfaces[name]?.rxPackets ?? 0), 0);
  return {
    received: after.received - before.received,
    originated: after.originated - before.originated,
    delivered: after.delivered - before.delivered,
    forwarded: after.forwarded - before.forwarded,
    consumed: after.consumed - before.consumed,
    dropped: after.dropped - before.dropped,
    drops: sub(after.drops, before.drops),
    events: sub(after.events, before.events),
    eth0Rx: after.interfaces.eth0.rxPackets - before.interfaces.eth0.rxPackets,
    caliRx,
  };
}

export type Delta = ReturnType<typeof delta>;

/** Only the reasons that moved, for messages and figures. */
export function nonZero(counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(counts)
      .filter(([, count]) => count !== 0)
      .sort(([, a], [, b]) => b - a),
  );
}

/** Waits until `done` holds for the node's stats (packets from other containers arrive asynchronously). */
export async function statsWhen(
  node: LabNodeHandle,
  done: (stats: DataplaneStats) => boolean,
  timeoutMs = 10_000,
): Promise<DataplaneStats> {
  const deadline = Date.now() + timeoutMs;
  let stats = await node.stats();
  while (!done(stats) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    stats = await node.stats();
  }
  return stats;
}

/** The figures of this run, by section, for the README; written to the temporary directory as JSON. */
export const FIGURES_FILE = path.join(tmpdir(), 'ipip-lab-robustness', `figures-${NIGHTLY ? 'nightly' : 'ci'}.json`);

export function recordFigures(section: string, figures: Record<string, unknown>): void {
  mkdirSync(path.dirname(FIGURES_FILE), { recursive: true });
  let all: Record<string, unknown> = {};
  try {
    all = JSON.parse(readFileSync(FIGURES_FILE, 'utf8')) as Record<string, unknown>;
  } catch {
    all = {};
  }
  all[section] = { ...figures, recordedAt: new Date().toISOString() };
  writeFileSync(FIGURES_FILE, `${JSON.stringify(all, null, 2)}\n`);
  console.info(`[robustness] ${section}: ${JSON.stringify(figures)}`);
}

/**
 * Issue 7, point 5: restarts. The first seed's three nodes run under Compose with `restart: unless-stopped`, as the
 * repository's docker-compose.yml runs them (test/fixtures/robustness-restart.compose.yml, 10.33.0.0/24, its own
 * project name). While pings flow, one agent is killed with SIGKILL (a crash: `docker kill` or `docker stop` would
 * count as a wanted stop, which restart policies respect); Compose starts it again, traffic through it resumes within
 * 5 s, and the other agents never fail: their containers never restart, their pings never miss a reply.
 *
 * CI kills two agents (worker-node01, which runs pods, then master-node); the nightly suite ten, alternating.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { unaccounted } from '../../src/node/userspace/dataplane.js';
import type { NodeStatsResponse } from '../../src/node/api.js';
import type { PingReport } from '../../src/node/userspace/pod/index.js';
import { buildImage } from '../../src/testing/index.js';
import { loadSpecFile } from '../../src/testing/spec-file.js';
import { RESTART_COMPOSE, RESTART_SPEC } from './support/specs.js';
import { NIGHTLY, recordFigures } from './support/tool.js';

const PROJECT = 'ipip-lab-robustness-restart';
const KILLS = NIGHTLY ? 10 : 2;
const PING_INTERVAL_MS = 100;
const PING_COUNT = 60;
/** How long after the pings start the agent is killed. */
const KILL_AFTER_MS = 2_000;
const RESUME_WITHIN_MS = 5_000;

const run = promisify(execFile);
const { cluster } = loadSpecFile(RESTART_SPEC);
const podA = cluster.pods.find((pod) => pod.node === 'worker-node01')!;
const podB = cluster.pods.find((pod) => pod.node === 'worker-node02')!;
const masterTunnel = String(cluster.nodes.find((node) => node.name === 'master-node')!.tunnelAddress);

function compose(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run('docker', ['compose', '--project-name', PROJECT, '--file', RESTART_COMPOSE, ...args], {
    timeout: 120_000,
  });
}

function container(service: string): string {
  return `${PROJECT}-${service}-1`;
}

async function inspect(
  service: string,
): Promise<{ pid: number; restarts: number; startedAt: string; running: boolean }> {
  const { stdout } = await run('docker', [
    'inspect',
    '--format',
    '{{.State.Pid}} {{.RestartCount}} {{.State.StartedAt}} {{.State.Running}}',
    container(service),
  ]);
  const [pid, restarts, startedAt, running] = stdout.trim().split(' ');
  return { pid: Number(pid), restarts: Number(restarts), startedAt, running: running === 'true' };
}

async function inContainer(service: string, command: string[]): Promise<string> {
  const { stdout } = await run('docker', ['exec', container(service), ...command], {
    timeout: 60_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}

/** The agent's log lines announcing it listens: one per start. */
async function starts(service: string): Promise<number> {
  const { stdout, stderr } = await run('docker', ['logs', container(service)]);
  return `${stdout}${stderr}`.split('\n').filter((line) => line.includes(': listening on ')).length;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A ping loop from pod B (worker-node02) to `to`, through its agent's API: the report of every sequence number. */
function pingLoop(to: string): Promise<PingReport> {
  const args = [
    'ipip-lab',
    'ping',
    to,
    '--from',
    podB.name,
    '-c',
    String(PING_COUNT),
    '-i',
    String(PING_INTERVAL_MS / 1000),
    '-W',
    '1',
    '-o',
    'json',
  ];
  return run('docker', ['exec', container('worker-node02'), ...args], { timeout: 60_000 }).then(
    ({ stdout }) => JSON.parse(stdout) as PingReport,
    // ping exits 1 when a reply went missing; its report is still on stdout.
    (error: { stdout?: string }) => JSON.parse(error.stdout ?? '') as PingReport,
  );
}

/** Sequence numbers without a reply. */
function lost(report: PingReport): number[] {
  const answered = new Set(report.results.filter((result) => result.kind === 'reply').map((result) => result.seq));
  return Array.from({ length: report.transmitted }, (_, i) => i + 1).filter((seq) => !answered.has(seq));
}

beforeAll(async () => {
  await buildImage();
  await compose('down', '--volumes', '--timeout', '2').catch(() => undefined);
  await compose('up', '--detach', '--no-build');
  for (const service of ['master-node', 'worker-node01', 'worker-node02']) {
    await waitFor(`${service}'s agent`, async () => (await starts(service)) >= 1);
  }
});

afterAll(async () => {
  await compose('down', '--volumes', '--timeout', '2').catch(() => undefined);
});

test(
  `${KILLS} agents killed with SIGKILL while pings flow: each back, traffic through it resumed within 5 s, the others untouched`,
  { timeout: 60_000 + KILLS * 20_000 },
  async () => {
    const outages: { victim: string; restartMs: number; outageMs: number; lost: number }[] = [];
    const node02 = await inspect('worker-node02');

    for (let kill = 0; kill < KILLS; kill++) {
      const victim = kill % 2 === 0 ? 'worker-node01' : 'master-node';
      const others = ['master-node', 'worker-node01', 'worker-node02'].filter((service) => service !== victim);
      const othersBefore = await Promise.all(others.map(inspect));
      const before = await inspect(victim);
      const startsBefore = await starts(victim);

      // Through the victim: to a pod on it, or to its own tunnel address. Elsewhere: the other of the two.
      const through = victim === 'worker-node01' ? podA.ip.toString() : masterTunnel;
      const elsewhere = victim === 'worker-node01' ? masterTunnel : podA.ip.toString();
      const loops = Promise.all([pingLoop(through), pingLoop(elsewhere)]);
      await new Promise((resolve) => setTimeout(resolve, KILL_AFTER_MS));

      const killedAt = performance.now();
      try {
        process.kill(before.pid, 'SIGKILL');
      } catch (error) {
        throw new Error(
          `cannot SIGKILL ${victim}'s agent (host PID ${before.pid}): this test needs the Docker host's PID namespace and root, as CI has (${String(error)})`,
        );
      }
      await waitFor(`${victim} to be restarted`, async () => (await starts(victim)) > startsBefore);
      const restartMs = performance.now() - killedAt;
      const [viaVictim, viaOthers] = await loops;

      // The victim came back under the restart policy, as a new process.
      const after = await inspect(victim);
      expect(after.running).toBe(true);
      expect(after.restarts).toBe(before.restarts + 1);
      expect(after.pid).not.toBe(before.pid);

      // Through it: one gap, no longer than 5 s, and every reply after it.
      const missing = lost(viaVictim);
      expect(
        missing.length,
        `no reply went missing through ${victim}: was it killed during the pings?`,
      ).toBeGreaterThan(0);
      const gap = missing.at(-1)! - missing[0] + 1;
      expect(missing).toEqual(Array.from({ length: gap }, (_, i) => missing[0] + i));
      const outageMs = (gap + 1) * PING_INTERVAL_MS;
      expect(outageMs).toBeLessThanOrEqual(RESUME_WITHIN_MS);
      expect(missing.at(-1)!).toBeLessThan(viaVictim.transmitted);
      // Elsewhere: not one reply lost, and the other agents are the same processes, never restarted.
      expect(lost(viaOthers), `pings that do not cross ${victim}`).toEqual([]);
      expect(await Promise.all(others.map(inspect))).toEqual(othersBefore);
      outages.push({ victim, restartMs: Math.round(restartMs), outageMs, lost: missing.length });
    }

    // worker-node02, whose pod sent every ping, was never touched; every agent's counters balance.
    expect(await inspect('worker-node02')).toEqual(node02);
    for (const service of ['master-node', 'worker-node01', 'worker-node02']) {
      const stats = JSON.parse(await inContainer(service, ['ipip-lab', 'stats', '-o', 'json'])) as NodeStatsResponse;
      expect(unaccounted(stats), service).toBe(0);
    }
    recordFigures('restart', {
      restartsSurvived: outages.length,
      outages,
      maxOutageMs: Math.max(...outages.map((outage) => outage.outageMs)),
      maxRestartMs: Math.max(...outages.map((outage) => outage.restartMs)),
    });
  },
);

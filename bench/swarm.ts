/*
 * The swarm lab beside the compose lab, in the same run: the same generated cluster (10 nodes, one pod each, the
 * kernel dataplane, an etcd) once as `ipip-lab gen-spec --swarm` deployed on a one-machine swarm (Docker's overlay,
 * VXLAN between the node containers), once as `gen-spec --compose --datastore` brought up by `docker compose up`
 * (an internal bridge), as kind create cluster runs it. The two run side by side, and each round measures one right
 * after the other, alternating which goes first:
 * - all-pairs time: every pod pings every other pod once (90 pings, one `docker exec` per sender);
 * - forwarding: a flood ping (`ping -f -c 2000`, one request in flight) from the first worker's pod to the last's,
 *   in replies per second: the agents' tunl0 and raw sockets on both ends, and the underlay between them.
 * Each ratio is the swarm lab's figure over the compose lab's, the median of the rounds' pairs.
 * $IPIP_LAB_BENCH_SWARM_NODES sets the nodes (default 10); $IPIP_LAB_BENCH_ROUNDS the rounds (default 5).
 * The swarm is made for the run and left after it, unless the engine was in one already.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCli } from '../src/cli/program.js';
import {
  buildImage,
  docker,
  joinSwarm,
  leaveSwarm,
  podsIn,
  SwarmLab,
  unreachablePods,
  until,
  type NodePod,
  type SwarmMembership,
} from '../src/testing/index.js';
import { median, resultOf, type BenchResult } from './result.js';

const STACK = 'ipip-lab-bench-swarm';
const COMPOSE_PROJECT = 'ipip-lab-bench-compose';
const SWARM_SUBNET = '10.58.0.0/24';
const COMPOSE_SUBNET = '10.57.0.0/24';
const FLOOD_COUNT = 2000;
const READY_WITHIN_MS = 240_000;

const log = (line: string): void => void process.stderr.write(`swarm: ${line}\n`);

function setting(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 2) throw new Error(`$${name} must be a whole number of at least 2`);
  return value;
}

interface Measured {
  readonly allPairsMs: number;
  readonly repliesPerSecond: number;
}

/** One lab's round: the all-pairs sweep, then the flood ping between the first worker's pod and the last's. */
async function round(pods: readonly NodePod[]): Promise<Measured> {
  const started = Date.now();
  const lost = await unreachablePods(pods);
  const allPairsMs = Date.now() - started;
  if (lost.length > 0) throw new Error(`${lost.length} pairs never answered: ${lost.slice(0, 5).join(', ')}`);
  const [from, to] = [pods[1], pods[pods.length - 1]];
  const output = await docker(
    'exec',
    from.container,
    'ip',
    'netns',
    'exec',
    from.netns,
    'ping',
    '-f',
    '-q',
    '-c',
    String(FLOOD_COUNT),
    '-w',
    '60',
    to.ip,
  );
  const summary = /(\d+) received.*time (\d+)ms/.exec(output);
  if (!summary) throw new Error(`no ping summary in: ${output}`);
  return { allPairsMs, repliesPerSecond: Number(summary[1]) / (Number(summary[2]) / 1000) };
}

async function cliOrThrow(...argv: string[]): Promise<void> {
  let errors = '';
  const code = await runCli(argv, { out: () => undefined, err: (text) => (errors += text) });
  if (code !== 0) throw new Error(`ipip-lab ${argv.join(' ')} exited ${code}: ${errors}`);
}

export async function benchSwarm(): Promise<BenchResult[]> {
  process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
  const nodes = setting('IPIP_LAB_BENCH_SWARM_NODES', 10);
  const rounds = setting('IPIP_LAB_BENCH_ROUNDS', 5);
  const folder = mkdtempSync(path.join(tmpdir(), 'ipip-lab-bench-swarm-'));
  let membership: SwarmMembership | undefined;
  const composeFile = path.join(folder, 'compose.yml');
  const compose = (...args: string[]) => docker('compose', '-f', composeFile, '-p', COMPOSE_PROJECT, ...args);
  try {
    log('building the node image');
    await buildImage();
    membership = await joinSwarm();
    const stackFile = path.join(folder, 'swarm.stack.yml');
    const generate = (cidr: string, ...files: string[]) =>
      cliOrThrow('gen-spec', '--nodes', String(nodes), '--pods-per-node', '1', '--cidr', cidr, ...files);
    await generate(SWARM_SUBNET, '-o', path.join(folder, 'swarm.yaml'), '--swarm', stackFile);
    await generate(COMPOSE_SUBNET, '-o', path.join(folder, 'compose.yaml'), '--compose', composeFile, '--datastore');
    await compose('down', '-v').catch(() => undefined);
    log(`starting ${nodes} nodes with docker compose and ${nodes} on the swarm's overlay`);
    const [, swarm] = await Promise.all([
      compose('up', '-d', '--wait'),
      SwarmLab.deploy({
        stack: STACK,
        stackFile,
        nodes,
        controlPlane: 'kind-control-plane',
        readyWithinMs: READY_WITHIN_MS,
      }),
    ]);
    const composeContainers = new Map<string, string>();
    for (const line of (await compose('ps', '--format', '{{.Service}} {{.ID}}')).split('\n').filter(Boolean)) {
      const [service, id] = line.split(' ');
      if (service !== 'etcd') composeContainers.set(service, id);
    }
    // Every agent must have its pods and its peers' routes before the first sweep counts.
    await until(
      async () => (await unreachablePods(await podsIn(composeContainers), 1)).length === 0,
      READY_WITHIN_MS,
      'the compose lab to answer every ping',
      1000,
    );
    const ordered = (pods: NodePod[]) => pods.sort((a, b) => a.node.localeCompare(b.node, 'en', { numeric: true }));
    const composePods = ordered(await podsIn(composeContainers));
    const swarmPods = ordered(await swarm.pods());
    // A first sweep of each, unmeasured: every ARP entry and route in place before the clock runs.
    await Promise.all([unreachablePods(composePods), unreachablePods(swarmPods)]);
    const pairs: { compose: Measured; swarm: Measured }[] = [];
    for (let i = 0; i < rounds; i++) {
      const swarmFirst = i % 2 === 1;
      const first = await round(swarmFirst ? swarmPods : composePods);
      const second = await round(swarmFirst ? composePods : swarmPods);
      pairs.push(swarmFirst ? { swarm: first, compose: second } : { compose: first, swarm: second });
      log(
        `round ${i + 1}/${rounds}: all pairs ${pairs[i].swarm.allPairsMs} ms (swarm) vs ${pairs[i].compose.allPairsMs} ms` +
          ` (compose); flood ${pairs[i].swarm.repliesPerSecond.toFixed(0)} vs ${pairs[i].compose.repliesPerSecond.toFixed(0)}/s`,
      );
    }
    const pings = nodes * (nodes - 1);
    const note =
      `${nodes} nodes, one pod each, kernel dataplane and etcd in both; median of ${rounds} paired rounds; ` +
      'the compose lab is gen-spec --compose --datastore, brought up with docker compose up';
    return [
      resultOf(
        `swarm lab, all pairs (${pings} pod pings)`,
        'ms',
        median(pairs.map((pair) => pair.swarm.allPairsMs)),
        { name: 'compose lab', value: median(pairs.map((pair) => pair.compose.allPairsMs)) },
        undefined,
        { note, pairedRatio: median(pairs.map((pair) => pair.swarm.allPairsMs / pair.compose.allPairsMs)) },
      ),
      resultOf(
        `swarm lab, flood ping pod to pod (${FLOOD_COUNT})`,
        'replies/s',
        median(pairs.map((pair) => pair.swarm.repliesPerSecond)),
        { name: 'compose lab', value: median(pairs.map((pair) => pair.compose.repliesPerSecond)) },
        undefined,
        { pairedRatio: median(pairs.map((pair) => pair.swarm.repliesPerSecond / pair.compose.repliesPerSecond)) },
      ),
    ];
  } finally {
    await compose('down', '-v').catch((error: unknown) => log(`docker compose down: ${String(error)}`));
    await SwarmLab.remove(STACK).catch((error: unknown) => log(`removing the stack: ${String(error)}`));
    if (membership) await leaveSwarm(membership);
    rmSync(folder, { recursive: true, force: true });
  }
}

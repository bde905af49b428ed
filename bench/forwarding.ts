/*
 * End-to-end forwarding through a node agent in its container, against a C relay on the same network.
 *
 * The lab is bench/fixtures/forwarding.yaml on its own internal Docker network (10.40.0.0/24). Node `load` is not an
 * agent: a stranger container at its address runs bench/c/ipip-bench.c, standing in for a kernel node and its pod.
 * It tunnels ICMP echo requests from its pod to a dut node's pod (inner packets of 84 bytes, a default ping, and
 * 1400 bytes) and counts the IPIP echo replies. Each counted reply crossed the agent's whole data path twice over:
 * raw-socket receive, decapsulation, route, delivery to the simulated pod, its reply, route, encapsulation, send.
 *
 * The baseline is the practical ceiling of this setup: the same tool in `reflect` mode in a container like the
 * others (10.40.0.20), which sends every request straight back as the reply the pod would give (addresses swapped,
 * ICMP type set, checksums fixed) with recvmmsg/sendmmsg batches; the load tool cannot tell the two apart. It sits
 * at an address of its own rather than in a dut container, since the agent's raw socket there would answer too.
 *
 * One dut node per agent configuration: each `--underlay` the agent's `--help` offers (or $IPIP_LAB_BENCH_UNDERLAYS,
 * comma-separated; the agent's default alone when it has no such option), and the default underlay again with
 * `ipip-lab capture -i any -w /dev/null` running in its container: issue 5's budget, a capture of every interface
 * slowing forwarding by at most 10 %, at this benchmark's rates. The machine's speed changes from second to second, so every run of an
 * agent is paired with a run of the relay right before or after it (alternately), round after round, and each ratio
 * is the median of the pairs' ratios:
 * - the highest rate: --window requests in flight, replies per second;
 * - loss: open loop at 80 % of that configuration's own median highest rate, where the kernel's drop counters of the
 *   target's and the load tool's sockets tell where packets were lost;
 * - round-trip time: one request in flight at a time, p50 and p99.
 * On a machine with two CPUs or more, the load tool is pinned to the first and every target to the second, as if they
 * were separate machines: unpinned, the scheduler's placement (same CPU or not) moved round trips between ~25 and
 * ~90 µs from one run to the next, while pinned runs repeat within about 10 %.
 * $IPIP_LAB_BENCH_ROUNDS sets the number of rounds (default 5); the whole run takes a few minutes at most.
 */
import { execFile } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildImage, DEFAULT_IMAGE, startLab, type Lab, type StrangerHandle } from '../src/testing/index.js';
import { buildCTool } from './c-tool.js';
import { median, resultOf, type BenchResult } from './result.js';

const SPEC = fileURLToPath(new URL('../../bench/fixtures/forwarding.yaml', import.meta.url));
const LOAD_NODE = 'load';
/** The fixture's agent nodes, one per agent configuration measured. */
const DUT_NODES = ['dut-1', 'dut-2', 'dut-3', 'dut-4'];
const BASELINE_IP = '10.40.0.20';
const TOOL = '/usr/local/bin/ipip-bench';
/** Inner packet sizes: a default ping (56 data bytes), and a large packet that still fits the tunnel MTU of 1480. */
const SIZES = [84, 1400] as const;
const TARGET_SIZE = 84;
/** Enough requests in flight to keep both the agent and the relay busy, few enough for a raw socket's buffer. */
const WINDOW = 32;
const MAX_RATE_SECONDS = 1;
const WARM_UP_SECONDS = 1;
const LOSS_RATE_FRACTION = 0.8;
const LOSS_ROUNDS = 3;
const LOSS_RUN_SECONDS = 2;
const PINGS_PER_ROUND = 1000;
const PINGPONG_SECONDS = 5;
const ANSWER_TIMEOUT_MS = 30_000;
const PROBE_SECONDS = 0.5;
const DEFAULT_ROUNDS = 5;
/** The relay's own bound, in case the benchmark dies before removing its containers. */
const RELAY_LIFETIME_SECONDS = 900;
const TARGET_THROUGHPUT_RATIO = 0.6;
const TARGET_RTT_RATIO = 2;
const LOAD_CPU = '0';
const TARGET_CPU = '1';

interface Target {
  /** e.g. `agent --underlay native`, `C relay`. */
  readonly label: string;
  /** The outer destination: a dut node or the relay. */
  readonly ip: string;
  /** The inner destination: that node's pod (the relay answers for dut-1's). */
  readonly podIp: string;
  /** What to show when it does not answer: the agent's or the relay's log. */
  readonly logs: () => Promise<string>;
  /** Packets its kernel has dropped so far at the raw IPIP socket's full receive buffer (/proc/net/raw). */
  readonly socketDrops: () => Promise<number>;
}

interface AgentConfiguration {
  readonly label: string;
  readonly args: readonly string[];
  /** The configuration this one is, plus a capture of every interface running in the node's container. */
  readonly capturing?: AgentConfiguration;
  /** Runs the kernel dataplane: the node container's kernel forwards to its pod, the agent drives tunl0. */
  readonly kernel?: boolean;
}

/** $IPIP_LAB_BENCH_CAPTURE replaces `-i any`, e.g. `-i eth0` or `-i any -f udp`, to see what another capture costs. */
const CAPTURE_COMMAND = [
  'ipip-lab',
  'capture',
  ...(process.env.IPIP_LAB_BENCH_CAPTURE ?? '-i any').split(/\s+/).filter(Boolean),
  '-w',
  '/dev/null',
];
const TARGET_CAPTURE_RATIO = 0.9;

interface BlastReport {
  readonly sent: number;
  readonly received: number;
  readonly lost: number;
  readonly seconds: number;
  readonly offeredPerSecond: number;
  readonly repliesPerSecond: number;
  readonly windowStalls: number;
  /** Replies dropped at the load tool's own socket. */
  readonly receiveDrops: number;
}

/** The open-loop runs of one target and size, summed. */
interface Loss {
  readonly planned: number;
  readonly sent: number;
  readonly seconds: number;
  readonly lost: number;
  /** Of `lost`: dropped at the target's socket and at the load tool's. */
  readonly atTarget: number;
  readonly atLoad: number;
}

interface PingpongReport {
  readonly sent: number;
  readonly received: number;
  readonly p50Us: number;
  readonly p99Us: number;
}

type Size = (typeof SIZES)[number];

const log = (line: string): void => void process.stderr.write(`forwarding: ${line}\n`);

function rounds(): number {
  const text = process.env.IPIP_LAB_BENCH_ROUNDS;
  if (text === undefined) return DEFAULT_ROUNDS;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > 50) throw new Error(`IPIP_LAB_BENCH_ROUNDS=${text}: give 1..50`);
  return value;
}

/**
 * The agent configurations to measure: the default, then each underlay the agent offers. Read from `ipip-lab node
 * --help` in the node image (commander lists an option's choices), unless the environment names them.
 */
async function agentConfigurations(image: string): Promise<AgentConfiguration[]> {
  const { stdout } = await promisify(execFile)('docker', [
    'run',
    '--rm',
    '--network',
    'none',
    '--entrypoint',
    'ipip-lab',
    image,
    'node',
    '--help',
  ]);
  const help = stdout.replace(/\s+/g, ' ');
  const option = /--underlay <[^>]+>(.*?)(?= --[a-z]|$)/.exec(help)?.[1];
  const listed = option
    ? [...(/\(choices: ([^)]*)\)/.exec(option)?.[1].matchAll(/"([^"]+)"/g) ?? [])].map((m) => m[1])
    : [];
  const fromEnvironment = process.env.IPIP_LAB_BENCH_UNDERLAYS;
  const underlays =
    fromEnvironment === undefined
      ? listed
      : fromEnvironment
          .split(',')
          .map((name) => name.trim())
          .filter(Boolean);
  if (!option && underlays.length > 0)
    throw new Error(`the agent has no --underlay option, but ${underlays.join(', ')} were asked for`);
  const plain: AgentConfiguration[] =
    underlays.length === 0
      ? [{ label: 'agent (default underlay)', args: [] }]
      : underlays.map((name) => ({ label: `agent --underlay ${name}`, args: ['--underlay', name] }));
  const configurations: AgentConfiguration[] = [
    ...plain,
    { label: `${plain[0].label}, capturing every interface`, args: plain[0].args, capturing: plain[0] },
    // TUN in, raw socket out, and back: the kernel-backed node, on the default underlay.
    { label: `${plain[0].label}, kernel dataplane`, args: [...plain[0].args, '--dataplane', 'kernel'], kernel: true },
  ];
  if (configurations.length > DUT_NODES.length) {
    log(
      `measuring the first ${DUT_NODES.length} of ${configurations.map((c) => c.label).join('; ')}: the fixture has ${DUT_NODES.length} dut nodes`,
    );
  }
  return configurations.slice(0, DUT_NODES.length);
}

class LoadTool {
  constructor(
    private readonly load: StrangerHandle,
    private readonly loadPodIp: string,
  ) {}

  async run<T>(mode: 'blast' | 'pingpong', target: Target, size: Size, options: Record<string, number>): Promise<T> {
    const command = [
      TOOL,
      mode,
      '--src',
      this.load.ip,
      '--dst',
      target.ip,
      '--inner-src',
      this.loadPodIp,
      '--inner-dst',
      target.podIp,
      '--size',
      String(size),
      ...Object.entries(options).flatMap(([flag, value]) => [`--${flag}`, String(value)]),
    ];
    const { exitCode, stdout, stderr } = await this.load.container.exec(command);
    if (exitCode !== 0) throw new Error(`${command.join(' ')} exited ${exitCode}: ${stderr.trim()}`);
    return JSON.parse(stdout) as T;
  }

  maxRate(target: Target, size: Size, seconds: number): Promise<BlastReport> {
    return this.run<BlastReport>('blast', target, size, { window: WINDOW, duration: seconds });
  }

  paced(target: Target, size: Size, rate: number): Promise<BlastReport> {
    return this.run<BlastReport>('blast', target, size, { rate: Math.round(rate), duration: LOSS_RUN_SECONDS });
  }

  pingpong(target: Target, size: Size, count: number, seconds: number): Promise<PingpongReport> {
    return this.run<PingpongReport>('pingpong', target, size, { count, duration: seconds });
  }
}

/** Confines a running container to one CPU (a cgroup cpuset), with no restart. */
async function pinToCpu(containerId: string, cpu: string): Promise<void> {
  await promisify(execFile)('docker', ['update', '--cpuset-cpus', cpu, containerId]);
}

/** The drops column of /proc/net/raw, summed over the IPIP sockets (local port field 0004: the protocol). */
function ipipSocketDrops(procNetRaw: string): number {
  return procNetRaw
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields[1]?.endsWith(':0004'))
    .reduce((sum, fields) => sum + Number(fields[fields.length - 1]), 0);
}

/** Every round visits the targets in the other order, so that none is always measured first or last. */
function inRoundOrder<T>(items: readonly T[], round: number): readonly T[] {
  return round % 2 === 0 ? items : [...items].reverse();
}

const rate = (value: number): string => (value >= 1000 ? `${(value / 1000).toFixed(1)}k` : value.toFixed(0));

/** One figure of one agent configuration, each sample taken right next to one of the relay's. */
interface Paired {
  readonly agent: number[];
  readonly baseline: number[];
}

const medianRatio = (paired: Paired): number => median(paired.agent.map((value, i) => value / paired.baseline[i]));

interface Figures {
  readonly maxRate: Map<string, Paired>;
  readonly p50: Map<string, Paired>;
  readonly p99: Map<string, Paired>;
  readonly loss: Map<string, Loss>;
}

const key = (target: Target, size: Size): string => `${target.label} ${size}`;

function samplesOf(map: Map<string, Paired>, at: string): Paired {
  let paired = map.get(at);
  if (paired === undefined) map.set(at, (paired = { agent: [], baseline: [] }));
  return paired;
}

/**
 * A container's first packets can go nowhere: for several seconds after it starts, a fresh veth on Docker's bridge
 * may transmit nothing and get no answer to ARP. So each target is asked until it answers, before anything counts.
 */
async function waitUntilAnswering(tool: LoadTool, target: Target): Promise<void> {
  for (const deadline = Date.now() + ANSWER_TIMEOUT_MS; Date.now() < deadline;) {
    if ((await tool.pingpong(target, TARGET_SIZE, 1, PROBE_SECONDS)).received > 0) return;
  }
  const logs = (await target.logs()).trim().split('\n').slice(-20).join('\n');
  throw new Error(
    `${target.label} (${target.ip}) sent no echo reply in ${ANSWER_TIMEOUT_MS / 1000} s; its log ends:\n${logs}`,
  );
}

/**
 * Runs `measure` on each agent and on the relay right next to it, for every round, agent and size, each pair in the
 * other order than the last: the machine's speed changes from second to second, rarely within a pair.
 */
async function inPairs(
  agents: readonly Target[],
  baseline: Target,
  roundCount: number,
  measure: (target: Target, size: Size, side: keyof Paired, at: string) => Promise<void>,
): Promise<void> {
  let agentFirst = true;
  for (let round = 0; round < roundCount; round++) {
    for (const agent of inRoundOrder(agents, round)) {
      for (const size of SIZES) {
        const pair = [
          { target: agent, side: 'agent' as const },
          { target: baseline, side: 'baseline' as const },
        ];
        for (const { target, side } of agentFirst ? pair : pair.reverse())
          await measure(target, size, side, key(agent, size));
        agentFirst = !agentFirst;
      }
    }
  }
}

async function measure(
  tool: LoadTool,
  agents: readonly Target[],
  baseline: Target,
  roundCount: number,
): Promise<Figures> {
  const figures: Figures = { maxRate: new Map(), p50: new Map(), p99: new Map(), loss: new Map() };
  const targets = [...agents, baseline];
  for (const target of targets) {
    await waitUntilAnswering(tool, target);
    // Compiles the agent's hot path before anything is timed.
    for (const size of SIZES) await tool.maxRate(target, size, WARM_UP_SECONDS);
  }
  await inPairs(agents, baseline, roundCount, async (target, size, side, at) => {
    const report = await tool.maxRate(target, size, MAX_RATE_SECONDS);
    samplesOf(figures.maxRate, at)[side].push(report.repliesPerSecond);
    log(`highest rate, ${target.label}, ${size} B: ${rate(report.repliesPerSecond)}/s`);
  });
  for (let round = 0; round < LOSS_ROUNDS; round++) {
    for (const target of inRoundOrder(targets, round)) {
      for (const size of SIZES) {
        const highest =
          target === baseline
            ? median(agents.flatMap((agent) => figures.maxRate.get(key(agent, size))!.baseline))
            : median(figures.maxRate.get(key(target, size))!.agent);
        const planned = LOSS_RATE_FRACTION * highest;
        const dropsBefore = await target.socketDrops();
        const report = await tool.paced(target, size, planned);
        const atTarget = (await target.socketDrops()) - dropsBefore;
        const sum = figures.loss.get(key(target, size)) ?? {
          planned,
          sent: 0,
          seconds: 0,
          lost: 0,
          atTarget: 0,
          atLoad: 0,
        };
        figures.loss.set(key(target, size), {
          planned,
          sent: sum.sent + report.sent,
          seconds: sum.seconds + report.seconds,
          lost: sum.lost + report.lost,
          atTarget: sum.atTarget + atTarget,
          atLoad: sum.atLoad + report.receiveDrops,
        });
        log(
          `round ${round + 1}/${LOSS_ROUNDS} loss at ${rate(planned)}/s planned, ${rate(report.offeredPerSecond)}/s offered, ` +
            `${target.label}, ${size} B: ${report.lost} of ${report.sent} (${atTarget} at its socket, ${report.receiveDrops} at the load's)`,
        );
      }
    }
  }
  await inPairs(agents, baseline, roundCount, async (target, size, side, at) => {
    const report = await tool.pingpong(target, size, PINGS_PER_ROUND, PINGPONG_SECONDS);
    samplesOf(figures.p50, at)[side].push(report.p50Us);
    samplesOf(figures.p99, at)[side].push(report.p99Us);
    log(`round trip, ${target.label}, ${size} B: p50 ${report.p50Us} µs, p99 ${report.p99Us} µs`);
  });
  return figures;
}

function describeLoss(loss: Loss): string {
  const elsewhere = loss.lost - loss.atTarget - loss.atLoad;
  return (
    `${LOSS_ROUNDS} runs of ${LOSS_RUN_SECONDS} s, ${rate(loss.planned)}/s planned, ${rate(loss.sent / loss.seconds)}/s offered, ` +
    `${loss.sent} sent, ${loss.lost} lost: ${loss.atTarget} dropped at its socket's full buffer, ${loss.atLoad} at the ` +
    `load tool's, ${elsewhere} elsewhere`
  );
}

/**
 * The capture's own summary: records it left out (never packets: forwarding does not wait), over its CPU share or
 * because its writer fell behind.
 */
function droppedRecords(summary: string): { captured: number; dropped: number } {
  const captured = /(\d+) packets captured/.exec(summary);
  const dropped = /(\d+) packets dropped because the capture fell behind/.exec(summary);
  if (!captured || !dropped) throw new Error(`cannot read the capture's summary: ${summary.trim()}`);
  return { captured: Number(captured[1]), dropped: Number(dropped[1]) };
}

/**
 * What a capture of every interface costs: the capturing agent's highest rate against the same agent's without one,
 * each first divided by its paired relay run (the machine's speed of the moment), then the two medians compared.
 */
function captureResults(
  figures: Figures,
  capturing: Target,
  plain: Target,
  summary: { captured: number; dropped: number },
  roundCount: number,
): BenchResult[] {
  return [
    ...SIZES.map((size) => {
      const withCapture = figures.maxRate.get(key(capturing, size))!;
      const without = figures.maxRate.get(key(plain, size))!;
      const ratio = medianRatio(withCapture) / medianRatio(without);
      return resultOf(
        `forwarding, ${size} B inner packets, highest rate with \`${CAPTURE_COMMAND.join(' ')}\` running (${roundCount} rounds)`,
        'packets/s each way',
        median(withCapture.agent),
        { name: `${plain.label}, no capture`, value: median(without.agent) },
        { text: `>= ${TARGET_CAPTURE_RATIO.toFixed(2)}x`, pass: ratio >= TARGET_CAPTURE_RATIO },
        { pairedRatio: ratio, note: 'ratio: each median first taken relative to its paired C relay runs' },
      );
    }),
    resultOf(
      "capture records dropped during the forwarding runs, to keep to the capture's CPU share (or the writer was behind)",
      'records',
      summary.dropped,
      { name: 'records captured', value: summary.captured },
    ),
  ];
}

function results(figures: Figures, agents: readonly Target[], baseline: Target, roundCount: number): BenchResult[] {
  const pairs = `median of ${roundCount} pairs of runs`;
  return agents.flatMap((agent) =>
    SIZES.flatMap((size) => {
      const targeted = size === TARGET_SIZE;
      const where = `${agent.label}, ${size} B inner packets`;
      const at = key(agent, size);
      const throughput = figures.maxRate.get(at)!;
      const throughputRatio = medianRatio(throughput);
      const loss = figures.loss.get(at)!;
      const baselineLoss = figures.loss.get(key(baseline, size))!;
      const p50 = figures.p50.get(at)!;
      const p50Ratio = medianRatio(p50);
      const p99 = figures.p99.get(at)!;
      return [
        resultOf(
          `forwarding, ${where}: highest rate (${WINDOW} in flight, ${pairs})`,
          'packets/s each way',
          median(throughput.agent),
          { name: baseline.label, value: median(throughput.baseline) },
          targeted
            ? { text: `>= ${TARGET_THROUGHPUT_RATIO.toFixed(2)}x`, pass: throughputRatio >= TARGET_THROUGHPUT_RATIO }
            : undefined,
          { pairedRatio: throughputRatio },
        ),
        resultOf(
          `forwarding, ${where}: lost at 80 % of that rate`,
          'packets',
          loss.lost,
          { name: `${baseline.label}, at 80 % of its rate`, value: baselineLoss.lost },
          targeted ? { text: '0', pass: loss.lost === 0 } : undefined,
          { note: `agent: ${describeLoss(loss)}. C relay: ${describeLoss(baselineLoss)}.` },
        ),
        resultOf(
          `ping-pong, ${where}: round trip p50 (one in flight, ${PINGS_PER_ROUND} per run, ${pairs})`,
          'µs',
          median(p50.agent),
          { name: baseline.label, value: median(p50.baseline) },
          targeted ? { text: `<= ${TARGET_RTT_RATIO}x`, pass: p50Ratio <= TARGET_RTT_RATIO } : undefined,
          { pairedRatio: p50Ratio },
        ),
        resultOf(
          `ping-pong, ${where}: round trip p99`,
          'µs',
          median(p99.agent),
          { name: baseline.label, value: median(p99.baseline) },
          undefined,
          { pairedRatio: medianRatio(p99) },
        ),
      ];
    }),
  );
}

export async function benchForwarding(): Promise<BenchResult[]> {
  // testcontainers' reaper image cannot be pulled offline; the lab below is removed by stop(), or by the next run.
  process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
  const roundCount = rounds();
  log('building the node image and bench/c/ipip-bench.c');
  const [tool] = await Promise.all([buildCTool(log), buildImage(DEFAULT_IMAGE)]);
  log(`ipip-bench built with ${tool.compiler}`);
  const configurations = await agentConfigurations(DEFAULT_IMAGE);
  const nodes = DUT_NODES.slice(0, configurations.length);
  const argsByNode = new Map(nodes.map((node, i) => [node, configurations[i].args]));
  log(`starting ${nodes.length} agent(s): ${configurations.map((c) => c.label).join('; ')}`);
  let lab: Lab | undefined;
  try {
    const kernelNodes = new Set(nodes.filter((_, i) => configurations[i].kernel));
    lab = await startLab({
      spec: SPEC,
      image: DEFAULT_IMAGE,
      nodes,
      // The load tool stands in the load node's place and speaks no BGP: the agents take its block's route from the
      // spec, as every route was before the mesh. What is measured is forwarding, not the control plane.
      agentArgs: (node) => ['--routes', 'spec', ...(argsByNode.get(node) ?? [])],
      dataplane: (node) => (kernelNodes.has(node) ? 'kernel' : 'userspace'),
    });
    const podOf = (node: string): string => lab!.podsOn(node)[0].ip.toString();
    const loadIp = lab.cluster.nodes.find((node) => node.name === LOAD_NODE)!.ip.toString();
    const [load, relay] = await Promise.all([lab.startStranger(loadIp), lab.startStranger(BASELINE_IP)]);
    const binary = [{ source: tool.path, target: TOOL, mode: 0o755 }];
    await Promise.all([load.container.copyFilesToContainer(binary), relay.container.copyFilesToContainer(binary)]);
    // The shell returns at once; the relay waits for packets in the background until the lab goes.
    const started = await relay.container.exec([
      'sh',
      '-c',
      `${TOOL} reflect --lifetime ${RELAY_LIFETIME_SECONDS} > /tmp/reflect.log 2>&1 &`,
    ]);
    if (started.exitCode !== 0) throw new Error(`the C relay did not start: ${started.output.trim()}`);

    if (os.cpus().length >= 2) {
      log(`pinning the load tool to CPU ${LOAD_CPU}, the agents and the relay to CPU ${TARGET_CPU}`);
      const targetContainers = [relay.container, ...nodes.map((node) => lab!.node(node).container)];
      await Promise.all([
        pinToCpu(load.container.getId(), LOAD_CPU),
        ...targetContainers.map((container) => pinToCpu(container.getId(), TARGET_CPU)),
      ]);
    }
    const agents = nodes.map((node, i): Target => {
      const handle = lab!.node(node);
      return {
        label: configurations[i].label,
        ip: handle.ip,
        podIp: podOf(node),
        logs: () => handle.logs(),
        socketDrops: async () => ipipSocketDrops((await handle.exec(['cat', '/proc/net/raw'])).stdout),
      };
    });
    const baseline: Target = {
      label: 'C relay (recvmmsg/sendmmsg)',
      ip: BASELINE_IP,
      podIp: podOf(nodes[0]),
      logs: async () => (await relay.container.exec(['cat', '/tmp/reflect.log'])).stdout,
      socketDrops: async () => ipipSocketDrops((await relay.container.exec(['cat', '/proc/net/raw'])).stdout),
    };
    const captures = new Map<number, () => Promise<string>>();
    for (const [i, configuration] of configurations.entries()) {
      if (configuration.capturing) {
        const capture = {
          command: CAPTURE_COMMAND,
          started: 'capturing on',
          stopped: 'packets captured',
          name: 'ipip-lab capture',
        };
        captures.set(i, await lab.node(nodes[i]).runInBackground(capture));
      }
    }
    const figures = await measure(new LoadTool(load, podOf(LOAD_NODE)), agents, baseline, roundCount);
    const plainAgents = agents.filter((_, i) => !configurations[i].capturing);
    const captureFigures = [];
    for (const [i, stop] of captures) {
      const plain = agents[configurations.indexOf(configurations[i].capturing!)];
      captureFigures.push(...captureResults(figures, agents[i], plain, droppedRecords(await stop()), roundCount));
    }
    return [...results(figures, plainAgents, baseline, roundCount), ...captureFigures];
  } finally {
    await lab?.stop();
  }
}

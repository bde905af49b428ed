/**
 * `ipip-lab capture`: tcpdump -w for the emulated interfaces. The node's agent captures and streams a pcapng (or
 * pcap) file over its control API as packets arrive; this command writes the stream to a file (by default in
 * /captures, which the lab mounts from the host's ./captures) or to stdout for a live Wireshark or tshark.
 */
import { closeSync, createWriteStream, existsSync, openSync, rmSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { Option, type Command } from 'commander';
import { nodeByName, podByName, type ClusterState, type NodeState } from '../../calico/index.js';
import {
  CAPTURE_DEFAULTS,
  CAPTURE_HEADER,
  CAPTURE_LIMITS,
  CAPTURE_STATS_FIELDS,
  hasFields,
} from '../../node/api-protocol.js';
import type { CaptureStats } from '../../node/capture/index.js';
import { loadCluster, resolveNode, resolveSpecPath } from '../cluster-source.js';
import { integer, seconds, specOption, type CommonOptions, type Io } from '../common.js';
import { ExitStatus, UsageError } from '../errors.js';
import { agentFor, type AgentClient } from './agent-client.js';

/** Where docker-compose.yml mounts the host's ./captures in every node container. */
const CAPTURES_DIRECTORY = '/captures';
/** Progress on stderr: a line rewritten this often on a terminal, a new line this often in a log. */
const PROGRESS_TERMINAL_MS = 1000;
const PROGRESS_LOG_MS = 10_000;
/** After Ctrl-C, how long the agent may take to send what it still holds before the stream is cut. */
const STOP_GRACE_MS = 3000;
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

interface CaptureCommandOptions extends CommonOptions {
  node?: string;
  interface: string[];
  filter?: string;
  count?: number;
  duration?: number;
  write?: string;
  format: 'pcapng' | 'pcap';
}

const HELP = `
Interfaces: eth0 shows the IPIP packets exactly as the node sent and received them (outer header, protocol 4, the
pod packet inside); tunl0 the pod packets after decapsulation or before encapsulation; a cali interface (or the
name of a pod, which stands for its cali interface) that pod's own traffic; any all of them. In pcapng every packet
keeps its interface's name, and each interface's description names the node (and the pod).

The filter takes tcpdump's words: host, net, port, proto icmp|udp|tcp|ipip, src/dst, and/or/not, parentheses. They
look at the outermost header; "inner WORDS" looks inside IPIP, e.g. inner host 192.168.158.1 on eth0.

Examples (in the lab: docker compose exec worker-node01 ipip-lab capture …):
  ipip-lab capture -i eth0 -c 10                              # to /captures/worker-node01-eth0-TIME.pcapng
  ipip-lab capture -i eth0 -i tunl0 -i POD --duration 30 -w /captures/ping.pcapng
  ipip-lab capture -i eth0 inner host 192.168.158.1
From the host, live in Wireshark (-T: no terminal, the bytes go through untouched):
  docker compose exec -T worker-node01 ipip-lab capture -i eth0 -w - | wireshark -k -i -`;

export function registerCaptureCommand(program: Command, io: Io): void {
  program
    .command('capture')
    .description("capture packets on a node's interfaces to pcapng for Wireshark, as tcpdump -w does (Ctrl-C stops)")
    .argument('[filter...]', 'the capture filter, as tcpdump takes it after its options (or -f)')
    .option('--node <name>', 'the node (default: the node of the pod given with -i, else this node container)')
    .addOption(
      new Option('-i, --interface <name>', 'eth0, tunl0, cali…, a pod, or any; repeat for several')
        .argParser((value: string, previous: string[]) => [...previous, value])
        .default([], 'eth0'),
    )
    .option('-f, --filter <filter>', 'the capture filter (see below)')
    .addOption(new Option('-c, --count <n>', 'stop after n packets').argParser(integer('-c', CAPTURE_LIMITS.count)))
    .addOption(
      new Option(
        '--duration <seconds>',
        `stop after this long (at most ${CAPTURE_DEFAULTS.durationMs / 3_600_000} h, which is also the limit without it)`,
      ).argParser(seconds('--duration', CAPTURE_LIMITS.durationMs)),
    )
    .option(
      '-w, --write <file>',
      `the file, or - for stdout (default: ${CAPTURES_DIRECTORY}/NODE-INTERFACES-TIME.pcapng)`,
    )
    .addOption(
      new Option('--format <format>', 'pcap for tools that read no pcapng (one link type, no interface names)')
        .choices(['pcapng', 'pcap'])
        .default('pcapng'),
    )
    .addOption(specOption())
    .addHelpText('after', HELP)
    .action((words: string[], options: CaptureCommandOptions) => capture(io, words, options));
}

/** Without --node, a pod given with -i says which node: the user should not have to look it up. */
function targetNode(cluster: ClusterState, options: CaptureCommandOptions): NodeState | undefined {
  if (options.node !== undefined) return resolveNode(cluster, options.node);
  const podNodes = new Set(options.interface.flatMap((word) => podByName(cluster, word)?.node ?? []));
  return podNodes.size === 1 ? nodeByName(cluster, [...podNodes][0]) : undefined;
}

function defaultFile(nodeName: string, interfaces: readonly string[], format: string): string {
  const time = new Date().toISOString().replace(/[-:]|\.\d+/g, '');
  const name = `${nodeName}-${interfaces.join('+').replace(/[^\w.+-]/g, '_')}-${time}.${format}`;
  return existsSync(CAPTURES_DIRECTORY) ? path.join(CAPTURES_DIRECTORY, name) : name;
}

/** The file is created before the agent is asked, so that a path that cannot be written fails before capturing. */
function createFile(file: string): number {
  try {
    return openSync(file, 'w');
  } catch (error) {
    throw new UsageError(`cannot write ${file}: ${(error as Error).message}`);
  }
}

function summary(stats: CaptureStats, where: string): string {
  return (
    `${stats.captured} packets captured\n` +
    `${stats.written} packets written to ${where}\n` +
    `${stats.droppedRecords} packets dropped because the capture fell behind (forwarding comes first)\n`
  );
}

async function capture(io: Io, words: string[], options: CaptureCommandOptions): Promise<void> {
  if (options.filter !== undefined && words.length > 0) {
    throw new UsageError(
      `give the filter once, with -f or after the options (got -f "${options.filter}" and "${words.join(' ')}")`,
    );
  }
  const toStdout = options.write === '-';
  if (toStdout && process.stdout.isTTY) {
    throw new UsageError(
      '-w - writes binary capture data and stdout is a terminal: pipe it, e.g. ' +
        'docker compose exec -T NODE ipip-lab capture -i eth0 -w - | wireshark -k -i -  (or give -w FILE)',
    );
  }
  const cluster = loadCluster(resolveSpecPath(options.spec));
  const interfaces = options.interface.length > 0 ? options.interface : ['eth0'];
  const commandLine = [
    'capture',
    ...interfaces.flatMap((name) => ['-i', name]),
    ...(options.write ? ['-w', options.write] : []),
  ].join(' ');
  const agent = agentFor(cluster, targetNode(cluster, options), commandLine);
  const file = toStdout ? undefined : (options.write ?? defaultFile(agent.nodeName, interfaces, options.format));
  // This node's agent writes the file itself (one process handling every record, not two), and refuses a path it
  // cannot write before capturing; otherwise the file is made here, before the agent is asked.
  const agentWrites = file !== undefined && agent.isLocal;
  const fd = file === undefined || agentWrites ? undefined : createFile(file);
  let response: IncomingMessage;
  try {
    response = await agent.capture({
      interfaces,
      filter: options.filter ?? words.join(' '),
      count: options.count,
      durationMs: options.duration,
      format: options.format,
      ...(agentWrites && { file: path.resolve(file) }),
    });
  } catch (error) {
    if (fd !== undefined) {
      closeSync(fd);
      rmSync(file!, { force: true });
    }
    throw error;
  }
  const where = file ?? 'stdout';
  const captured = String(response.headers[CAPTURE_HEADER.interfaces]).split(',').join(', ');
  io.err(`ipip-lab: capturing on ${agent.nodeName} ${captured}, writing ${where} (Ctrl-C stops)\n`);
  const output = agentWrites ? undefined : fd === undefined ? process.stdout : createWriteStream('', { fd });
  const result = await stream(io, agent, response, output);
  if (output !== undefined && output !== process.stdout) await new Promise<void>((resolve) => output.end(resolve));

  if (result.stats === undefined) {
    io.err(
      `ipip-lab: the capture on ${agent.nodeName} ended early: ${result.problem ?? 'the agent closed the stream'}\n`,
    );
    throw new ExitStatus(1);
  }
  io.err(summary(result.stats, where));
  // A reader that went away (`| head`, Wireshark closed) is how a piped capture ends; anything else failed.
  if (result.outputError && result.outputError.code !== 'EPIPE') {
    io.err(`ipip-lab: writing ${where} failed: ${result.outputError.message}\n`);
    throw new ExitStatus(1);
  }
}

interface StreamResult {
  /** The agent's final figures, absent when the stream was cut before its end. */
  stats?: CaptureStats;
  problem?: string;
  outputError?: NodeJS.ErrnoException;
}

/** The trailer's final figures; a trailer that does not parse as them counts as none, as for a stream cut short. */
function captureStats(trailer: string): CaptureStats | undefined {
  try {
    const stats: unknown = JSON.parse(trailer);
    return hasFields<CaptureStats>(stats, CAPTURE_STATS_FIELDS) ? stats : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Copies the capture to `output` as it arrives (pipe() waits for a slow reader, and the agent then drops records
 * rather than packets), or waits while the agent writes the file itself (`output` undefined), until the agent ends
 * it: by count or duration, or because this process asked it to stop on a signal or when the reader went away
 * (EPIPE on the output), as tcpdump does. Standard input plays no part: scripts and Wireshark start a capture with
 * none, or with /dev/null. Shows progress on stderr meanwhile.
 */
function stream(
  io: Io,
  agent: AgentClient,
  response: IncomingMessage,
  output: Writable | undefined,
): Promise<StreamResult> {
  const id = String(response.headers[CAPTURE_HEADER.id]);
  const result: StreamResult = {};
  let stopping = false;
  const stop = (): void => {
    // A second Ctrl-C does not wait for the agent.
    if (stopping) return void response.destroy();
    stopping = true;
    // It may have ended on its own meanwhile (404); a stop that fails otherwise shows as the stream being cut.
    agent.request('DELETE /v1/captures/*', id).catch(() => undefined);
    setTimeout(() => response.destroy(), STOP_GRACE_MS).unref();
  };
  for (const signal of STOP_SIGNALS) process.on(signal, stop);

  if (output === undefined) response.resume();
  else {
    output.on('error', (error: NodeJS.ErrnoException) => {
      result.outputError ??= error;
      // Keep reading, into nothing, until the agent has stopped and sent its figures.
      response.unpipe(output);
      response.resume();
      stop();
    });
    response.pipe(output, { end: false });
  }

  const terminal = process.stderr.isTTY === true;
  let progressShown = false;
  let lastLine = `0 packets written, 0 dropped`;
  const progress = setInterval(
    () => {
      agent.request('GET /v1/captures/*', id).then(
        ({ stats }) => {
          const line = `${stats.written} packets written, ${stats.droppedRecords} dropped`;
          // A quiet capture says nothing new, so it prints nothing.
          if (response.complete || line === lastLine) return;
          lastLine = line;
          io.err(terminal ? `\r${line}` : `ipip-lab: ${line} so far\n`);
          progressShown = terminal;
        },
        // The stream tells when the capture ends; a missed figure only delays the next one.
        () => undefined,
      );
    },
    terminal ? PROGRESS_TERMINAL_MS : PROGRESS_LOG_MS,
  );

  return new Promise((resolve) => {
    response.on('error', (error) => (result.problem ??= error.message));
    // 'close' comes after 'end' (and the trailers) for a complete stream, and alone for one that was cut.
    response.on('close', () => {
      clearInterval(progress);
      for (const signal of STOP_SIGNALS) process.off(signal, stop);
      if (progressShown) io.err('\n');
      const trailer = response.trailers[CAPTURE_HEADER.stats];
      if (response.complete && trailer !== undefined) result.stats = captureStats(trailer);
      resolve(result);
    });
  });
}

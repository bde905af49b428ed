/**
 * The commands that need running agents: `node` (the agent itself), and the pod actions and node counters that
 * ask an agent over its control API (ping, curl, traceroute, inject, stats, api).
 */
import { BIRD_TIMERS } from '../../node/bgp/index.js';
import {
  AddressDiscoveryError,
  followRegisteredAddresses,
  resolveSpecAddresses,
} from '../../node/datastore/addresses.js';
import { DatastoreUnavailableError } from '../../node/datastore/etcd-store.js';
import { BGP_PORT } from '../../wire/bgp.js';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { Option, type Command } from 'commander';
import { nodeByName, podByName, type ClusterState, type NodeState, type PodState } from '../../calico/index.js';
import { AgentConfigError, startAgent } from '../../node/agent.js';
import { runIpBatch } from '../../node/iproute2.js';
import type { DataplaneKind } from '../../node/running-node.js';
import { DEFAULT_UNDERLAY, UNDERLAY_KINDS, type UnderlayKind } from '../../node/underlay/index.js';
import {
  CURL_LIMITS,
  PING_DEFAULTS,
  PING_LIMITS,
  TRACEROUTE_LIMITS,
  type RequestOf,
  type ResponseOf,
} from '../../node/api-protocol.js';
import { clusterOf, loadCluster, readSpecFile, resolveSpecPath } from '../cluster-source.js';
import { localSystemInfo } from '../environment.js';
import { ExitStatus, UsageError } from '../errors.js';
import { integer, jsonOutputOption, printJson, seconds, specOption, type CommonOptions, type Io } from '../common.js';
import { agentApiPort, agentFor, agentSocketPath } from './agent-client.js';
import { registerCaptureCommand } from './capture-command.js';
import { registerExtcapCommand } from './extcap.js';
import { registerPageCommand } from './page-command.js';

import { registerManifestCommands } from './manifest-commands.js';
import { renderStats } from './stats-view.js';

/** How long a node the spec gives no address waits for every other one to register theirs (a swarm lab's start). */
const ADDRESSES_TIMEOUT_MS = 180_000;

/** After stop(), anything still holding the event loop must not keep a stopping container alive past its grace. */
const EXIT_GRACE_MS = 500;

function cluster(options: CommonOptions): ClusterState {
  return loadCluster(resolveSpecPath(options.spec));
}

function requirePod(state: ClusterState, name: string): PodState {
  const pod = podByName(state, name);
  if (pod) return pod;
  throw new UsageError(`pods "${name}" not found (pods: ${state.pods.map((p) => p.name).join(', ') || 'none'})`);
}

function optionalNode(state: ClusterState, name: string | undefined): NodeState | undefined {
  if (name === undefined) return undefined;
  const node = nodeByName(state, name);
  if (node) return node;
  throw new UsageError(
    `no node named ${JSON.stringify(name)} in the cluster (nodes: ${state.nodes.map((n) => n.name).join(', ')})`,
  );
}

type PodToolEndpoint = 'POST /v1/ping' | 'POST /v1/curl' | 'POST /v1/traceroute';

interface PodToolOptions extends CommonOptions {
  from: string;
}

/** A tool the CLI runs inside a pod: its command, its own options, and the request they make. */
interface PodTool<E extends PodToolEndpoint, Options extends PodToolOptions> {
  readonly name: string;
  readonly description: string;
  /** What the tool is aimed at (a destination, a URL): the command's one argument. */
  readonly target: readonly [name: string, description: string];
  readonly fromHelp: string;
  readonly options: readonly Option[];
  readonly helpText: string;
  readonly endpoint: E;
  /** The request, made before anything is read so that contradictory options fail first. */
  request(target: string, options: Options): RequestOf<E>;
}

/**
 * A pod tool's command: it asks the agent of the pod's node (the tool runs inside the pod), then prints the output
 * (text, or the report with -o json) and exits as the real tool would.
 */
function registerPodTool<E extends PodToolEndpoint, Options extends PodToolOptions>(
  program: Command,
  io: Io,
  tool: PodTool<E, Options>,
): void {
  const command = program
    .command(tool.name)
    .description(tool.description)
    .argument(...tool.target)
    .requiredOption('--from <pod>', tool.fromHelp);
  for (const option of tool.options) command.addOption(option);
  command
    .addOption(jsonOutputOption())
    .addOption(specOption())
    .addHelpText('after', tool.helpText)
    .action(async (target: string, options: Options) => {
      const request = tool.request(target, options);
      const state = cluster(options);
      const pod = requirePod(state, options.from);
      const agent = agentFor(state, nodeByName(state, pod.node), `${tool.name} ${target} --from ${pod.name}`);
      const { text, report }: ResponseOf<PodToolEndpoint> = await agent.request(tool.endpoint, request);
      if (options.output === 'json') printJson(io, report);
      else io.out(text);
      const exitCode = 'exitCode' in report ? report.exitCode : 0;
      if (exitCode !== 0) throw new ExitStatus(exitCode);
    });
}

function parseHex(text: string): Buffer {
  const digits = text.replace(/[\s:]/g, '');
  if (digits.length === 0 || digits.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(digits)) {
    throw new UsageError('--hex: expected an even number of hex digits (spaces and colons are ignored)');
  }
  return Buffer.from(digits, 'hex');
}

function readPacketFile(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
  }
}

/** Resolves when the process is asked to stop, naming the signal. */
function stopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      resolve(signal);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

interface NodeCommandOptions extends CommonOptions {
  name: string;
  apiPort?: number;
  socket: string;
  underlay?: UnderlayKind;
  pinNeighbours: boolean;
  dataplane: DataplaneKind | 'auto';
  routes: 'bgp' | 'spec';
  bgpHoldTime: number;
  datastore?: string;
  datastoreTimeout: number;
}

/** `http://HOST:PORT`, as etcd's clients take an endpoint. */
function datastoreUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--datastore: ${JSON.stringify(text)} is not a URL (expected http://ADDRESS:2379)`);
  }
  if (url.protocol !== 'http:' || url.port === '' || url.pathname !== '/') {
    throw new UsageError(`--datastore: expected http://ADDRESS:PORT, got ${JSON.stringify(text)}`);
  }
  return `${url.protocol}//${url.host}`;
}

function registerNode(program: Command, io: Io): void {
  program
    .command('node')
    .description(
      "run a node's agent: the dataplane, the node's simulated pods and the control API (the container's main process)",
    )
    .addOption(
      new Option(
        '--name <node>',
        'which node of the spec this machine is; its ip must be on one of our interfaces (a node the spec gives no ip ' +
          'takes the one it has in network.cidr and registers it in the datastore)',
      ).default(os.hostname(), 'the hostname, as calico-node names its node'),
    )
    .addOption(
      new Option('--api-port <port>', 'control API port on the node address').argParser(
        integer('--api-port', { min: 1, max: 65_535 }),
      ),
    )
    .addOption(
      new Option('--socket <path>', 'control API unix socket for the local CLI').default(
        agentSocketPath(),
        '$IPIP_LAB_SOCKET or /run/ipip-lab/agent.sock',
      ),
    )
    .addOption(
      new Option(
        '--underlay <kind>',
        'what moves the packets through the raw socket: native (batched system calls) or raw-socket (one per event); ' +
          `default: ${DEFAULT_UNDERLAY}, or raw-socket where the addon is not built`,
      ).choices(UNDERLAY_KINDS),
    )
    .addOption(
      new Option(
        '--dataplane <kind>',
        "kernel: the container's kernel holds tunl0 (a TUN this agent drives), the routes and the pods' namespaces; " +
          'userspace: the whole node emulated in the agent; auto: kernel where the container allows it',
      )
        .choices(['auto', 'kernel', 'userspace'])
        .default('auto'),
    )
    .addOption(
      new Option(
        '--routes <source>',
        "bgp: a BGP speaker in BIRD's place (TCP 179, AS 64512, a full iBGP mesh with the spec's other nodes) learns " +
          "their blocks, as on a Calico node; spec: every node's routes computed from the spec, as a converged mesh's",
      )
        .choices(['bgp', 'spec'])
        .default('bgp'),
    )
    .addOption(
      new Option(
        '--bgp-hold-time <seconds>',
        "the hold time this node offers in OPEN; a dead peer's routes leave after the smaller of both sides' " +
          "(BIRD's default, which Calico keeps)",
      )
        .argParser(integer('--bgp-hold-time', { min: 3, max: 65_535 }))
        .default(BIRD_TIMERS.holdTime),
    )
    .addOption(
      new Option(
        '--datastore <url>',
        "the lab's etcd (http://ADDRESS:2379): the node claims its block and tunnel address there, registers its Node, " +
          'and peers with the Nodes registered there; default: $IPIP_LAB_DATASTORE, else none (the spec says it all)',
      ).argParser(datastoreUrl),
    )
    .addOption(
      new Option(
        '--datastore-timeout <seconds>',
        'how long to wait for the datastore at start before exiting with code 2',
      )
        .argParser(integer('--datastore-timeout', { min: 1, max: 3600 }))
        .default(30),
    )
    .option(
      '--no-pin-neighbours',
      "leave the peers' ARP entries to the kernel's usual aging instead of making them managed (needs no NET_ADMIN)",
    )
    .addOption(specOption())
    .addHelpText(
      'after',
      '\nThe agent moves real IPIP packets (IP protocol 4) with a raw socket, so it needs CAP_NET_RAW (Docker grants it).\n' +
        'The kernel dataplane also needs NET_ADMIN, SYS_ADMIN (network namespaces) and /dev/net/tun; without them\n' +
        '--dataplane auto says why in one line and runs the userspace node, and --dataplane kernel exits with code 2.\n' +
        "With NET_ADMIN it also makes its peers' ARP entries managed (ip neigh ... managed extern_learn): the kernel\n" +
        "keeps them fresh and does not count them against the host's neighbour limit, which all containers share, so\n" +
        'large labs do not overflow it. Without NET_ADMIN it says so once and works as before.\n' +
        "Both underlays put the same bytes on the wire. native is this project's addon (native/, built by npm install):\n" +
        'it receives and sends up to 64 packets per system call (recvmmsg/sendmmsg). raw-socket is the npm package of\n' +
        'that name: one packet per event, for comparison, or where the addon did not build (the agent logs the fallback).\n' +
        'It stops cleanly on SIGTERM or SIGINT. Exit code 2: bad spec, unknown node, an address not on this machine, or\n' +
        'an --underlay that is not installed here.\n' +
        '\nExample (what docker-compose.yml runs in each node container):\n  ipip-lab node --name worker-node01 --spec /etc/ipip-lab/cluster.yaml',
    )
    .action(async (options: NodeCommandOptions) => {
      const log = (line: string): void => io.out(`${line}\n`);
      const specPath = resolveSpecPath(options.spec);
      const stopped = stopSignal();
      const datastore =
        options.datastore ??
        (process.env.IPIP_LAB_DATASTORE ? datastoreUrl(process.env.IPIP_LAB_DATASTORE) : undefined);
      let addressesFromDatastore = false;
      try {
        addressesFromDatastore = await resolveSpecAddresses({
          specPath,
          nodeName: options.name,
          datastore,
          datastoreTimeoutMs: options.datastoreTimeout * 1000,
          addressesTimeoutMs: ADDRESSES_TIMEOUT_MS,
          log,
        });
      } catch (error) {
        if (error instanceof DatastoreUnavailableError || error instanceof AddressDiscoveryError) {
          throw new UsageError(error.message);
        }
        throw error;
      }
      const spec = readSpecFile(specPath);
      const state = clusterOf(spec);
      let agent;
      try {
        agent = await startAgent({
          spec,
          readSpec: () => readSpecFile(specPath),
          cluster: state,
          nodeName: options.name,
          apiPort: options.apiPort ?? agentApiPort(),
          socketPath: options.socket,
          underlay: options.underlay,
          dataplane: options.dataplane,
          hostsFile: '/etc/hosts',
          ...(options.routes === 'bgp' && { bgp: { port: BGP_PORT, timers: { holdTime: options.bgpHoldTime } } }),
          ...(datastore && {
            datastore: {
              endpoint: datastore,
              timeoutMs: options.datastoreTimeout * 1000,
              ...(addressesFromDatastore && {
                followAddresses: (registered) => followRegisteredAddresses(specPath, registered),
              }),
            },
          }),
          ...(options.pinNeighbours && { pinNeighbours: runIpBatch }),
          system: localSystemInfo(),
          log,
        });
      } catch (error) {
        if (error instanceof AgentConfigError || error instanceof DatastoreUnavailableError) {
          throw new UsageError(error.message);
        }
        // A machine problem (no CAP_NET_RAW, the port taken): the message says it all, a stack would not help.
        if (error instanceof Error && !(error instanceof UsageError)) {
          io.err(`ipip-lab: ${error.message}\n`);
          throw new ExitStatus(1);
        }
        throw error;
      }
      const signal = await stopped;
      log(`${options.name}: ${signal}: stopping`);
      await agent.stop();
      setTimeout(() => process.exit(), EXIT_GRACE_MS).unref();
    });
}

interface PingCommandOptions extends PodToolOptions {
  count: number;
  size?: number;
  pmtudisc?: 'do' | 'want' | 'dont';
  df?: boolean;
  ttl?: number;
  tos?: number;
  interval?: number;
  timeout?: number;
}

function registerPodActions(program: Command, io: Io): void {
  registerPodTool(program, io, {
    name: 'ping',
    description: 'ping from inside a pod, as iputils ping does (its output, its exit code: 0 replies, 1 none)',
    target: ['<destination>', 'a pod name or an IPv4 address'],
    fromHelp: 'the pod that sends (see: ipip-lab get pods)',
    options: [
      new Option('-c, --count <n>', 'stop after n echo requests')
        .argParser(integer('-c', PING_LIMITS.count))
        .default(PING_DEFAULTS.count),
      new Option('-s, --size <bytes>', 'ICMP data bytes (default 56; 1473 makes a 1501-byte packet)').argParser(
        integer('-s', PING_LIMITS.size),
      ),
      new Option('-M, --pmtudisc <hint>', 'do: set DF; dont: never set DF; want: DF while the path MTU allows').choices(
        ['do', 'want', 'dont'],
      ),
      new Option('--df', "set Don't Fragment (same as -M do)"),
      new Option('-t, --ttl <ttl>', 'IP time to live').argParser(integer('-t', PING_LIMITS.ttl)),
      new Option('-Q, --tos <tos>', 'the TOS byte: DSCP << 2 | ECN').argParser(integer('-Q', PING_LIMITS.tos)),
      new Option('-i, --interval <seconds>', 'wait between requests').argParser(seconds('-i', PING_LIMITS.intervalMs)),
      new Option('-W, --timeout <seconds>', 'wait for replies after the last request').argParser(
        seconds('-W', PING_LIMITS.timeoutMs),
      ),
    ],
    helpText:
      '\nExamples:\n  ipip-lab ping 192.168.158.1 --from POD -c 3\n  ipip-lab ping POD-B --from POD-A -s 1473 -M dont   # fragments in the tunnel',
    endpoint: 'POST /v1/ping',
    request: (destination, options: PingCommandOptions) => {
      if (options.df && options.pmtudisc && options.pmtudisc !== 'do')
        throw new UsageError(`--df contradicts -M ${options.pmtudisc}`);
      return {
        from: options.from,
        to: destination,
        count: options.count,
        size: options.size,
        df: options.df || options.pmtudisc === 'do' ? true : options.pmtudisc === 'dont' ? false : undefined,
        ttl: options.ttl,
        tos: options.tos,
        intervalMs: options.interval,
        timeoutMs: options.timeout,
      };
    },
  });

  registerPodTool(program, io, {
    name: 'curl',
    description: 'fetch a URL from inside a pod, as curl does (hello-world pods serve hello-app on port 8080)',
    target: ['<url>', 'http://IP:PORT/PATH'],
    fromHelp: 'the pod that connects',
    options: [
      new Option('-m, --max-time <seconds>', 'give up after this long').argParser(seconds('-m', CURL_LIMITS.timeoutMs)),
    ],
    helpText: '\nExample:\n  ipip-lab curl http://192.168.158.1:8080/ --from POD',
    endpoint: 'POST /v1/curl',
    request: (url, options: PodToolOptions & { maxTime?: number }) => ({
      from: options.from,
      url,
      timeoutMs: options.maxTime,
    }),
  });

  registerPodTool(program, io, {
    name: 'traceroute',
    description: 'list the hops from a pod to an address: each router that answers with ICMP time exceeded',
    target: ['<destination>', 'a pod name or an IPv4 address'],
    fromHelp: 'the pod that sends the probes',
    options: [
      new Option('-m, --max-hops <n>', 'the largest TTL to try').argParser(integer('-m', TRACEROUTE_LIMITS.maxHops)),
    ],
    helpText: '\nExample:\n  ipip-lab traceroute 192.168.158.1 --from POD',
    endpoint: 'POST /v1/traceroute',
    request: (destination, options: PodToolOptions & { maxHops?: number }) => ({
      from: options.from,
      to: destination,
      maxHops: options.maxHops,
    }),
  });
}

function registerNodeActions(program: Command, io: Io): void {
  program
    .command('inject')
    .description('place raw IPv4 bytes on a node interface, as if they had arrived there (for packet-level tests)')
    .option('--node <name>', 'the node (default: this node container)')
    .requiredOption(
      '--interface <name>',
      'eth0 (an outer IPIP packet), tunl0 (an inner one) or a cali interface (from its pod)',
    )
    .option('--hex <bytes>', 'the packet in hex, from its IPv4 header on')
    .option('--file <path>', 'the packet as a binary file')
    .addOption(specOption())
    .addHelpText(
      'after',
      '\nExample (an echo request from a pod, injected at its cali interface):\n  ipip-lab inject --interface cali699c69e1379 --hex 4500...',
    )
    .action(async (options: CommonOptions & { node?: string; interface: string; hex?: string; file?: string }) => {
      if ((options.hex === undefined) === (options.file === undefined))
        throw new UsageError('give the packet with exactly one of --hex or --file');
      const packet = options.hex !== undefined ? parseHex(options.hex) : readPacketFile(options.file!);
      const state = cluster(options);
      await agentFor(
        state,
        optionalNode(state, options.node),
        `inject --interface ${options.interface} --hex …`,
      ).request('POST /v1/inject', {
        interface: options.interface,
        packet: packet.toString('base64'),
      });
    });

  program
    .command('stats')
    .description("a node's interface counters (as ip -s link) and its drops by reason")
    .option('--node <name>', 'the node (default: this node container)')
    .addOption(jsonOutputOption())
    .addOption(specOption())
    .action(async (options: CommonOptions & { node?: string }) => {
      const state = cluster(options);
      const agent = agentFor(
        state,
        optionalNode(state, options.node),
        `stats${options.node ? ` --node ${options.node}` : ''}`,
      );
      const stats = await agent.request('GET /v1/stats');
      if (options.output === 'json') return printJson(io, stats);
      const { links } = await agent.request('GET /v1/dataplane');
      io.out(renderStats(stats, links));
    });

  program
    .command('api')
    .description("call a node agent's control API directly and print its JSON (for scripts)")
    .argument('<method>', 'GET, POST or DELETE')
    .argument('<path>', 'e.g. /v1/node, /v1/cluster, /v1/dataplane, /v1/stats, /v1/captures')
    .option('--data <json>', 'the request body')
    .option('--node <name>', 'the node (default: this node container)')
    .addOption(specOption())
    .addHelpText(
      'after',
      '\nExamples:\n  ipip-lab api GET /v1/node\n  ipip-lab api GET /v1/captures\n  ipip-lab api DELETE /v1/captures/1',
    )
    .action(async (method: string, path: string, options: CommonOptions & { data?: string; node?: string }) => {
      let body: unknown;
      if (options.data !== undefined) {
        try {
          body = JSON.parse(options.data);
        } catch (error) {
          throw new UsageError(`--data is not JSON: ${(error as Error).message}`);
        }
      }
      const state = cluster(options);
      const agent = agentFor(state, optionalNode(state, options.node), `api ${method} ${path}`);
      printJson(io, await agent.raw(method.toUpperCase(), path, body));
    });
}

export function registerAgentCommands(program: Command, io: Io): void {
  registerNode(program, io);
  registerPodActions(program, io);
  registerNodeActions(program, io);
  registerManifestCommands(program, io);
  registerCaptureCommand(program, io);
  registerExtcapCommand(program, io);
  registerPageCommand(program, io);
}

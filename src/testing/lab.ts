/**
 * A running lab for tests: one container per node of a spec, on an internal Docker network with the spec's subnet
 * and each node's address, every agent up. Tests talk to the agents the way a user does, by running `ipip-lab`
 * inside the node containers (never by connecting from the host to a lab address), and get the agents' JSON back.
 */
import { Wait, type StartedTestContainer } from 'testcontainers';
import { nodeByName, renderBirdConfig, type ClusterState, type NodeState, type PodState } from '../calico/index.js';
import type { SpeakerStatus } from '../node/bgp/index.js';
import type { DataplaneView, NodeInfo, NodeStatsResponse } from '../node/api-protocol.js';
import type {
  CurlReport,
  PingOptions as PodPingOptions,
  PingReport,
  TracerouteReport,
} from '../node/userspace/pod/index.js';
import { pcapng } from '../wire/index.js';
import { BIRD_CONFIG, BIRD_IMAGE, BIRD_STARTED, BirdHandle, buildBirdImage } from './bird.js';
import {
  buildImage,
  containerLogs,
  DEFAULT_IMAGE,
  LAB_LABEL,
  PinnedContainer,
  removeLabResources,
  removeOverlappingLabs,
} from './docker.js';
import { loadSpecFile } from './spec-file.js';
import { checkDockerCarries, LabUnderlay } from './underlay.js';

export type DataplaneChoice = 'kernel' | 'userspace';

export interface LabOptions {
  /**
   * The cluster spec: the name of a seed lab the package ships (`'cni-overview'`, the first course's three nodes
   * with its hello-world pods, or `'networking'`, the kind cluster), or a path to a spec of your own (YAML, relative
   * to the working directory). Its `network.cidr` becomes the Docker network's subnet.
   */
  spec: string;
  /** Names the Docker resources (`ipip-lab-test-<name>-<node>`); default: the spec's metadata.name. */
  name?: string;
  /** A prebuilt node image; without it the harness builds `ipip-lab-node:dev` from containers/Dockerfile. */
  image?: string;
  /** How long each agent may take to come up, and then the BGP mesh between the started nodes to converge. */
  startupTimeoutMs?: number;
  /**
   * More arguments for the agents, after `node --name NAME` (e.g. `['--underlay', 'raw-socket']`): the same for
   * every node, or chosen per node.
   */
  agentArgs?: readonly string[] | ((node: string) => readonly string[]);
  /**
   * Start only these nodes of the spec. The others' addresses stay free, e.g. for a stranger that stands in for a
   * kernel node at that address (`lab.startStranger(ip)`). Default: every node.
   */
  nodes?: readonly string[];
  /**
   * Kernel settings of each node container's own network namespace, as `docker run --sysctl` sets them (e.g. its
   * eth0's ARP timers). Default: Docker's.
   */
  sysctls?: Readonly<Record<string, string>>;
  /**
   * Grants each node container NET_ADMIN, which its agent uses for one thing only: to make its peers' ARP entries
   * managed, so that they do not count against the host's neighbour limit, which every container shares (past 1024
   * entries by default the kernel drops packets). `false` runs the nodes with Docker's default capabilities, as a
   * lab of a few nodes can. Default: true.
   */
  netAdmin?: boolean;
  /**
   * `kernel` (the default): the node containers get what the kernel dataplane needs (NET_ADMIN, SYS_ADMIN and
   * /dev/net/tun) and their agents run it: tunl0, the routes and the pods' namespaces are the containers' kernels'
   * own, as in the compose labs. `userspace`: the whole node emulated in the agent, with NET_ADMIN only (`netAdmin`),
   * for a Docker that grants no more. A function picks per node.
   */
  dataplane?: DataplaneChoice | ((node: string) => DataplaneChoice);
  /**
   * Starts the lab's etcd at the subnet's second address (e.g. 10.0.0.2), before the nodes, and points every agent at
   * it (`--datastore`): the nodes claim their blocks there and peer with the Nodes registered there. Default: false,
   * the spec alone says every block.
   */
  datastore?: boolean;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** A ping from a pod: the pod stack's options (minus the echo identifier, which the pod picks), plus who and where. */
export interface PingOptions extends Omit<PodPingOptions, 'ident'> {
  from: string;
  /** A pod name or an IPv4 address. */
  to: string;
}

/** A packet of an `ipip-lab capture` file, as the agent's dataplane saw it. */
export interface TappedPacket {
  interface: string;
  direction: 'rx' | 'tx';
  timestampNs: bigint;
  packet: Buffer;
}

export interface AgentCaptureResult {
  /** The pcapng file the capture command wrote. */
  file: Buffer;
  /** Its packets, in order. */
  packets: TappedPacket[];
}

export interface AgentCapture {
  /** Stops the capture (as Ctrl-C does) and returns what it wrote. */
  stop(): Promise<AgentCaptureResult>;
}

export interface KernelCapture {
  /** Stops tcpdump and returns its pcap file. */
  stop(): Promise<Buffer>;
}

/** A command to run in the background of a node container, its start and end told by its log. */
export interface BackgroundCommand {
  command: string[];
  /** What its log says once it is at work, and once it has stopped and finished writing. */
  started: string;
  stopped: string;
  /** How errors name it, e.g. `tcpdump`. */
  name: string;
}

function readCapture(file: Buffer): AgentCaptureResult {
  const decoded = pcapng.decode(file);
  if (!decoded.ok) throw new Error(`ipip-lab capture wrote a file that is not pcapng (${decoded.reason})`);
  const { interfaces, packets } = decoded.value;
  return {
    file,
    packets: packets.map((packet) => ({
      interface: interfaces[packet.interfaceId].name ?? '',
      direction: packet.direction === 'inbound' ? 'rx' : 'tx',
      timestampNs: packet.timestampNs,
      packet: Buffer.from(packet.data),
    })),
  };
}

const POLL_MS = 100;
/** Where the node image's agent serves its API locally (`ipip-lab node --socket`'s default). */
const AGENT_SOCKET = '/run/ipip-lab/agent.sock';
const BACKGROUND_LOG_WAIT_MS = 10_000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function optionArgs(pairs: Record<string, number | string | undefined>): string[] {
  return Object.entries(pairs).flatMap(([flag, value]) => (value === undefined ? [] : [flag, String(value)]));
}

export class LabNodeHandle {
  private tempFiles = 0;

  constructor(
    readonly state: NodeState,
    readonly container: StartedTestContainer,
  ) {}

  get name(): string {
    return this.state.name;
  }

  get ip(): string {
    return this.state.ip.toString();
  }

  async exec(command: string[]): Promise<ExecResult> {
    const { exitCode, stdout, stderr } = await this.container.exec(command);
    return { exitCode, stdout, stderr };
  }

  /** `ipip-lab ARGS…` inside this node container, where it reaches the local agent and, over the lab network, the others. */
  ipipLab(args: string[]): Promise<ExecResult> {
    return this.exec(['ipip-lab', ...args]);
  }

  /** Runs an ipip-lab command that prints JSON; a command that printed none fails with its error output. */
  async json<T>(args: string[]): Promise<T> {
    const result = await this.ipipLab(args);
    try {
      return JSON.parse(result.stdout) as T;
    } catch {
      throw new Error(
        `ipip-lab ${args.join(' ')} on ${this.name} exited ${result.exitCode}: ${result.stderr.trim() || result.stdout.trim()}`,
      );
    }
  }

  /** A control API call (`ipip-lab api`), e.g. `api('GET', '/v1/node')`. */
  api<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.json<T>(['api', method, path, ...(body === undefined ? [] : ['--data', JSON.stringify(body)])]);
  }

  info(): Promise<NodeInfo> {
    return this.api<NodeInfo>('GET', '/v1/node');
  }

  /**
   * The BGP speaker's sessions and chosen routes, or undefined when the agent runs none (`--routes spec`). Asked with
   * curl on the agent's socket: polling must not start a Node.js process each time.
   */
  async bgp(): Promise<SpeakerStatus | undefined> {
    const { status, body } = await this.localApi('/v1/bgp');
    if (status === 404) return undefined;
    return JSON.parse(body) as SpeakerStatus;
  }

  /** The routes the node's dataplane holds now, as `GET /v1/dataplane` lists them. */
  async routes(): Promise<DataplaneView['routes']> {
    return (JSON.parse((await this.localApi('/v1/dataplane')).body) as DataplaneView).routes;
  }

  private async localApi(path: string): Promise<{ status: number; body: string }> {
    const result = await this.exec([
      'curl',
      '-sS',
      '--unix-socket',
      AGENT_SOCKET,
      '-w',
      '\\n%{http_code}',
      `http://agent${path}`,
    ]);
    if (result.exitCode !== 0) throw new Error(`GET ${path} on ${this.name}: ${result.stderr.trim()}`);
    const cut = result.stdout.lastIndexOf('\n');
    return { status: Number(result.stdout.slice(cut + 1)), body: result.stdout.slice(0, cut) };
  }

  stats(): Promise<NodeStatsResponse> {
    return this.json<NodeStatsResponse>(['stats', '-o', 'json']);
  }

  /** Places `packet` (an IPv4 packet) on one of this node's interfaces, as `ipip-lab inject` does. */
  async inject(interfaceName: string, packet: Uint8Array): Promise<void> {
    const result = await this.ipipLab([
      'inject',
      '--interface',
      interfaceName,
      '--hex',
      Buffer.from(packet).toString('hex'),
    ]);
    if (result.exitCode !== 0) throw new Error(`inject on ${this.name} ${interfaceName}: ${result.stderr.trim()}`);
  }

  /** `ipip-lab ping` from a pod (run here; the CLI asks the agent of the pod's node). */
  ping(options: PingOptions): Promise<PingReport> {
    const pmtu = options.df === undefined ? [] : ['-M', options.df ? 'do' : 'dont'];
    return this.json<PingReport>([
      'ping',
      options.to,
      '--from',
      options.from,
      '-o',
      'json',
      ...pmtu,
      ...optionArgs({
        '-c': options.count,
        '-s': options.size,
        '-t': options.ttl,
        '-Q': options.tos,
        '-i': options.intervalMs === undefined ? undefined : options.intervalMs / 1000,
        '-W': options.timeoutMs === undefined ? undefined : options.timeoutMs / 1000,
      }),
    ]);
  }

  /** `ipip-lab curl URL --from POD`; the report holds curl's body and exit code. */
  curl(url: string, options: { from: string; maxTimeMs?: number }): Promise<CurlReport> {
    const maxTime = options.maxTimeMs === undefined ? [] : ['-m', String(options.maxTimeMs / 1000)];
    return this.json<CurlReport>(['curl', url, '--from', options.from, '-o', 'json', ...maxTime]);
  }

  traceroute(to: string, options: { from: string; maxHops?: number }): Promise<TracerouteReport> {
    return this.json<TracerouteReport>([
      'traceroute',
      to,
      '--from',
      options.from,
      '-o',
      'json',
      ...optionArgs({ '-m': options.maxHops }),
    ]);
  }

  /**
   * `ipip-lab capture` on this node's simulated interfaces (eth0 as the dataplane sends and receives it, tunl0, the
   * cali interfaces or pods; default: all of them), writing pcapng. Armed when this resolves.
   */
  async capture(options: { interfaces?: string[]; filter?: string } = {}): Promise<AgentCapture> {
    const file = this.tempFile('pcapng');
    const interfaces = options.interfaces ?? ['any'];
    const command = [
      'ipip-lab',
      'capture',
      ...interfaces.flatMap((name) => ['-i', name]),
      '-w',
      file,
      ...(options.filter ? ['-f', options.filter] : []),
    ];
    const stop = await this.runInBackground({
      command,
      started: 'capturing on',
      stopped: 'packets captured',
      name: 'ipip-lab capture',
    });
    return {
      stop: async () => {
        await stop();
        return readCapture(await this.readFile(file));
      },
    };
  }

  /**
   * The kernel's own view: tcpdump on a real interface of the container (eth0: the IPIP packets on the wire).
   * Armed when this resolves.
   */
  async tcpdump(options: { interface?: string; filter?: string } = {}): Promise<KernelCapture> {
    const file = this.tempFile('pcap');
    // --immediate-mode: otherwise libpcap hands packets over up to a second late, and a quick stop() would miss them.
    const command = [
      'tcpdump',
      '-i',
      options.interface ?? 'eth0',
      '-n',
      '--immediate-mode',
      '-U',
      '-w',
      file,
      ...(options.filter ? [options.filter] : []),
    ];
    // tcpdump prints its statistics as it exits, `dropped by kernel` last (and `1 packet captured` in the singular).
    const stop = await this.runInBackground({
      command,
      started: 'listening on',
      stopped: 'dropped by kernel',
      name: 'tcpdump',
    });
    return {
      stop: async () => {
        await stop();
        return this.readFile(file);
      },
    };
  }

  /**
   * Starts a command in the background with its output in a log; resolves, once the log says it started, with the
   * function that stops it (SIGTERM) and resolves with the log once it says the command stopped.
   */
  async runInBackground(background: BackgroundCommand): Promise<() => Promise<string>> {
    const log = this.tempFile('log');
    const quoted = background.command.map((word) => `'${word.replace(/'/g, "'\\''")}'`).join(' ');
    const started = await this.exec(['sh', '-c', `${quoted} > ${log} 2>&1 & echo $!`]);
    const pid = started.stdout.trim();
    await this.waitForLog(log, background.started, `${background.name} did not start`);
    return async () => {
      // The shell's kill (the image has no /bin/kill); SIGTERM, as background jobs start with SIGINT ignored.
      await this.exec(['sh', '-c', `kill -TERM ${pid}`]);
      // The agent (PID 1) does not reap the command, so kill -0 would not tell that it is done: its log does.
      return this.waitForLog(log, background.stopped, `${background.name} did not stop`);
    };
  }

  /** A path of its own in the container's /tmp, for a capture file or a command's log. */
  private tempFile(extension: string): string {
    return `/tmp/ipip-lab-${++this.tempFiles}.${extension}`;
  }

  private async readFile(file: string): Promise<Buffer> {
    const read = await this.exec(['base64', '-w', '0', file]);
    if (read.exitCode !== 0) throw new Error(`reading ${file} on ${this.name}: ${read.stderr.trim()}`);
    return Buffer.from(read.stdout.trim(), 'base64');
  }

  private async waitForLog(file: string, text: string, failure: string): Promise<string> {
    const deadline = Date.now() + BACKGROUND_LOG_WAIT_MS;
    let log = '';
    while (Date.now() < deadline) {
      log = (await this.exec(['cat', file])).stdout;
      if (log.includes(text)) return log;
      await sleep(POLL_MS);
    }
    throw new Error(`${failure} on ${this.name}: ${log.trim() || 'no output'}`);
  }

  /** The agent's log so far. */
  logs(): Promise<string> {
    return containerLogs(this.container.getId());
  }
}

/** A machine on the lab network that is not a node: it can send raw IP (IPIP included) from its own address. */
export class StrangerHandle {
  constructor(
    readonly ip: string,
    readonly container: StartedTestContainer,
  ) {}

  /** Sends a complete IPv4 packet (its header built by the caller) to the header's destination. */
  async send(packet: Uint8Array): Promise<void> {
    const bytes = Buffer.from(packet);
    const destination = [...bytes.subarray(16, 20)].join('.');
    // The same raw-socket package the agents use, from the node image.
    const script =
      "const raw = require('raw-socket');" +
      "const b = Buffer.from(process.argv[1], 'hex');" +
      'const s = raw.createSocket({ protocol: b[9] });' +
      's.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_HDRINCL, 1);' +
      's.send(b, 0, b.length, process.argv[2], (e) => { if (e) { console.error(e.message); process.exitCode = 1; } s.close(); });';
    const result = await this.container.exec(['node', '-e', script, bytes.toString('hex'), destination]);
    if (result.exitCode !== 0) throw new Error(`stranger ${this.ip} could not send: ${result.stderr.trim()}`);
  }
}

export class Lab {
  private readonly handles: Map<string, LabNodeHandle>;
  private readonly strangers: StrangerHandle[] = [];
  private readonly birds: BirdHandle[] = [];

  constructor(
    readonly name: string,
    readonly cluster: ClusterState,
    private readonly image: string,
    /** The lab's Docker networks, and the router between them when the spec has several subnets. */
    readonly underlay: LabUnderlay,
    nodes: LabNodeHandle[],
  ) {
    this.handles = new Map(nodes.map((node) => [node.name, node]));
  }

  node(name: string): LabNodeHandle {
    const handle = this.handles.get(name);
    if (!handle)
      throw new Error(
        `no node ${JSON.stringify(name)} in lab ${this.name} (nodes: ${[...this.handles.keys()].join(', ')})`,
      );
    return handle;
  }

  nodes(): LabNodeHandle[] {
    return [...this.handles.values()];
  }

  pod(name: string): PodState {
    const pod = this.cluster.pods.find((p) => p.name === name);
    if (!pod) throw new Error(`no pod ${JSON.stringify(name)} in lab ${this.name}`);
    return pod;
  }

  /** The pods the spec schedules on that node, in creation order. */
  podsOn(nodeName: string): PodState[] {
    return this.cluster.pods.filter((pod) => pod.node === nodeName);
  }

  /** Starts a container that is not a cluster node at `ip` on the lab network. */
  async startStranger(ip: string): Promise<StrangerHandle> {
    const container = await new PinnedContainer(this.image, this.underlay.networkName, ip)
      .withName(`${this.underlay.networkName}-stranger-${ip.replace(/\./g, '-')}`)
      .withHostname('stranger')
      .withLabels({ [LAB_LABEL]: this.name })
      .withAddedCapabilities(...this.underlay.capabilities)
      .withEntrypoint(['sleep', 'infinity'])
      .start();
    await this.underlay.attached(container, ip);
    const stranger = new StrangerHandle(ip, container);
    this.strangers.push(stranger);
    return stranger;
  }

  /**
   * Starts a real BIRD (Debian's 1.6) in place of a spec node the lab did not start: at that node's address, under its
   * name, with the bird.cfg confd would write for it less what only Calico's fork of BIRD knows (krt_tunnel).
   */
  async startBird(options: { inPlaceOf: string }): Promise<BirdHandle> {
    const node = nodeByName(this.cluster, options.inPlaceOf);
    if (!node) throw new Error(`no node ${JSON.stringify(options.inPlaceOf)} in the spec of lab ${this.name}`);
    if (this.handles.has(node.name)) {
      throw new Error(`${node.name} runs an agent in lab ${this.name}: start the lab without it to put BIRD there`);
    }
    const ip = node.ip.toString();
    const config = renderBirdConfig(this.cluster, node.name, { stockBird: true });
    const container = await this.startBirdContainer(node.name, ip, config, `in ${node.name}'s place`);
    const bird = new BirdHandle(node.name, ip, container, new LabNodeHandle(node, container));
    this.birds.push(bird);
    return bird;
  }

  /** Starts a real BIRD that is no node, at `ip` on the lab network, with a config of the test's own (a BGPPeer). */
  async startBgpPeer(options: { name: string; ip: string; config: string }): Promise<BirdHandle> {
    const container = await this.startBirdContainer(options.name, options.ip, options.config, `at ${options.ip}`);
    const bird = new BirdHandle(options.name, options.ip, container);
    this.birds.push(bird);
    return bird;
  }

  private async startBirdContainer(
    name: string,
    ip: string,
    config: string,
    where: string,
  ): Promise<StartedTestContainer> {
    await buildBirdImage();
    // Docker's default capabilities: NET_RAW is enough for tcpdump, and BGP needs none. Without NET_ADMIN BIRD's
    // kernel protocol cannot write its routes (it logs `Netlink: Operation not permitted`, show route marks them !),
    // which nothing asked of this BIRD needs: its sessions and what reaches its eth0 do not depend on its own table.
    // testcontainers removes a container that fails to start, and with it the log that says why (a config BIRD
    // refuses, as `bird: /etc/bird/bird.cfg:72:25 You may set only variables.`): keep the log as it comes.
    let log = '';
    const container = await new PinnedContainer(BIRD_IMAGE, this.underlay.networkName, ip)
      .withName(`${this.underlay.networkName}-bird-${name}`)
      .withHostname(name)
      .withLabels({ [LAB_LABEL]: this.name })
      .withAddedCapabilities(...this.underlay.capabilities)
      .withCopyContentToContainer([{ content: config, target: BIRD_CONFIG }])
      .withLogConsumer((stream) => stream.on('data', (chunk: Buffer | string) => (log += chunk.toString())))
      .withWaitStrategy(Wait.forLogMessage(BIRD_STARTED))
      .withStartupTimeout(30_000)
      .start()
      .catch((error: Error) => {
        throw new Error(`BIRD did not start ${where} (${error.message}): ${log.trim() || 'no output'}`);
      });
    await this.underlay.attached(container, ip);
    return container;
  }

  /** Removes every container and the network. */
  async stop(): Promise<void> {
    // sleep and the agents as PID 1 are fast to stop; a lab is not kept, so no grace period is needed.
    await Promise.all(
      [...this.strangers, ...this.birds, ...this.handles.values()].map((handle) =>
        handle.container.stop({ timeout: 0 }).catch(() => undefined),
      ),
    );
    await removeLabResources(this.name);
  }
}

/**
 * Waits until every started node's table holds what each other started node exports, via that node: the mesh between
 * them has converged. Nodes that run no speaker (`--routes spec`) have their routes from the start.
 */
async function waitForMesh(nodes: readonly LabNodeHandle[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const statuses = await Promise.all(nodes.map((node) => node.bgp()));
    const missing = await Promise.all(
      nodes.map(async (node, index) => {
        if (statuses[index] === undefined) return [];
        const present = new Set(
          (await node.routes()).map(
            (route) => `${String(route.destination)} via ${'gateway' in route ? String(route.gateway) : ''}`,
          ),
        );
        return nodes
          .flatMap((peer, peerIndex) =>
            peer === node ? [] : (statuses[peerIndex]?.exported ?? []).map((prefix) => `${prefix} via ${peer.ip}`),
          )
          .filter((route) => !present.has(route));
      }),
    );
    if (missing.every((routes) => routes.length === 0)) return;
    if (Date.now() > deadline) {
      const report = nodes
        .map((node, index) => (missing[index].length > 0 ? `${node.name} lacks ${missing[index].join(', ')}` : ''))
        .filter((line) => line.length > 0);
      throw new Error(`the BGP mesh did not converge within ${timeoutMs} ms: ${report.join('; ')}`);
    }
    await sleep(POLL_MS * 2);
  }
}

/** Debian's etcd 3.4 from the node image, as a lab's datastore: one member; Lab.stop() removes it with the nodes, by its label. */
async function startDatastore(
  image: string,
  underlay: LabUnderlay,
): Promise<{ endpoint: string; container: StartedTestContainer }> {
  const ip = underlay.datastoreAddress;
  const endpoint = `http://${ip}:2379`;
  const container = await new PinnedContainer(image, underlay.networkName, ip)
    .withName(`${underlay.networkName}-etcd`)
    .withHostname('etcd')
    .withLabels({ [LAB_LABEL]: underlay.lab })
    .withAddedCapabilities(...underlay.capabilities)
    .withEntrypoint([
      'etcd',
      '--name',
      'etcd',
      '--data-dir',
      '/var/lib/etcd/lab',
      '--listen-client-urls',
      `http://${ip}:2379,http://127.0.0.1:2379`,
      '--advertise-client-urls',
      endpoint,
    ])
    .withWaitStrategy(Wait.forLogMessage(/ready to serve client requests/))
    .start();
  await underlay.attached(container, ip);
  return { endpoint, container };
}

function agentArgsFor(options: LabOptions, node: string): readonly string[] {
  const { agentArgs } = options;
  return typeof agentArgs === 'function' ? agentArgs(node) : (agentArgs ?? []);
}

function nodesToStart(cluster: ClusterState, names: readonly string[] | undefined): ClusterState['nodes'] {
  if (!names) return cluster.nodes;
  const unknown = names.filter((name) => !cluster.nodes.some((node) => node.name === name));
  if (unknown.length > 0)
    throw new Error(
      `no node ${unknown.join(', ')} in the spec (nodes: ${cluster.nodes.map((n) => n.name).join(', ')})`,
    );
  return cluster.nodes.filter((node) => names.includes(node.name));
}

/**
 * Starts a lab from a spec: builds the node image (once per process), removes what killed runs left on the same
 * subnets, creates the internal networks (one per subnet, with a router between them), starts every node pinned to
 * its address and waits for each agent and for the mesh.
 */
export async function startLab(options: LabOptions): Promise<Lab> {
  const { cluster, bundled } = loadSpecFile(options.spec);
  const name = options.name ?? cluster.spec.name;
  checkDockerCarries(cluster.spec);
  const underlay = new LabUnderlay(name, cluster.spec.network);
  const image = options.image ?? DEFAULT_IMAGE;
  await Promise.all([
    options.image ? undefined : buildImage(image),
    removeLabResources(name).then(() => removeOverlappingLabs(cluster.spec.network.cidr)),
  ]);
  try {
    await underlay.create(image);
    const datastore = options.datastore ? await startDatastore(image, underlay) : undefined;
    const nodes = await Promise.all(
      nodesToStart(cluster, options.nodes).map(async (node) => {
        const dataplane =
          typeof options.dataplane === 'function' ? options.dataplane(node.name) : (options.dataplane ?? 'kernel');
        const kernel = dataplane === 'kernel';
        const ip = node.ip.toString();
        const container = await new PinnedContainer(
          image,
          underlay.networkName,
          ip,
          options.sysctls,
          kernel ? ['/dev/net/tun'] : [],
        )
          .withName(`${underlay.networkName}-${node.name}`)
          .withHostname(node.name)
          .withAddedCapabilities(
            ...new Set([
              ...(kernel ? ['NET_ADMIN', 'SYS_ADMIN'] : options.netAdmin === false ? [] : ['NET_ADMIN']),
              ...underlay.capabilities,
            ]),
          )
          .withLabels({ [LAB_LABEL]: name })
          .withCopyContentToContainer([{ content: bundled, target: '/etc/ipip-lab/cluster.yaml' }])
          .withCommand(['node', '--name', node.name, '--dataplane', dataplane, ...agentArgsFor(options, node.name)])
          .withEnvironment(
            datastore ? { IPIP_LAB_DATASTORE: datastore.endpoint, ETCDCTL_ENDPOINTS: datastore.endpoint } : {},
          )
          .withWaitStrategy(Wait.forLogMessage(/listening on/))
          .withStartupTimeout(options.startupTimeoutMs ?? 30_000)
          .start();
        await underlay.attached(container, ip);
        return new LabNodeHandle(node, container);
      }),
    );
    await waitForMesh(nodes, options.startupTimeoutMs ?? 30_000);
    return new Lab(name, cluster, image, underlay, nodes);
  } catch (error) {
    await removeLabResources(name).catch(() => undefined);
    throw error;
  }
}

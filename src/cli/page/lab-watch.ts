/**
 * The lab as the page shows it, kept current by asking the agents once a second: the cluster (from any agent's spec,
 * so `kubectl apply`, `delete` and `scale` show at the next poll), each node's dataplane, and its counters, whose
 * differences are the rates. The page's server reaches the agents over the lab network only: an agent address that
 * is on none of this machine's own networks is refused, so that lab addresses never leave for a router.
 */
import os from 'node:os';
import { nodeByName, nodeDataplane, type ClusterState, type Dataplane, type NodeState } from '../../calico/index.js';
import type { TunnelStats } from '../../node/counters.js';
import { DEFAULT_API_PORT } from '../../node/api-protocol.js';
import {
  Ipv4Address,
  Ipv4Prefix,
  compareRoutesInKernelOrder,
  renderIpAddr,
  renderIpRoute,
  renderRoute,
  routeFromJson,
  type Route,
  type RouteJson,
} from '../../routing/index.js';
import { clusterOf } from '../cluster-source.js';
import { AgentClient } from '../commands/agent-client.js';
import { UsageError } from '../errors.js';
import type { LabSnapshot, PageNode, PageTunnel } from './page-protocol.js';
import type { TraceLab } from './tracer/trace.js';

const POLL_TIMEOUT_MS = 1500;

export interface AgentAddress {
  host: string;
  port: number;
}

/** `HOST[:PORT]`, as `--agent` takes it. */
export function parseAgentAddress(text: string): AgentAddress {
  const [host, portText] = text.split(':');
  const port = portText === undefined ? DEFAULT_API_PORT : Number(portText);
  if (Ipv4Address.tryParse(host) === undefined || !Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new UsageError(
      `--agent ${text}: expected a node's lab address, IPv4[:PORT] (e.g. 10.0.0.10:${DEFAULT_API_PORT})`,
    );
  }
  return { host, port };
}

/** The IPv4 networks this machine is directly on, from its interfaces' addresses and masks. */
function directNetworks(): Ipv4Prefix[] {
  return Object.values(os.networkInterfaces())
    .flatMap((infos) => infos ?? [])
    .filter((info) => info.family === 'IPv4' && !info.internal && info.cidr !== null)
    .flatMap((info) => {
      const prefix = Ipv4Prefix.tryParse(info.cidr ?? '');
      return prefix === undefined ? [] : [prefix.masked()];
    });
}

function isDirectlyReachable(address: Ipv4Address, networks: readonly Ipv4Prefix[]): boolean {
  return networks.some((network) => network.contains(address));
}

interface NodeSample {
  dataplane: 'kernel' | 'userspace' | null;
  error?: string;
  tunnels?: Record<string, TunnelStats>;
  /** The agent's own table: what BGP brought it. */
  routes?: Route[];
  atMs: number;
}

const NOTHING_SENT = { txPackets: 0, txBytes: 0 };

/** What a node sent into its tunnel to `peer` per second, between its last two samples; null before there are two. */
function tunnelRates(
  sampled: { previous?: NodeSample; latest: NodeSample } | undefined,
  peer: string,
): Pick<PageTunnel, 'packetsPerSecond' | 'bytesPerSecond'> {
  const before = sampled?.previous?.tunnels;
  const after = sampled?.latest.tunnels;
  const seconds = sampled?.previous === undefined ? 0 : (sampled.latest.atMs - sampled.previous.atMs) / 1000;
  if (before === undefined || after === undefined || seconds <= 0)
    return { packetsPerSecond: null, bytesPerSecond: null };
  const earlier = before[peer] ?? NOTHING_SENT;
  const later = after[peer] ?? NOTHING_SENT;
  // A restarted agent counts from zero again: no negative rates.
  return {
    packetsPerSecond: Math.max(0, (later.txPackets - earlier.txPackets) / seconds),
    bytesPerSecond: Math.max(0, (later.txBytes - earlier.txBytes) / seconds),
  };
}

export class LabWatch implements TraceLab {
  cluster: ClusterState;
  private readonly samples = new Map<string, { previous?: NodeSample; latest: NodeSample }>();
  private readonly networks = directNetworks();
  private timer?: NodeJS.Timeout;
  private polling?: Promise<void>;
  private takenAt = new Date();

  private constructor(
    cluster: ClusterState,
    private readonly seeds: readonly AgentAddress[],
    private readonly log: (line: string) => void,
  ) {
    this.cluster = cluster;
  }

  /** Asks the seed agents in turn for the lab's spec; waits for one up to `waitMs` (a lab that is still starting). */
  static async open(seeds: readonly AgentAddress[], log: (line: string) => void, waitMs = 60_000): Promise<LabWatch> {
    const deadline = Date.now() + waitMs;
    const networks = directNetworks();
    for (const seed of seeds) {
      if (!isDirectlyReachable(Ipv4Address.parse(seed.host), networks)) {
        throw new UsageError(
          `--agent ${seed.host}: not on a network this machine is on; the page talks to the agents over the lab network only (run it in a container on that network, as the compose labs' page service does)`,
        );
      }
    }
    for (let attempt = 1; ; attempt++) {
      const cluster = await LabWatch.readCluster(seeds);
      if (cluster !== undefined) {
        const watch = new LabWatch(cluster, seeds, log);
        await watch.poll();
        return watch;
      }
      if (Date.now() > deadline) {
        throw new UsageError(
          `no agent answered at ${seeds.map((s) => `${s.host}:${s.port}`).join(', ')} within ${waitMs / 1000} s`,
        );
      }
      if (attempt === 1) log(`waiting for an agent at ${seeds.map((s) => `${s.host}:${s.port}`).join(', ')}…`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  private static async readCluster(seeds: readonly AgentAddress[]): Promise<ClusterState | undefined> {
    for (const seed of seeds) {
      try {
        const client = new AgentClient(seed, seed.host, POLL_TIMEOUT_MS);
        return clusterOf(await client.request('GET /v1/spec'));
      } catch {
        // The next seed may answer.
      }
    }
    return undefined;
  }

  /** Polls every `intervalMs` until `close`. */
  start(intervalMs = 1000): void {
    this.timer = setInterval(() => {
      this.polling ??= this.poll().finally(() => (this.polling = undefined));
    }, intervalMs);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.polling;
  }

  agent(node: string, timeoutMs = POLL_TIMEOUT_MS): AgentClient {
    const state = nodeByName(this.cluster, node);
    if (state === undefined) throw new UsageError(`no node named ${node} in the lab`);
    return this.clientOf(state, timeoutMs);
  }

  dataplane(node: string): 'kernel' | 'userspace' | null {
    return this.samples.get(node)?.latest.dataplane ?? null;
  }

  private clientOf(node: NodeState, timeoutMs = POLL_TIMEOUT_MS): AgentClient {
    return new AgentClient({ host: node.ip.toString(), port: this.apiPort }, node.name, timeoutMs);
  }

  /** The agents' API port: the seeds'. */
  private get apiPort(): number {
    return this.seeds[0]?.port ?? DEFAULT_API_PORT;
  }

  async poll(): Promise<void> {
    const agents = this.cluster.nodes.map((node) => ({ host: node.ip.toString(), port: this.apiPort }));
    const cluster = (await LabWatch.readCluster([...agents, ...this.seeds])) ?? this.cluster;
    this.cluster = cluster;
    await Promise.all(cluster.nodes.map((node) => this.sample(node)));
    for (const name of this.samples.keys()) {
      if (!cluster.nodes.some((node) => node.name === name)) this.samples.delete(name);
    }
    this.takenAt = new Date();
  }

  private async sample(node: NodeState): Promise<void> {
    let sample: NodeSample;
    if (!isDirectlyReachable(node.ip, this.networks)) {
      sample = { dataplane: null, error: `${node.ip.toString()} is not on this machine's networks`, atMs: Date.now() };
    } else {
      try {
        const client = this.clientOf(node);
        const [info, stats, dataplane] = await Promise.all([
          client.request('GET /v1/node'),
          client.request('GET /v1/stats'),
          client.request('GET /v1/dataplane'),
        ]);
        const routes = (dataplane.routes as unknown as RouteJson[]).map(routeFromJson);
        sample = { dataplane: info.dataplane, tunnels: stats.tunnels, routes, atMs: Date.now() };
      } catch (error) {
        sample = { dataplane: null, error: error instanceof Error ? error.message : String(error), atMs: Date.now() };
      }
    }
    const known = this.samples.get(node.name);
    if (known?.latest.dataplane === null && sample.dataplane !== null) this.log(`${node.name}: the agent answers`);
    if (known?.latest.dataplane !== null && known !== undefined && sample.dataplane === null) {
      this.log(`${node.name}: the agent does not answer (${sample.error})`);
    }
    this.samples.set(node.name, { previous: known?.latest, latest: sample });
  }

  snapshot(): LabSnapshot {
    const { cluster } = this;
    // The agents' tables where they answer; the spec's computation (a converged mesh) for a node that does not.
    const dataplanes = new Map(
      cluster.nodes.map((node): [string, Dataplane] => {
        const computed = nodeDataplane(cluster, node.name);
        const live = this.samples.get(node.name)?.latest.routes;
        return [node.name, live ? { links: computed.links, routes: live } : computed];
      }),
    );
    const nodes = cluster.nodes.map((node): PageNode => {
      const dataplane = dataplanes.get(node.name)!;
      const routes = [...dataplane.routes].sort(compareRoutesInKernelOrder);
      const latest = this.samples.get(node.name)?.latest ?? { dataplane: null, atMs: 0 };
      return {
        name: node.name,
        ip: node.ip.toString(),
        tunnelAddress: node.tunnelAddress?.toString() ?? null,
        blocks: node.blocks.map(String),
        dataplane: latest.dataplane,
        ...(latest.error !== undefined && { error: latest.error }),
        pods: cluster.pods
          .filter((pod) => pod.node === node.name)
          .map((pod) => ({
            name: pod.name,
            namespace: pod.namespace,
            ip: pod.ip.toString(),
            hostInterface: pod.hostInterface,
          })),
        tables: {
          route: renderRoute(routes, { numeric: true }),
          ipRoute: renderIpRoute(routes),
          ipAddr: renderIpAddr(dataplane.links, { style: 'iproute2' }),
        },
      };
    });
    return { lab: cluster.spec.name, takenAt: this.takenAt.toISOString(), nodes, tunnels: this.tunnels(dataplanes) };
  }

  /** Node pairs whose routes go through tunl0 from one to the other. */
  private tunnels(dataplanes: ReadonlyMap<string, Dataplane>): PageTunnel[] {
    const { cluster } = this;
    const byIp = new Map(cluster.nodes.map((node) => [node.ip.value, node]));
    return cluster.nodes.flatMap((node) => {
      const peers = new Set<NodeState>();
      for (const route of dataplanes.get(node.name)!.routes) {
        if (route.kind === 'unicast' && route.dev === 'tunl0' && route.gateway !== undefined) {
          const peer = byIp.get(route.gateway.value);
          if (peer !== undefined) peers.add(peer);
        }
      }
      const sampled = this.samples.get(node.name);
      return [...peers].map((peer) => ({
        from: node.name,
        to: peer.name,
        ...tunnelRates(sampled, peer.ip.toString()),
      }));
    });
  }
}

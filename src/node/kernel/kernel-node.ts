/**
 * One kernel-backed node, assembled: the container's kernel holds tunl0 (a TUN device the agent drives), the routes
 * Felix and BIRD would program, and one network namespace per pod behind its cali veth; the agent runs the pods'
 * workloads inside their namespaces and encapsulates what the kernel routes into tunl0 (tunnel-driver.ts).
 *
 * A start clears what a previous run left and makes the node afresh; a reload (`kubectl apply`) converges: new pods
 * are wired, gone ones unwired, routes added and deleted, and everything else is left alone.
 */
import { readFileSync } from 'node:fs';
import {
  nodeByName,
  nodeDataplane,
  workloadMtu,
  type ClusterState,
  type PeerRoute,
  type NodeState,
  type PodState,
} from '../../calico/index.js';
import type { Link, Route } from '../../routing/index.js';
import type { UnderlayTx } from '../underlay/index.js';
import type { DataplaneStats, InterfaceStats } from '../counters.js';
import { TUNNEL_INTERFACE, UNDERLAY_INTERFACE } from '../interface-names.js';
import type { NodePackets, RunningNode } from '../running-node.js';
import type { IpipSocketBinding } from '../underlay/batched.js';
import { KernelInterfaceTaps } from './interface-taps.js';
import { syncKernelRoutes } from './kernel-routes.js';
import { netnsPath, PodNamespaces, SYSTEM_TOOLS, type KernelTools } from './pod-namespaces.js';
import { runsHelloApp } from '../hello-app.js';
import { kernelPodTools, type PodTools } from './pod-tools.js';
import { startPodWorkload, type NetnsBinder, type PodWorkload } from './pod-workloads.js';
import { TunnelDriver, type TunTx } from './tunnel-driver.js';

export interface KernelNodeOptions {
  log: (line: string) => void;
  bindInNetns: NetnsBinder;
  tools?: KernelTools;
  /** The addon, for captures of the kernel's interfaces (interface-taps.ts); without it they capture nothing. */
  binding?: IpipSocketBinding;
  /** Reads the kernel's counters (/sys, /proc); tests pass their own. */
  readKernelFile?: (path: string) => string;
  /** What BGP has learned so far; without it, the routes of a converged mesh (as the spec makes them). */
  peerRoutes?: readonly PeerRoute[];
}

/** `ip -s link` columns, as /sys/class/net/IFNAME/statistics has them. */
const KERNEL_STATISTICS = {
  rxPackets: 'rx_packets',
  rxBytes: 'rx_bytes',
  rxDropped: 'rx_dropped',
  txPackets: 'tx_packets',
  txBytes: 'tx_bytes',
  txDropped: 'tx_dropped',
} as const satisfies Record<keyof InterfaceStats, string>;

/** rp_filter's drops (TcpExt IPReversePathFilter in /proc/net/netstat): pods sending from addresses not theirs. */
function reversePathDrops(read: (path: string) => string): number {
  const lines = read('/proc/net/netstat').split('\n');
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const names = lines[i].split(' ');
    const values = lines[i + 1].split(' ');
    const at = names.indexOf('IPReversePathFilter');
    if (names[0] === 'TcpExt:' && at > 0) return Number(values[at]);
  }
  return 0;
}

interface NodeView {
  cluster: ClusterState;
  node: NodeState;
  links: readonly Link[];
  localPods: readonly PodState[];
  routes: readonly Route[];
}

function viewOf(cluster: ClusterState, nodeName: string, peerRoutes: readonly PeerRoute[] | undefined): NodeView {
  const node = nodeByName(cluster, nodeName);
  if (!node) throw new Error(`no node named ${JSON.stringify(nodeName)} in the cluster`);
  const felix = nodeDataplane(cluster, node.name, { ...(peerRoutes && { peerRoutes }) });
  return {
    cluster,
    node,
    links: felix.links,
    localPods: cluster.pods.filter((pod) => pod.node === node.name),
    routes: [...felix.routes],
  };
}

export class KernelNode implements RunningNode {
  readonly kind = 'kernel';
  /** tunl0's driver: the agent hands it what the raw socket and the TUN device receive. */
  readonly driver: TunnelDriver;
  readonly dataplane: NodePackets;
  private readonly readKernelFile: (path: string) => string;
  /** rp_filter drops before this node started: the container's kernel counts from its own start. */
  private readonly reversePathBaseline: number;
  private view: NodeView;
  private readonly namespaces: PodNamespaces;
  private readonly workloads = new Map<string, PodWorkload>();
  private applying: Promise<void> = Promise.resolve();
  private readonly tools: KernelTools;
  private peerRoutes: readonly PeerRoute[] | undefined;
  private wantedCluster: ClusterState;

  private constructor(
    view: NodeView,
    underlay: UnderlayTx,
    tun: TunTx,
    private readonly options: KernelNodeOptions,
  ) {
    this.view = view;
    this.peerRoutes = options.peerRoutes;
    this.wantedCluster = view.cluster;
    this.tools = options.tools ?? SYSTEM_TOOLS;
    this.namespaces = new PodNamespaces(options.log, this.tools);
    this.driver = new TunnelDriver(
      {
        name: view.node.name,
        nodeIp: view.node.ip,
        tunnelMtu: workloadMtu(view.cluster.spec),
        routes: view.routes,
        clusterNodeIps: view.cluster.nodes.map((node) => node.ip),
      },
      underlay,
      tun,
      { log: options.log },
    );
    this.readKernelFile = options.readKernelFile ?? ((path) => readFileSync(path, 'utf8'));
    this.reversePathBaseline = this.reversePathDrops();
    const taps = new KernelInterfaceTaps(
      this.driver,
      new Set([UNDERLAY_INTERFACE, TUNNEL_INTERFACE]),
      () => this.view.localPods.map((pod) => pod.hostInterface),
      options.binding,
      options.log,
    );
    this.dataplane = {
      stats: () => this.stats(),
      inject: (name, packet) => this.driver.inject(name, packet),
      fromUnderlay: (packet) => this.driver.fromUnderlay(packet),
      onTap: (listener, interfaces) => taps.onTap(listener, interfaces),
    };
  }

  /**
   * The driver's counters, with the kernel's own for what it owns: each cali veth's figures, and its rp_filter
   * drops as `spoofed-source` (received on a cali veth, dropped there), so the books still balance.
   */
  private stats(): DataplaneStats {
    const stats = this.driver.stats();
    for (const pod of this.view.localPods) {
      const figures = {} as InterfaceStats;
      for (const [field, file] of Object.entries(KERNEL_STATISTICS) as [keyof InterfaceStats, string][]) {
        figures[field] = this.kernelNumber(`/sys/class/net/${pod.hostInterface}/statistics/${file}`);
      }
      stats.interfaces[pod.hostInterface] = figures;
    }
    const spoofed = this.reversePathDrops() - this.reversePathBaseline;
    stats.drops['spoofed-source'] += spoofed;
    stats.dropped += spoofed;
    stats.received += spoofed;
    return stats;
  }

  private kernelNumber(path: string): number {
    try {
      return Number(this.readKernelFile(path).trim()) || 0;
    } catch {
      // A veth that is being made or removed right now.
      return 0;
    }
  }

  private reversePathDrops(): number {
    try {
      return reversePathDrops(this.readKernelFile);
    } catch {
      return 0;
    }
  }

  /** Brings tunl0 up with the tunnel address, clears a previous run's leftovers and wires the node's pods. */
  static async start(
    cluster: ClusterState,
    nodeName: string,
    underlay: UnderlayTx,
    tun: TunTx,
    options: KernelNodeOptions,
  ): Promise<KernelNode> {
    const node = new KernelNode(viewOf(cluster, nodeName, options.peerRoutes), underlay, tun, options);
    const { tunnelAddress } = node.view.node;
    await node.tools.batch([
      // The ipip device's own queue length (a TUN's default is 500): a burst from the pods must not drop here first.
      `link set ${TUNNEL_INTERFACE} mtu ${workloadMtu(cluster.spec)} txqueuelen 1000 up`,
      ...(tunnelAddress ? [`addr replace ${tunnelAddress}/32 dev ${TUNNEL_INTERFACE}`] : []),
    ]);
    try {
      // The ipip module's tunl0 has no IPv6; a TUN gets a link-local address and the kernel's IPv6 chatter.
      node.tools.sysctl(`net/ipv6/conf/${TUNNEL_INTERFACE}/disable_ipv6`, '1');
    } catch {
      // A container without IPv6 has no such key: nothing to turn off.
    }
    await node.namespaces.clearLeftovers();
    await node.converge();
    return node;
  }

  get cluster(): ClusterState {
    return this.view.cluster;
  }
  get node(): NodeState {
    return this.view.node;
  }
  get links(): readonly Link[] {
    return this.view.links;
  }
  get localPods(): readonly PodState[] {
    return this.view.localPods;
  }
  get routes(): Route[] {
    return [...this.view.routes];
  }

  pod(): undefined {
    return undefined;
  }

  podTools(name: string): PodTools | undefined {
    const pod = this.view.localPods.find((candidate) => candidate.name === name);
    return pod && kernelPodTools(netnsPath(pod), pod.name);
  }

  /**
   * The node as a re-read spec makes it, in place: only what changed is touched. Reloads run one after the other:
   * two converging at once would both wire a new pod.
   */
  apply(cluster: ClusterState): Promise<void> {
    this.wantedCluster = cluster;
    return this.reconverge();
  }

  /** BGP's routes changed: the kernel's table follows, the pods stay as they are. */
  setPeerRoutes(routes: readonly PeerRoute[]): Promise<void> {
    this.peerRoutes = routes;
    return this.reconverge();
  }

  /** Each run takes the newest cluster and routes, whichever change queued it. */
  private reconverge(): Promise<void> {
    const applied = this.applying.then(async () => {
      const cluster = this.wantedCluster;
      this.view = viewOf(cluster, this.view.node.name, this.peerRoutes);
      this.driver.setRoutes(
        this.view.routes,
        cluster.nodes.map((node) => node.ip),
      );
      await this.converge();
    });
    this.applying = applied.catch(() => undefined);
    return applied;
  }

  /** Stops the pods' workloads and removes every namespace, veth and route the node made. */
  async close(): Promise<void> {
    for (const workload of this.workloads.values()) workload.close();
    this.workloads.clear();
    await this.namespaces.removeAll();
    await syncKernelRoutes([], this.tools).catch((error: unknown) =>
      this.options.log(`removing routes: ${String(error)}`),
    );
  }

  private async converge(): Promise<void> {
    const { cluster, localPods, links, routes } = this.view;
    // A namespace is only deleted once nothing holds it: a leaving pod's sockets close before it is unwired.
    const { added } = await this.namespaces.converge(cluster, localPods, links, (pod) => {
      this.workloads.get(pod.name)?.close();
      this.workloads.delete(pod.name);
    });
    for (const pod of added) {
      const workload = startPodWorkload(
        pod,
        netnsPath(pod),
        runsHelloApp(pod),
        this.options.bindInNetns,
        this.options.log,
      );
      this.workloads.set(pod.name, workload);
    }
    const synced = await syncKernelRoutes(routes, this.tools);
    if (synced.added + synced.removed > 0) {
      this.options.log(
        `routes: ${synced.added} added, ${synced.removed} removed (${routes.length} in the node's table)`,
      );
    }
  }
}

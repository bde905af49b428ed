/**
 * One node of the lab, assembled: the cluster state says what the node is, felix says its interfaces and routes, the
 * dataplane forwards between them, and a simulated pod sits behind each cali interface. No sockets here: the
 * underlay is handed in, so the same wiring runs in the agent and, over a fake underlay, in tests.
 */
import {
  nodeByName,
  nodeDataplane,
  workloadMtu,
  type ClusterState,
  type Dataplane as FelixDataplane,
  type PeerRoute,
  type NodeState,
  type PodState,
} from '../../calico/index.js';
import type { Link, Route } from '../../routing/index.js';
import { Dataplane, type NodeConfig, type UnderlayTx } from './dataplane.js';
import type { PodTools } from '../kernel/pod-tools.js';
import { formatCurl, formatPing, formatTraceroute, SimulatedPod } from './pod/index.js';
import { runsHelloApp } from '../hello-app.js';
import type { RunningNode } from '../running-node.js';

export interface LabNodeOptions {
  /** One line per state change and the dataplane's kernel-style messages. */
  log?: (line: string) => void;
  /** What BGP has learned so far; without it, the routes of a converged mesh (as the spec makes them). */
  peerRoutes?: readonly PeerRoute[];
}

export class LabNode implements RunningNode {
  readonly kind = 'userspace';
  readonly node: NodeState;
  readonly links: readonly Link[];
  readonly localPods: readonly PodState[];
  readonly dataplane: Dataplane;
  private readonly pods = new Map<string, SimulatedPod>();

  constructor(
    readonly cluster: ClusterState,
    nodeName: string,
    underlay: UnderlayTx,
    options: LabNodeOptions = {},
  ) {
    const node = nodeByName(cluster, nodeName);
    if (!node) {
      throw new Error(
        `no node named ${JSON.stringify(nodeName)} in the cluster (nodes: ${cluster.nodes.map((n) => n.name).join(', ')})`,
      );
    }
    this.node = node;
    const felix = this.felix(options.peerRoutes);
    this.links = felix.links;
    this.localPods = cluster.pods.filter((pod) => pod.node === node.name);
    const config: NodeConfig = {
      name: node.name,
      nodeIp: node.ip,
      tunnelAddress: node.tunnelAddress,
      tunnelMtu: workloadMtu(cluster.spec),
      routes: felix.routes,
      clusterNodeIps: cluster.nodes.map((n) => n.ip),
      pods: this.localPods.map((pod) => ({ name: pod.name, ip: pod.ip, hostInterface: pod.hostInterface })),
    };
    const log = options.log ?? (() => {});
    this.dataplane = new Dataplane(config, underlay, { log });
    for (const state of this.localPods) {
      const pod = new SimulatedPod({
        name: state.name,
        ip: state.ip.value,
        mtu: state.mtu,
        transmit: (packet) => this.dataplane.fromPod(state.name, packet),
        ...(runsHelloApp(state) && { httpApp: 'hello-app' as const }),
      });
      this.dataplane.attachPod(state.name, (packet) => pod.receive(packet));
      this.pods.set(state.name, pod);
      log(`pod ${state.name}: up ${state.ip} ${state.hostInterface}`);
    }
  }

  /** BGP's routes changed: the table follows, the pods and their counters stay as they are. */
  setPeerRoutes(routes: readonly PeerRoute[]): void {
    this.dataplane.setRoutes(this.felix(routes).routes);
  }

  /** Spec defaults for eth0, not the container's real index and MAC: live views must match `--spec` views. */
  private felix(peerRoutes: readonly PeerRoute[] | undefined): FelixDataplane {
    return nodeDataplane(this.cluster, this.node.name, { ...(peerRoutes && { peerRoutes }) });
  }

  /**
   * The node's routes as `ip route` lists them, made from the dataplane's table on each read: a node in a large
   * cluster has 100k of them, which nothing keeps as route objects.
   */
  get routes(): Route[] {
    return this.dataplane.listRoutes();
  }

  /** The simulated pod of that name on this node. */
  pod(name: string): SimulatedPod | undefined {
    return this.pods.get(name);
  }

  podTools(name: string): PodTools | undefined {
    const pod = this.pods.get(name);
    return (
      pod && {
        ping: async (destination, options) => {
          const report = await pod.ping(destination, options);
          return { text: formatPing(report), report };
        },
        curl: async (url, options) => {
          const report = await pod.curl(url, options);
          return { text: formatCurl(report), report };
        },
        traceroute: async (destination, options) => {
          const report = await pod.traceroute(destination, options);
          return { text: formatTraceroute(report), report };
        },
      }
    );
  }

  /** Stops every pod's timers (pings in flight, TCP retransmissions, reassembly). */
  close(): void {
    for (const pod of this.pods.values()) pod.close();
  }
}

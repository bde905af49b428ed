/**
 * The seam between the agent and its dataplane. Two dataplanes sit behind it, in sibling rooms: the userspace node
 * (userspace/: lab-node.ts with dataplane.ts and pod/, the whole node emulated in the agent) and the kernel-backed node
 * (kernel/: the container's kernel holds tunl0's routes, the cali veths and the pods' namespaces, and the agent is
 * tunl0's driver). The API, the counters and the capture see only this.
 */
import type { ClusterState, NodeState, PeerRoute, PodState } from '../calico/index.js';
import type { Link, Route } from '../routing/index.js';
import type { TapSource } from './capture/session.js';
import type { DataplaneStats } from './counters.js';
import type { PodTools } from './kernel/pod-tools.js';
import type { SimulatedPod } from './userspace/pod/index.js';

export type DataplaneKind = 'userspace' | 'kernel';

/** What the API reads and drives of the packets' path. */
export interface NodePackets extends TapSource {
  stats(): DataplaneStats;
  /** A packet for the tests and the injection command, as received on that interface. */
  inject(interfaceName: string, packet: Buffer): void;
  /** Received on eth0 by the raw IPIP socket, outer header included. */
  fromUnderlay(packet: Buffer): void;
}

export interface RunningNode {
  readonly kind: DataplaneKind;
  readonly cluster: ClusterState;
  readonly node: NodeState;
  /** The node's interfaces as the spec makes them (the views `--spec` shows offline). */
  readonly links: readonly Link[];
  readonly localPods: readonly PodState[];
  /** The node's routes in `ip route` order. */
  readonly routes: Route[];
  readonly dataplane: NodePackets;
  /** The simulated pod of that name: only the userspace node has them; the kernel's pods are namespaces. */
  pod(name: string): SimulatedPod | undefined;
  /** ping, curl and traceroute from a pod of this node: the simulated pod's, or the real tools in its namespace. */
  podTools(name: string): PodTools | undefined;
  /** The routes the node's BGP speaker chose changed: the node's table follows them. */
  setPeerRoutes(routes: readonly PeerRoute[]): void | Promise<void>;
  /** Stops what runs for the pods (timers, servers); resolves once the node has removed what it made. */
  close(): void | Promise<void>;
}

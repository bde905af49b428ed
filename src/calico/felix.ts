/**
 * What Felix, BIRD and the kernel together leave on a node (and the CNI plugin inside a pod): the
 * interfaces and routes, as a pure function of the cluster state. The routing layer renders and sorts
 * them; here they come in order of meaning.
 */
import { Ipv4Address, Ipv4Prefix } from '../routing/address.js';
import type { Link } from '../routing/link.js';
import type { Route, UnicastRoute } from '../routing/route.js';
import {
  HOST_IFINDEX,
  nodeByName,
  podByName,
  workloadMtu,
  type ClusterState,
  type NodeState,
  type PodState,
} from './cluster.js';
import { underlaySubnet, underlayRouter } from './spec.js';

export interface Dataplane {
  readonly links: Link[];
  /**
   * Made anew, one at a time, by each walk over them: a node in a large cluster has 100k routes, which the agent's
   * route table keeps in far less than the route objects take.
   */
  readonly routes: Iterable<Route>;
}

/** The node's real eth0, when the agent runs on a live interface rather than the spec's defaults. */
export interface Eth0Options {
  readonly index: number;
  /** What `ip` prints after '@', e.g. `if26` for the host end of Docker's veth. */
  readonly parent?: string;
  readonly mac: string;
}

/** Calico's fixed next hop inside every pod, answered by proxy ARP on the cali interface. */
const POD_GATEWAY = Ipv4Address.parse('169.254.1.1');
const HOST_ROUTE_LENGTH = 32;
const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';
/** Every cali interface has this MAC, so pods never need to relearn their gateway. */
const CALI_MAC = 'ee:ee:ee:ee:ee:ee';
/** The kernel's default for the tunl0 it creates in every namespace (1500 minus the IPIP header), untouched in pods. */
const KERNEL_TUNL0_MTU = 1480;
const VETH_FLAGS = ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'] as const;

/** `lo`; busybox `ip` inside a pod prints no `group`. */
function loopback(group: 'default' | undefined): Link {
  return {
    index: HOST_IFINDEX.lo,
    name: 'lo',
    flags: ['LOOPBACK', 'UP', 'LOWER_UP'],
    mtu: 65536,
    qdisc: 'noqueue',
    state: 'UNKNOWN',
    ...(group && { group }),
    qlen: 1000,
    linkType: 'loopback',
    linkAddress: '00:00:00:00:00:00',
    linkBroadcast: '00:00:00:00:00:00',
    addresses: [{ address: Ipv4Address.parse('127.0.0.1'), prefixLength: 8, scope: 'host', label: 'lo' }],
  };
}

/** Up with Calico's address on a node; elsewhere the bare device the ipip module creates in every namespace. */
function tunl0(configured: { address: Ipv4Address; mtu: number } | undefined): Link {
  return {
    index: HOST_IFINDEX.tunl0,
    name: 'tunl0',
    parent: 'NONE',
    flags: configured ? ['NOARP', 'UP', 'LOWER_UP'] : ['NOARP'],
    mtu: configured ? configured.mtu : KERNEL_TUNL0_MTU,
    qdisc: configured ? 'noqueue' : 'noop',
    state: configured ? 'UNKNOWN' : 'DOWN',
    ...(configured && { group: 'default' }),
    qlen: 1000,
    linkType: 'ipip',
    linkAddress: '0.0.0.0',
    linkBroadcast: '0.0.0.0',
    addresses: configured
      ? [{ address: configured.address, prefixLength: HOST_ROUTE_LENGTH, scope: 'global', label: 'tunl0' }]
      : [],
  };
}

/** Docker's MAC scheme (02:42 + the IPv4 address); the peer index is a stand-in, one above, as a fresh veth pair is numbered. */
function defaultEth0(node: NodeState): Eth0Options {
  const mac = ['02', '42', ...node.ip.octets().map((o) => o.toString(16).padStart(2, '0'))].join(':');
  return { index: HOST_IFINDEX.eth0, parent: `if${HOST_IFINDEX.eth0 + 1}`, mac };
}

function eth0(cluster: ClusterState, node: NodeState, options: Eth0Options): Link {
  const network = underlaySubnet(cluster.spec.network, node.ip);
  return {
    index: options.index,
    name: 'eth0',
    ...(options.parent !== undefined && { parent: options.parent }),
    flags: VETH_FLAGS,
    mtu: cluster.spec.network.mtu,
    qdisc: 'noqueue',
    state: 'UP',
    group: 'default',
    linkType: 'ether',
    linkAddress: options.mac,
    linkBroadcast: BROADCAST_MAC,
    linkNetns: '0',
    addresses: [
      { address: node.ip, prefixLength: network.length, broadcast: network.last(), scope: 'global', label: 'eth0' },
    ],
  };
}

function caliLink(pod: PodState): Link {
  return {
    index: pod.hostIfIndex,
    name: pod.hostInterface,
    parent: `if${pod.podIfIndex}`,
    flags: VETH_FLAGS,
    mtu: pod.mtu,
    qdisc: 'noqueue',
    state: 'UP',
    group: 'default',
    linkType: 'ether',
    linkAddress: CALI_MAC,
    linkBroadcast: BROADCAST_MAC,
    linkNetns: pod.netns,
    addresses: [],
  };
}

function hostRoute(address: Ipv4Address): Ipv4Prefix {
  return Ipv4Prefix.of(address, HOST_ROUTE_LENGTH);
}

/**
 * A route BIRD learned from a peer: a block (or a borrowed /32) and the peer's node address as BGP next hop. Offline
 * views have none and take the routes a converged mesh brings (`meshRoutes`).
 */
export interface PeerRoute {
  readonly destination: Ipv4Prefix;
  readonly nextHop: Ipv4Address;
}

/**
 * How BIRD writes a learned route into the kernel, per calico_kernel_programming: through tunl0, or straight over eth0
 * when the pool does not encapsulate towards that next hop.
 */
function remoteRoute(cluster: ClusterState, subnet: Ipv4Prefix, { destination, nextHop }: PeerRoute): UnicastRoute {
  const mode = cluster.pool.ipipMode;
  // CrossSubnet encapsulates only when the next hop is outside this node's subnet (`bgp_next_hop ~ network_v4`).
  const direct = mode === 'Never' || (mode === 'CrossSubnet' && subnet.contains(nextHop));
  return direct
    ? { kind: 'unicast', destination, gateway: nextHop, dev: 'eth0', scope: 'global', proto: 'bird' }
    : { kind: 'unicast', destination, gateway: nextHop, dev: 'tunl0', onlink: true, scope: 'global', proto: 'bird' };
}

/** Addresses a node uses from other nodes' blocks: BIRD advertises each as a /32, which beats the owner's blackhole. */
function borrowedAddresses(cluster: ClusterState, node: NodeState): Ipv4Address[] {
  const held = [
    ...(node.tunnelAddress ? [node.tunnelAddress] : []),
    ...cluster.pods.filter((pod) => pod.node === node.name).map((pod) => pod.ip),
  ];
  return held.filter((address) => !node.blocks.some((block) => block.contains(address)));
}

/**
 * What a node's BIRD exports to its peers (bird_aggr.cfg and calico_export_to_bgp_peers): its confirmed blocks, and
 * the /32 of each address it holds outside them.
 */
export function announcedPrefixes(cluster: ClusterState, node: NodeState): Ipv4Prefix[] {
  return [...node.blocks, ...borrowedAddresses(cluster, node).map(hostRoute)];
}

/**
 * What a node learns once the mesh has converged: every other node's announcements, with that node as next hop. Made
 * as they are read, as the routes are.
 */
export function* meshRoutes(cluster: ClusterState, node: NodeState): Generator<PeerRoute> {
  for (const peer of cluster.nodes) {
    if (peer.name === node.name) continue;
    for (const destination of announcedPrefixes(cluster, peer)) yield { destination, nextHop: peer.ip };
  }
}

function requireNode(cluster: ClusterState, name: string): NodeState {
  const node = nodeByName(cluster, name);
  if (!node) throw new Error(`no node named ${JSON.stringify(name)} in cluster ${cluster.spec.name}`);
  return node;
}

export interface NodeDataplaneOptions {
  eth0?: Eth0Options;
  /** What the node's BGP speaker learned; without it, what a converged mesh would bring. */
  peerRoutes?: Iterable<PeerRoute>;
}

export function nodeDataplane(cluster: ClusterState, nodeName: string, options: NodeDataplaneOptions = {}): Dataplane {
  const node = requireNode(cluster, nodeName);
  const localPods = cluster.pods.filter((pod) => pod.node === node.name);
  const eth0Options = options.eth0 ?? defaultEth0(node);
  const taken = [
    HOST_IFINDEX.lo,
    ...(node.tunnelAddress ? [HOST_IFINDEX.tunl0] : []),
    ...localPods.map((pod) => pod.hostIfIndex),
  ];
  // Pod views name their host veth by index (eth0@ifN) from the cluster state alone, so eth0 must fit around them.
  if (taken.includes(eth0Options.index)) {
    throw new RangeError(
      `eth0 index ${eth0Options.index} on ${node.name} collides with lo, tunl0 or a cali interface (${taken.join(', ')})`,
    );
  }

  const links = [
    loopback('default'),
    ...(node.tunnelAddress ? [tunl0({ address: node.tunnelAddress, mtu: workloadMtu(cluster.spec) })] : []),
    eth0(cluster, node, eth0Options),
    ...localPods.map(caliLink),
  ];

  const peerRoutes = options.peerRoutes ?? { [Symbol.iterator]: () => meshRoutes(cluster, node) };
  return { links, routes: { [Symbol.iterator]: () => nodeRoutes(cluster, node, localPods, peerRoutes) } };
}

/**
 * The connected eth0 route, what BGP brought from the peers, this node's blocks as blackholes and its pods' /32s, made
 * one by one as they are read.
 */
function* nodeRoutes(
  cluster: ClusterState,
  node: NodeState,
  localPods: readonly PodState[],
  peerRoutes: Iterable<PeerRoute>,
): Generator<Route> {
  const { network } = cluster.spec;
  const subnet = underlaySubnet(network, node.ip);
  yield { kind: 'unicast', destination: subnet, dev: 'eth0', scope: 'link', proto: 'kernel', source: node.ip };
  // The underlay's own routes to the other subnets, as the machine's network set-up gives them (`proto boot`, which
  // `ip route` does not print).
  for (const other of network.subnets) {
    if (other === subnet) continue;
    yield { kind: 'unicast', destination: other, gateway: underlayRouter(subnet), dev: 'eth0', scope: 'global' };
  }
  for (const learned of peerRoutes) yield remoteRoute(cluster, subnet, learned);
  for (const destination of node.blocks) yield { kind: 'blackhole', destination, proto: 'bird' };
  for (const pod of localPods)
    yield { kind: 'unicast', destination: hostRoute(pod.ip), dev: pod.hostInterface, scope: 'link' };
}

/** Inside a pod: what the Calico CNI plugin configures in its namespace. */
export function podDataplane(cluster: ClusterState, podName: string): Dataplane {
  const pod = podByName(cluster, podName);
  if (!pod) throw new Error(`no pod named ${JSON.stringify(podName)} in cluster ${cluster.spec.name}`);
  const links: Link[] = [
    loopback(undefined),
    ...(cluster.pool.ipipMode === 'Never' ? [] : [tunl0(undefined)]),
    {
      index: pod.podIfIndex,
      name: 'eth0',
      parent: `if${pod.hostIfIndex}`,
      // No M-DOWN: that is not a kernel flag but `ip`'s view of the absent peer, which the renderer derives.
      flags: VETH_FLAGS,
      mtu: pod.mtu,
      qdisc: 'noqueue',
      state: 'UP',
      linkType: 'ether',
      linkAddress: pod.podMac,
      linkBroadcast: BROADCAST_MAC,
      addresses: [
        { address: pod.ip, prefixLength: HOST_ROUTE_LENGTH, broadcast: pod.ip, scope: 'global', label: 'eth0' },
      ],
    },
  ];
  const routes: Route[] = [
    { kind: 'unicast', destination: Ipv4Prefix.parse('0.0.0.0/0'), gateway: POD_GATEWAY, dev: 'eth0', scope: 'global' },
    { kind: 'unicast', destination: hostRoute(POD_GATEWAY), dev: 'eth0', scope: 'link' },
  ];
  return { links, routes };
}

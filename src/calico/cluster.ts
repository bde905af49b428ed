/**
 * The whole cluster as every node agent computes it from the spec alone: the Kubernetes objects a
 * lab user queries and the Calico IPAM decisions behind them. Nothing here is random, so agents that
 * never talk to each other still agree on every address, name and interface.
 */
import { createHash } from 'node:crypto';
import { Ipv4Address, Ipv4Prefix } from '../routing/address.js';
import { Ipam, type IpPool } from './ipam.js';
import { podName, podNameSuffix, podTemplateHash, vethNameForWorkload } from './naming.js';
import { nodeLabels, nodeRoles, nodeTaints, schedule, type Taint } from './scheduler.js';
import { IPIP_OVERHEAD } from '../wire/ipip.js';
import { NODE_POD_CIDR_LENGTH, underlaySubnet, type ClusterSpec, type Container, type NodeRole } from './spec.js';

/** Interface indexes on a node by default: lo, tunl0, eth0, then one cali veth per pod. */
export const HOST_IFINDEX = { lo: 1, tunl0: 2, eth0: 3 } as const;
const FIRST_CALI_IFINDEX = 4;
/** The pod end of the veth, as in the seed's `4: eth0@if8`. */
export const POD_IFINDEX = 4;

export interface NodeState {
  readonly name: string;
  /** The underlay address Calico uses (BGP peering, IPIP outer header). */
  readonly ip: Ipv4Address;
  /** The Node object's InternalIP; the same address here, though kubelet --node-ip could make them differ. */
  readonly internalIP: Ipv4Address;
  readonly role: NodeRole;
  /** kubectl's ROLES column, already sorted: join with ',' (or print `<none>` when empty). */
  readonly roles: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly taints: readonly Taint[];
  /** Kubernetes' PodCIDR from kube-controller-manager; Calico IPAM does not use it. */
  readonly podCIDR: Ipv4Prefix;
  /** Calico blocks affine to this node, in the order it claimed them. */
  readonly blocks: readonly Ipv4Prefix[];
  readonly tunnelAddress: Ipv4Address | undefined;
}

export interface PodState {
  readonly name: string;
  readonly namespace: string;
  readonly deployment: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly ip: Ipv4Address;
  readonly node: string;
  /** The host end of the pod's veth, `cali` + 11 hex digits. */
  readonly hostInterface: string;
  readonly hostIfIndex: number;
  readonly podIfIndex: number;
  readonly podMac: string;
  /** The pod's network namespace as the CNI plugin names it (`cni-<uuid>`), shown by `ip addr` on the host. */
  readonly netns: string;
  readonly containers: readonly Container[];
  readonly mtu: number;
}

export interface ClusterState {
  readonly spec: ClusterSpec;
  readonly pool: IpPool;
  readonly nodes: readonly NodeState[];
  /** In creation order: Deployment by Deployment, replica by replica. */
  readonly pods: readonly PodState[];
}

/** Calico's veth and tunnel MTU: the host MTU minus the IPIP header, or the host MTU when nothing is encapsulated. */
export function workloadMtu(spec: ClusterSpec): number {
  return spec.pool.ipipMode === 'Never' ? spec.network.mtu : spec.network.mtu - IPIP_OVERHEAD;
}

/** A digest of the pod's identity, the source of its MAC and netns name where the real ones are random. */
function podDigest(namespace: string, name: string): Buffer {
  return createHash('sha256').update(`${namespace}/${name}`).digest();
}

/** A locally administered unicast MAC, as the kernel's random veth addresses are. */
function podMac(digest: Buffer): string {
  const bytes = [...digest.subarray(0, 6)];
  bytes[0] = (bytes[0] & 0xfc) | 0x02;
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** `cni-` + a version-4-shaped UUID, the form libcni gives the namespaces it creates. */
function podNetns(digest: Buffer): string {
  const bytes = [...digest.subarray(6, 22)];
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.map((b) => b.toString(16).padStart(2, '0')).join('');
  // Joined, not a template literal: V8 would keep that as a tree of pieces, several times the text's size, per pod.
  return ['cni', hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join('-');
}

/** The i-th node's PodCIDR, as kube-controller-manager's range allocator hands them out. */
function podCidrOf(spec: ClusterSpec, index: number): Ipv4Prefix {
  const size = 2 ** (32 - NODE_POD_CIDR_LENGTH);
  return Ipv4Prefix.of(spec.clusterCIDR.first().add(index * size), NODE_POD_CIDR_LENGTH);
}

export function buildCluster(spec: ClusterSpec): ClusterState {
  const ipam = new Ipam(spec.pool);
  // calico-node claims each node's tunnel address at start-up, before any pod exists.
  const tunnels = new Map(
    spec.nodes.map((node) => [
      node.name,
      spec.pool.ipipMode === 'Never' ? undefined : ipam.assignTunnelAddress(node.name),
    ]),
  );

  const mtu = workloadMtu(spec);
  const nextIfIndex = new Map(spec.nodes.map((node) => [node.name, FIRST_CALI_IFINDEX]));
  const pods = schedule(spec.nodes, spec.workloads).flatMap(({ deployment, nodes }) => {
    const hash = podTemplateHash(deployment.template.raw);
    const suffixes = podNameSuffix(`${deployment.namespace}/${deployment.name}-${hash}`, nodes.length);
    return nodes.map((node, replica): PodState => {
      const name = podName(deployment.name, hash, suffixes[replica]);
      const hostIfIndex = nextIfIndex.get(node)!;
      nextIfIndex.set(node, hostIfIndex + 1);
      const digest = podDigest(deployment.namespace, name);
      return {
        name,
        namespace: deployment.namespace,
        deployment: deployment.name,
        // Not a spread: once a spread site has run a few times, V8 gives each object it makes a hidden class of its
        // own, some 200 bytes per pod. (One object for all replicas would do, but YAML output would then alias it.)
        labels: Object.assign({}, deployment.template.labels, { 'pod-template-hash': hash }),
        ip: ipam.assign(node, `k8s-pod-network.${deployment.namespace}.${name}`),
        node,
        hostInterface: vethNameForWorkload(deployment.namespace, name),
        hostIfIndex,
        podIfIndex: POD_IFINDEX,
        podMac: podMac(digest),
        netns: podNetns(digest),
        containers: deployment.template.containers,
        mtu,
      };
    });
  });

  const nodes = spec.nodes.map((node, index): NodeState => {
    const labels = nodeLabels(node);
    const tunnelAddress = tunnels.get(node.name);
    const annotations: Record<string, string> = {
      'node.alpha.kubernetes.io/ttl': '0',
      'projectcalico.org/IPv4Address': `${node.ip}/${underlaySubnet(spec.network, node.ip).length}`,
    };
    if (tunnelAddress) annotations['projectcalico.org/IPv4IPIPTunnelAddr'] = tunnelAddress.toString();
    return {
      name: node.name,
      ip: node.ip,
      internalIP: node.ip,
      role: node.role,
      roles: nodeRoles(labels),
      labels,
      annotations,
      taints: nodeTaints(node),
      podCIDR: podCidrOf(spec, index),
      blocks: ipam.blocksOf(node.name),
      tunnelAddress,
    };
  });

  return { spec, pool: spec.pool, nodes, pods };
}

export function nodeByName(cluster: ClusterState, name: string): NodeState | undefined {
  return cluster.nodes.find((node) => node.name === name);
}

/** Without a namespace, the first pod of that name in any namespace. */
export function podByName(cluster: ClusterState, name: string, namespace?: string): PodState | undefined {
  return cluster.pods.find((pod) => pod.name === name && (namespace === undefined || pod.namespace === namespace));
}

export function podByIp(cluster: ClusterState, address: Ipv4Address): PodState | undefined {
  return cluster.pods.find((pod) => pod.ip.equals(address));
}

/** The node whose affine block holds the address (not necessarily where a borrowed address is in use). */
export function nodeOwningBlock(cluster: ClusterState, address: Ipv4Address): NodeState | undefined {
  return cluster.nodes.find((node) => node.blocks.some((block) => block.contains(address)));
}

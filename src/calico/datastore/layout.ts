/**
 * Calico's etcdv3 datastore layout (libcalico-go/lib/backend/model, calico v3.29): the keys and the JSON values of
 * what the lab stores, so that `etcdctl get --prefix /calico --keys-only` reads as on a real cluster. Pure: the I/O is
 * the store's (store.ts).
 */
import { Ipv4Address, type Ipv4Prefix } from '../../routing/address.js';
import type { IpPool } from '../ipam.js';
import { workloadEndpointName } from '../naming.js';
import { parseSelector, type Selector, type SelectorError } from '../selector.js';

const RESOURCES = '/calico/resources/v3/projectcalico.org';
const IPAM = '/calico/ipam/v2';

/** A CIDR in a key: `/` becomes `-` (`192.168.77.128-26`). */
const cidrInKey = (cidr: Ipv4Prefix): string => cidr.toString().replace('/', '-');

export const DATASTORE_KEYS = {
  ipPool: (name: string) => `${RESOURCES}/ippools/${name}`,
  node: (name: string) => `${RESOURCES}/nodes/${name}`,
  nodes: `${RESOURCES}/nodes/`,
  bgpPeer: (name: string) => `${RESOURCES}/bgppeers/${name}`,
  workloadEndpoint: (namespace: string, name: string) => `${RESOURCES}/workloadendpoints/${namespace}/${name}`,
  workloadEndpoints: `${RESOURCES}/workloadendpoints/`,
  bgpPeers: `${RESOURCES}/bgppeers/`,
  bgpConfiguration: (name: string) => `${RESOURCES}/bgpconfigurations/${name}`,
  bgpConfigurations: `${RESOURCES}/bgpconfigurations/`,
  clusterInformation: `${RESOURCES}/clusterinformations/default`,
  ipamConfig: `${IPAM}/config`,
  blocks: `${IPAM}/assignment/ipv4/block/`,
  block: (cidr: Ipv4Prefix) => `${IPAM}/assignment/ipv4/block/${cidrInKey(cidr)}`,
  affinity: (host: string, cidr: Ipv4Prefix) => `${IPAM}/host/${host}/ipv4/block/${cidrInKey(cidr)}`,
  affinities: (host: string) => `${IPAM}/host/${host}/ipv4/block/`,
  handle: (handle: string) => `${IPAM}/handle/${handle}`,
} as const;

/** `cidr` back from a key's last segment. */
export function cidrOfKey(key: string): string {
  const last = key.slice(key.lastIndexOf('/') + 1);
  const dash = last.lastIndexOf('-');
  return `${last.slice(0, dash)}/${last.slice(dash + 1)}`;
}

interface Metadata {
  name: string;
  creationTimestamp: string;
  labels?: Record<string, string>;
}

export interface IpPoolResource {
  kind: 'IPPool';
  apiVersion: 'projectcalico.org/v3';
  metadata: Metadata;
  spec: {
    cidr: string;
    vxlanMode: 'Never';
    ipipMode: IpPool['ipipMode'];
    natOutgoing: boolean;
    blockSize: number;
    nodeSelector: string;
    allowedUses: string[];
  };
}

export interface NodeResource {
  kind: 'Node';
  apiVersion: 'projectcalico.org/v3';
  metadata: Metadata;
  spec: {
    bgp: { ipv4Address: string; ipv4IPIPTunnelAddr?: string; routeReflectorClusterID?: string };
    orchRefs: { nodeName: string; orchestrator: 'k8s' }[];
  };
  status: Record<string, never>;
}

/**
 * A BGPPeer as `calicoctl apply` stores it. Which nodes peer: `node` (one), `nodeSelector` (those it selects) or
 * neither (every node, a global peer). With whom: `peerIP` and `asNumber`, or the nodes `peerSelector` selects.
 */
export interface BgpPeerResource {
  kind: 'BGPPeer';
  apiVersion: 'projectcalico.org/v3';
  metadata: Metadata;
  spec: { peerIP?: string; asNumber?: number; node?: string; nodeSelector?: string; peerSelector?: string };
}

/** What the lab reads of a BGPPeer: the fields that decide who peers with whom. */
export interface BgpPeerSpec {
  readonly name: string;
  /** With `asNumber`, unless `peerSelector` names the peers. */
  readonly peerIP?: Ipv4Address;
  readonly asNumber?: number;
  /** Set: a node-specific peer of that node only. */
  readonly node?: string;
  readonly nodeSelector?: Selector;
  readonly peerSelector?: Selector;
}

/** RFC 6793's AS numbers: 4 octets; 0 is reserved. */
const MAX_AS_NUMBER = 2 ** 32 - 1;
/** A Calico resource name: a DNS-1123 subdomain. */
const RESOURCE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const isAsNumber = (value: unknown): value is number =>
  typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_AS_NUMBER;

/** The checks every Calico v3 resource shares: kind, apiVersion, a DNS-1123 name. */
function resourceName(value: unknown, kind: string): string | { error: string } {
  const object = value as { kind?: unknown; apiVersion?: unknown; metadata?: { name?: unknown } } | null;
  if (typeof object !== 'object' || object === null) return { error: 'not an object' };
  if (object.kind !== kind) return { error: `kind ${JSON.stringify(object.kind)} is not ${kind}` };
  if (object.apiVersion !== 'projectcalico.org/v3') {
    return { error: `apiVersion ${JSON.stringify(object.apiVersion)} is not projectcalico.org/v3` };
  }
  const name = object.metadata?.name;
  if (typeof name !== 'string' || !RESOURCE_NAME.test(name) || name.length > 253) {
    return { error: `metadata.name ${JSON.stringify(name)} is not a DNS-1123 subdomain` };
  }
  return name;
}

function selectorField(spec: Record<string, unknown>, field: string): Selector | undefined | { error: string } {
  const text = spec[field];
  if (text === undefined || text === '') return undefined;
  if (typeof text !== 'string') return { error: `spec.${field} is not a selector` };
  try {
    return parseSelector(text);
  } catch (error) {
    return { error: `spec.${field}: ${(error as SelectorError).message}` };
  }
}

const failed = (value: unknown): value is { error: string } =>
  typeof value === 'object' && value !== null && 'error' in value;

/**
 * A BGPPeer from its stored or applied JSON, or why it cannot be one, in calicoctl's words where it has them. Shared
 * by calicoctl (before it writes) and the agents (as they read): a malformed object never becomes a session.
 */
export function parseBgpPeer(value: unknown): BgpPeerSpec | string {
  const name = resourceName(value, 'BGPPeer');
  if (failed(name)) return name.error;
  const spec = ((value as { spec?: unknown }).spec ?? {}) as Record<string, unknown>;
  const nodeSelector = selectorField(spec, 'nodeSelector');
  if (failed(nodeSelector)) return nodeSelector.error;
  const peerSelector = selectorField(spec, 'peerSelector');
  if (failed(peerSelector)) return peerSelector.error;
  if (spec.node !== undefined && typeof spec.node !== 'string') return 'spec.node is not a node name';
  const node = spec.node || undefined;
  // libcalico-go's validator: one way to say which nodes, one way to say which peers.
  if (node !== undefined && nodeSelector) return 'spec.node and spec.nodeSelector cannot both be set';
  if (peerSelector) {
    if (spec.peerIP !== undefined && spec.peerIP !== '')
      return 'spec.peerIP must be empty when spec.peerSelector is set';
    if (spec.asNumber !== undefined && spec.asNumber !== 0) {
      return 'spec.asNumber must be empty when spec.peerSelector is set';
    }
    return { name, peerSelector, ...(node !== undefined && { node }), ...(nodeSelector && { nodeSelector }) };
  }
  const peerIP = typeof spec.peerIP === 'string' ? Ipv4Address.tryParse(spec.peerIP) : undefined;
  if (!peerIP) return `spec.peerIP ${JSON.stringify(spec.peerIP)} is not an IPv4 address`;
  if (!isAsNumber(spec.asNumber)) {
    return `spec.asNumber ${JSON.stringify(spec.asNumber)} is not an AS number (1 to ${MAX_AS_NUMBER})`;
  }
  return {
    name,
    peerIP,
    asNumber: spec.asNumber,
    ...(node !== undefined && { node }),
    ...(nodeSelector && { nodeSelector }),
  };
}

export function bgpPeerResource(peer: BgpPeerSpec, now: Date): BgpPeerResource {
  return {
    kind: 'BGPPeer',
    apiVersion: 'projectcalico.org/v3',
    metadata: { name: peer.name, creationTimestamp: now.toISOString() },
    spec: {
      ...(peer.peerIP && { peerIP: peer.peerIP.toString() }),
      ...(peer.asNumber !== undefined && { asNumber: peer.asNumber }),
      ...(peer.node !== undefined && { node: peer.node }),
      ...(peer.nodeSelector && { nodeSelector: peer.nodeSelector.text }),
      ...(peer.peerSelector && { peerSelector: peer.peerSelector.text }),
    },
  };
}

/** A BGPConfiguration as calicoctl stores it: `default` is the cluster's, `node.NAME` one node's. */
export interface BgpConfigurationResource {
  kind: 'BGPConfiguration';
  apiVersion: 'projectcalico.org/v3';
  metadata: Metadata;
  spec: { nodeToNodeMeshEnabled?: boolean; asNumber?: number; logSeverityScreen?: string };
}

/** The BGP settings the lab's agents act on. */
export interface BgpConfigurationSpec {
  readonly name: string;
  /** Absent: the mesh is on, as on a cluster with no BGPConfiguration. */
  readonly nodeToNodeMeshEnabled?: boolean;
  readonly asNumber?: number;
}

/** What a cluster without a `default` BGPConfiguration does. */
export const BGP_CONFIGURATION_DEFAULTS = { nodeToNodeMeshEnabled: true } as const;

export function parseBgpConfiguration(value: unknown): BgpConfigurationSpec | string {
  const name = resourceName(value, 'BGPConfiguration');
  if (failed(name)) return name.error;
  const spec = ((value as { spec?: unknown }).spec ?? {}) as Record<string, unknown>;
  const mesh = spec.nodeToNodeMeshEnabled;
  if (mesh !== undefined && typeof mesh !== 'boolean') return 'spec.nodeToNodeMeshEnabled is not true or false';
  if (spec.asNumber !== undefined && !isAsNumber(spec.asNumber)) {
    return `spec.asNumber ${JSON.stringify(spec.asNumber)} is not an AS number (1 to ${MAX_AS_NUMBER})`;
  }
  return {
    name,
    ...(mesh !== undefined && { nodeToNodeMeshEnabled: mesh }),
    ...(spec.asNumber !== undefined && { asNumber: spec.asNumber }),
  };
}

export function bgpConfigurationResource(configuration: BgpConfigurationSpec, now: Date): BgpConfigurationResource {
  return {
    kind: 'BGPConfiguration',
    apiVersion: 'projectcalico.org/v3',
    metadata: { name: configuration.name, creationTimestamp: now.toISOString() },
    spec: {
      ...(configuration.nodeToNodeMeshEnabled !== undefined && {
        nodeToNodeMeshEnabled: configuration.nodeToNodeMeshEnabled,
      }),
      ...(configuration.asNumber !== undefined && { asNumber: configuration.asNumber }),
    },
  };
}

/** The CNI plugin's IPAM handle for a pod, as in `k8s-pod-network.<container ID>`. */
export function podHandle(containerId: string): string {
  return `k8s-pod-network.${containerId}`;
}

export interface WorkloadEndpointResource {
  kind: 'WorkloadEndpoint';
  apiVersion: 'projectcalico.org/v3';
  metadata: Metadata & { namespace: string; labels: Record<string, string> };
  spec: {
    orchestrator: 'k8s';
    node: string;
    containerID: string;
    pod: string;
    endpoint: 'eth0';
    serviceAccountName: string;
    ipNetworks: string[];
    profiles: string[];
    interfaceName: string;
    mac: string;
  };
}

/** What the CNI plugin writes for a pod it wired (an etcd datastore), as `calicoctl get wep -o yaml` shows it. */
export function workloadEndpointResource(
  pod: {
    readonly name: string;
    readonly namespace: string;
    readonly node: string;
    readonly labels: Readonly<Record<string, string>>;
    readonly ip: Ipv4Address;
    readonly hostInterface: string;
    readonly podMac: string;
  },
  containerId: string,
  now: Date,
): WorkloadEndpointResource {
  const serviceAccount = 'default';
  return {
    kind: 'WorkloadEndpoint',
    apiVersion: 'projectcalico.org/v3',
    metadata: {
      name: workloadEndpointName(pod.node, pod.name),
      namespace: pod.namespace,
      creationTimestamp: now.toISOString(),
      labels: {
        ...pod.labels,
        'projectcalico.org/namespace': pod.namespace,
        'projectcalico.org/orchestrator': 'k8s',
        'projectcalico.org/serviceaccount': serviceAccount,
      },
    },
    spec: {
      orchestrator: 'k8s',
      node: pod.node,
      containerID: containerId,
      pod: pod.name,
      endpoint: 'eth0',
      serviceAccountName: serviceAccount,
      ipNetworks: [`${pod.ip}/32`],
      profiles: [`kns.${pod.namespace}`, `ksa.${pod.namespace}.${serviceAccount}`],
      interfaceName: pod.hostInterface,
      mac: pod.podMac,
    },
  };
}

/** What calico-node's startup writes for the default pool (CALICO_IPV4POOL_*), as `calicoctl get ippool -o yaml` shows. */
export function ipPoolResource(pool: IpPool, now: Date): IpPoolResource {
  return {
    kind: 'IPPool',
    apiVersion: 'projectcalico.org/v3',
    metadata: { name: pool.name, creationTimestamp: now.toISOString() },
    spec: {
      cidr: pool.cidr.toString(),
      vxlanMode: 'Never',
      ipipMode: pool.ipipMode,
      natOutgoing: true,
      blockSize: pool.blockSize,
      nodeSelector: 'all()',
      allowedUses: ['Workload', 'Tunnel'],
    },
  };
}

/** What a node's record keeps across registrations: what `calicoctl label` and `calicoctl patch` set. */
export interface NodeKept {
  creationTimestamp?: string;
  labels: Record<string, string>;
  routeReflectorClusterID?: string;
}

/**
 * A node as calico-node registers it: its autodetected address with the subnet's length, its tunnel address, the
 * labels (Kubernetes' own, which kube-controllers copies onto Calico's Node, and any set with calicoctl).
 */
export function nodeResource(
  name: string,
  address: Ipv4Address,
  subnet: Ipv4Prefix,
  tunnelAddress: Ipv4Address | undefined,
  now: Date,
  kept: NodeKept = { labels: {} },
): NodeResource {
  return {
    kind: 'Node',
    apiVersion: 'projectcalico.org/v3',
    metadata: { name, creationTimestamp: kept.creationTimestamp ?? now.toISOString(), labels: kept.labels },
    spec: {
      bgp: {
        ipv4Address: `${address}/${subnet.length}`,
        ...(tunnelAddress && { ipv4IPIPTunnelAddr: tunnelAddress.toString() }),
        ...(kept.routeReflectorClusterID && { routeReflectorClusterID: kept.routeReflectorClusterID }),
      },
      orchRefs: [{ nodeName: name, orchestrator: 'k8s' }],
    },
    status: {},
  };
}

export const CLUSTER_INFORMATION = {
  kind: 'ClusterInformation',
  apiVersion: 'projectcalico.org/v3',
  metadata: { name: 'default' },
  spec: { calicoVersion: 'v3.21.6', clusterType: 'k8s,bgp,kubeadm,kdd', datastoreReady: true },
} as const;

export const IPAM_CONFIG = { strict_affinity: false, auto_allocate_blocks: true, maxBlocksPerHost: 0 } as const;

export type AffinityState = 'pending' | 'confirmed' | 'pendingDeletion';

export interface BlockAffinityValue {
  state: AffinityState;
  deleted: boolean;
}

export interface AllocationAttribute {
  handle_id: string;
  secondary: Record<string, string>;
}

/** model.AllocationBlock's JSON: `allocations[i]` is an index into `attributes`, or null while the address is free. */
export interface AllocationBlockValue {
  cidr: string;
  affinity: string | null;
  allocations: (number | null)[];
  unallocated: number[];
  attributes: AllocationAttribute[];
  deleted: boolean;
  sequenceNumber: number;
  sequenceNumberForAllocation: Record<string, number>;
}

export interface IpamHandleValue {
  block: Record<string, number>;
  deleted: boolean;
}

/** `newBlock`: every ordinal free, in order, and the host's affinity. */
export function newAllocationBlock(cidr: Ipv4Prefix, host: string, now: Date): AllocationBlockValue {
  return {
    cidr: cidr.toString(),
    affinity: `host:${host}`,
    allocations: Array.from({ length: cidr.size }, () => null),
    unallocated: Array.from({ length: cidr.size }, (_, ordinal) => ordinal),
    attributes: [],
    deleted: false,
    // Nanoseconds since the epoch, as Go's time.Now().UnixNano(); a millisecond clock is precise enough here.
    sequenceNumber: now.getTime() * 1_000_000,
    sequenceNumberForAllocation: {},
  };
}

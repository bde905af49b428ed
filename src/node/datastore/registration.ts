/**
 * What calico-node does with the datastore when it starts, for the part the lab models so far: the spec seeds an
 * empty datastore (the pool, the cluster information, the IPAM config), the node claims its block by
 * compare-and-swap and takes its tunnel address from it (both found again after a restart, by affinity and handle),
 * and it registers its Node with the address the mesh peers with. Every node's agent then watches the Nodes for its
 * BGP peers.
 */
import {
  CLUSTER_INFORMATION,
  DATASTORE_KEYS,
  DatastoreIpam,
  IPAM_CONFIG,
  ipPoolResource,
  nodeResource,
  parseBgpPeer,
  tunnelHandle,
  underlaySubnet,
  parseBgpConfiguration,
  type BgpConfigurationSpec,
  type BgpNode,
  type BgpPeerSpec,
  type ClusterState,
  type NetworkSpec,
  type NodeResource,
  type NodeState,
} from '../../calico/index.js';
import { Ipv4Address, type Ipv4Prefix } from '../../routing/address.js';
import type { EtcdStore } from './etcd-store.js';

export interface NodeAllocation {
  block: Ipv4Prefix;
  tunnelAddress: Ipv4Address | undefined;
}

export async function registerNode(store: EtcdStore, cluster: ClusterState, node: NodeState): Promise<NodeAllocation> {
  const now = new Date();
  // Create, never overwrite: the first node up seeds, and what `calicoctl apply` changed later stays.
  await store.create(DATASTORE_KEYS.ipPool(cluster.pool.name), JSON.stringify(ipPoolResource(cluster.pool, now)));
  await store.create(DATASTORE_KEYS.clusterInformation, JSON.stringify(CLUSTER_INFORMATION));
  await store.create(DATASTORE_KEYS.ipamConfig, JSON.stringify(IPAM_CONFIG));
  const ipam = new DatastoreIpam(store, cluster.pool);
  const block = await ipam.claimBlock(node.name);
  let tunnelAddress: Ipv4Address | undefined;
  // calico-node gives tunl0 an address only where the pool encapsulates.
  if (cluster.pool.ipipMode !== 'Never') {
    const handle = tunnelHandle(node.name);
    tunnelAddress =
      (await ipam.addressOf(block, handle)) ??
      (await ipam.assign(node.name, block, handle, { node: node.name, type: 'ipipTunnelAddress' })).address;
  }
  await putNode(store, cluster.spec.network, node.name, node.ip, tunnelAddress, node.labels, now);
  return { block, tunnelAddress };
}

/**
 * Writes this node's Node with the address the mesh peers with, keeping what others set on it since: its creation
 * time, the labels `calicoctl label` gave it, its route reflector cluster.
 */
export async function putNode(
  store: EtcdStore,
  network: Pick<NetworkSpec, 'cidr' | 'subnets'>,
  name: string,
  ip: Ipv4Address,
  tunnelAddress: Ipv4Address | undefined,
  labels: Readonly<Record<string, string>>,
  now = new Date(),
): Promise<void> {
  const key = DATASTORE_KEYS.node(name);
  const previous = parseStored<Partial<NodeResource>>((await store.get(key))?.value);
  const resource = nodeResource(name, ip, underlaySubnet(network, ip), tunnelAddress, now, {
    ...(previous?.metadata?.creationTimestamp !== undefined && {
      creationTimestamp: previous.metadata.creationTimestamp,
    }),
    labels: { ...previous?.metadata?.labels, ...labels },
    ...(previous?.spec?.bgp?.routeReflectorClusterID !== undefined && {
      routeReflectorClusterID: previous.spec.bgp.routeReflectorClusterID,
    }),
  });
  await store.put(key, JSON.stringify(resource));
}

/** The cluster as this node's claim made it: its own block and tunnel address are the datastore's, not the spec's. */
export function withAllocation(cluster: ClusterState, nodeName: string, allocation: NodeAllocation): ClusterState {
  return {
    ...cluster,
    nodes: cluster.nodes.map((node) =>
      node.name === nodeName ? { ...node, blocks: [allocation.block], tunnelAddress: allocation.tunnelAddress } : node,
    ),
  };
}

function parseStored<T>(value: string | undefined): T | undefined {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value) as T;
  } catch {
    return undefined;
  }
}

/** A Node value as confd reads it (`/calico/bgp/v1/host/NAME/…`), or why it is unusable: skipped, never a crash. */
export function registeredNode(key: string, value: string): BgpNode | string {
  const resource = parseStored<Partial<NodeResource>>(value);
  if (!resource) return `${key}: not JSON`;
  const cidr = resource.spec?.bgp?.ipv4Address;
  const address = typeof cidr === 'string' ? Ipv4Address.tryParse(cidr.split('/')[0]) : undefined;
  if (!address) return `${key}: no spec.bgp.ipv4Address`;
  const labels = resource.metadata?.labels ?? {};
  if (typeof labels !== 'object' || Object.values(labels).some((label) => typeof label !== 'string')) {
    return `${key}: metadata.labels is not a map of strings`;
  }
  const clusterId = resource.spec?.bgp?.routeReflectorClusterID;
  if (clusterId !== undefined && clusterId !== '' && !Ipv4Address.tryParse(String(clusterId))) {
    return `${key}: spec.bgp.routeReflectorClusterID ${JSON.stringify(clusterId)} is not an IPv4 address`;
  }
  return {
    name: key.slice(DATASTORE_KEYS.nodes.length),
    address,
    labels,
    ...(clusterId && { routeReflectorClusterId: Ipv4Address.parse(clusterId) }),
  };
}

/**
 * Calls `onChange` with every resource under `prefix` now and after each change, as confd renders bird.cfg from what
 * it watches. What `parse` refuses is skipped and logged once, never a crash. Returns a function that stops watching.
 */
async function watchResources<T>(
  store: EtcdStore,
  prefix: string,
  what: string,
  parse: (key: string, value: string) => T | string,
  onChange: (resources: T[]) => void,
  log: (line: string) => void,
): Promise<() => Promise<void>> {
  const known = new Map<string, T>();
  const skipped = new Set<string>();
  const take = (key: string, value: string): void => {
    const resource = parse(key, value);
    if (typeof resource === 'string') {
      known.delete(key);
      if (!skipped.has(resource)) log(`datastore: skipped a malformed ${what}: ${resource}`);
      skipped.add(resource);
      return;
    }
    known.set(key, resource);
  };
  const watcher = await store.client.watch().prefix(prefix).create();
  watcher.on('put', (kv) => {
    take(kv.key.toString(), kv.value.toString());
    onChange([...known.values()]);
  });
  watcher.on('delete', (kv) => {
    known.delete(kv.key.toString());
    onChange([...known.values()]);
  });
  watcher.on('error', (error: Error) => log(`datastore: watch of the ${what}s: ${error.message}`));
  for (const [key, stored] of await store.list(prefix)) take(key, stored.value);
  onChange([...known.values()]);
  return () => watcher.cancel();
}

/** Every registered Node, now and after each change (confd's `/calico/bgp/v1/host`). */
export function watchNodes(
  store: EtcdStore,
  onNodes: (nodes: BgpNode[]) => void,
  log: (line: string) => void,
): Promise<() => Promise<void>> {
  return watchResources(store, DATASTORE_KEYS.nodes, 'Node', registeredNode, onNodes, log);
}

/** A stored resource through its parser, or why it is unusable. */
function storedResource<T>(parse: (value: unknown) => T | string): (key: string, value: string) => T | string {
  return (key, value) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      return `${key}: not JSON`;
    }
    const resource = parse(parsed);
    return typeof resource === 'string' ? `${key}: ${resource}` : resource;
  };
}

export const storedBgpPeer = storedResource(parseBgpPeer);

/** Every BGPPeer, now and after each change (confd's `/calico/bgp/v1/global/peer_v4` and `…/host/NODE/peer_v4`). */
export function watchBgpPeers(
  store: EtcdStore,
  onPeers: (peers: BgpPeerSpec[]) => void,
  log: (line: string) => void,
): Promise<() => Promise<void>> {
  return watchResources(store, DATASTORE_KEYS.bgpPeers, 'BGPPeer', storedBgpPeer, onPeers, log);
}

/** Every BGPConfiguration, now and after each change (confd's `/calico/bgp/v1/global/node_mesh` and `as_num`). */
export function watchBgpConfigurations(
  store: EtcdStore,
  onConfigurations: (configurations: BgpConfigurationSpec[]) => void,
  log: (line: string) => void,
): Promise<() => Promise<void>> {
  return watchResources(
    store,
    DATASTORE_KEYS.bgpConfigurations,
    'BGPConfiguration',
    storedResource(parseBgpConfiguration),
    onConfigurations,
    log,
  );
}

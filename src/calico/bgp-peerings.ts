/**
 * Whom one node's BIRD peers with, as confd computes it from the datastore (confd/pkg/backends/calico/client.go,
 * updatePeersV1) and bird.cfg.template renders it:
 * - the node-to-node mesh, unless a BGPConfiguration turns it off; a route reflector (a node with
 *   `spec.bgp.routeReflectorClusterID`) never meshes, and the others skip it;
 * - global peers (a BGPPeer with neither `node` nor `nodeSelector`), then node-specific ones, with the reverse of
 *   every peering between two Calico nodes added, so that both ends are configured;
 * - on a reflector, every peer in its AS that is not in its own cluster is its client (`rr client`).
 */
import type { Ipv4Address } from '../routing/address.js';
import { CALICO_DEFAULT_AS, meshPeer } from './bgp-mesh.js';
import type { BgpConfigurationSpec, BgpPeerSpec } from './datastore/layout.js';
import type { Labels } from './selector.js';

/** A Node as confd reads it: `/calico/bgp/v1/host/NAME/ip_addr_v4`, `rr_cluster_id`, and its labels. */
export interface BgpNode {
  readonly name: string;
  readonly address: Ipv4Address;
  readonly labels: Labels;
  readonly routeReflectorClusterId?: Ipv4Address;
}

export type BgpPeeringType = 'node-to-node mesh' | 'global' | 'node specific';

/** One `protocol bgp` of the node's bird.cfg. */
export interface BgpPeering {
  readonly address: Ipv4Address;
  readonly as: number;
  readonly type: BgpPeeringType;
  /** Only the mesh waits for the peer; Global_ and Node_ protocols open as well as listen. */
  readonly passive: boolean;
  /** `rr client; rr cluster id ID`: this node reflects to and from the peer. */
  readonly reflectorClientOf?: Ipv4Address;
}

export interface BgpPeeringsOf {
  /** The node's AS (bird.cfg's `local as`): the default BGPConfiguration's asNumber, else Calico's 64512. */
  localAs: number;
  peerings: BgpPeering[];
  /** BGPPeers this node would peer through in another AS: eBGP, which the lab's speaker does not speak. */
  otherAs: { name: string; as: number }[];
}

/** confd's v1 peer value (bgpPeer in client.go): what a template needs of one peering. */
interface PeerValue {
  address: Ipv4Address;
  as: number;
  routeReflectorClusterId?: Ipv4Address;
  /** The BGPPeer it came from. */
  from: string;
}

export function bgpPeeringsOf(
  self: string,
  nodes: readonly BgpNode[],
  peers: readonly BgpPeerSpec[],
  configurations: readonly BgpConfigurationSpec[],
): BgpPeeringsOf {
  const cluster = configurations.find((configuration) => configuration.name === 'default');
  const as = cluster?.asNumber ?? CALICO_DEFAULT_AS;
  const node = nodes.find((candidate) => candidate.name === self);
  if (!node) return { localAs: as, peerings: [], otherAs: [] };
  const matching = (selector: { matches(labels: Labels): boolean }) =>
    nodes.filter((candidate) => selector.matches(candidate.labels));
  const asPeer = (peerNode: BgpNode, from: string): PeerValue => ({
    address: peerNode.address,
    as,
    from,
    ...(peerNode.routeReflectorClusterId && { routeReflectorClusterId: peerNode.routeReflectorClusterId }),
  });
  const peersOf = (peer: BgpPeerSpec): PeerValue[] =>
    peer.peerSelector
      ? matching(peer.peerSelector).map((peerNode) => asPeer(peerNode, peer.name))
      : [{ address: peer.peerIP!, as: peer.asNumber!, from: peer.name }];
  const localNodesOf = (peer: BgpPeerSpec): string[] =>
    peer.nodeSelector ? matching(peer.nodeSelector).map((local) => local.name) : peer.node ? [peer.node] : [];

  // Keyed by address: the first peering emitted for an address wins, and a global one hides a node-specific one.
  const global = new Map<string, PeerValue>();
  const specific = new Map<string, PeerValue>();
  const emitSpecific = (value: PeerValue): void => {
    const key = value.address.toString();
    if (!global.has(key) && !specific.has(key)) specific.set(key, value);
  };
  for (const peer of peers) {
    if (peer.node !== undefined || peer.nodeSelector) continue;
    for (const value of peersOf(peer))
      if (!global.has(value.address.toString())) global.set(value.address.toString(), value);
  }
  for (const peer of peers) {
    if (peer.node === undefined && !peer.nodeSelector) continue;
    if (localNodesOf(peer).includes(self)) peersOf(peer).forEach(emitSpecific);
  }
  // The reverse peerings: this node is on the far side of a BGPPeer, so it peers back with the near side.
  for (const peer of peers) {
    const farSide = peer.peerSelector
      ? matching(peer.peerSelector)
      : nodes.filter((candidate) => candidate.address.equals(peer.peerIP!) && peer.asNumber === as);
    if (!farSide.some((candidate) => candidate.name === self)) continue;
    const nearNames = peer.nodeSelector || peer.node !== undefined ? localNodesOf(peer) : nodes.map((n) => n.name);
    for (const near of nodes.filter((candidate) => nearNames.includes(candidate.name)))
      emitSpecific(asPeer(near, peer.name));
  }

  const clusterId = node.routeReflectorClusterId;
  const meshOn = (cluster?.nodeToNodeMeshEnabled ?? true) && !clusterId;
  // In bird.cfg's order, which is confd's: etcd lists keys sorted, the mesh's by node name (`/host/NAME/ip_addr_v4`),
  // the others' by address (`…/peer_v4/ADDRESS`, as text); BIRD keeps its protocols in that order.
  const byKey =
    <T>(key: (item: T) => string) =>
    (a: T, b: T) =>
      key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
  const mesh: BgpPeering[] = meshOn
    ? [...nodes]
        .sort(byKey((other) => other.name))
        .filter((other) => other.name !== self && !other.routeReflectorClusterId)
        .map((other) => {
          const { address, passive } = meshPeer(node.address, other.name, other.address);
          return { address, as, type: 'node-to-node mesh', passive };
        })
    : [];
  const otherAs: BgpPeeringsOf['otherAs'] = [];
  const configured = (type: BgpPeeringType) => (value: PeerValue) => {
    if (value.address.equals(node.address)) return [];
    if (value.as !== as) {
      otherAs.push({ name: value.from, as: value.as });
      return [];
    }
    const client = clusterId && !value.routeReflectorClusterId?.equals(clusterId);
    return [{ address: value.address, as, type, passive: false, ...(client && { reflectorClientOf: clusterId }) }];
  };
  const byAddress = byKey((value: PeerValue) => value.address.toString());
  const all = [
    ...mesh,
    ...[...global.values()].sort(byAddress).flatMap(configured('global')),
    ...[...specific.values()].sort(byAddress).flatMap(configured('node specific')),
  ];
  // BIRD cannot hold two protocols to one neighbour: the mesh's comes first, as confd's template writes it first.
  const seen = new Set<string>();
  const peerings = all.filter(
    (peering) => !seen.has(peering.address.toString()) && seen.add(peering.address.toString()),
  );
  return { localAs: as, peerings, otherAs };
}

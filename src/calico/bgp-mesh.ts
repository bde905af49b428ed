/**
 * Calico's node-to-node mesh as confd writes it into each node's bird.cfg: one iBGP peer per other node, in the
 * cluster's AS, and in each pair the node with the greater address string opens the connection (`passive on` at the
 * other: `{{if gt $onode_ip $node_ip}} passive on;`, which compares strings, so 10.0.0.9 opens to 10.0.0.10).
 */
import type { Ipv4Address } from '../routing/address.js';
import type { ClusterState, NodeState } from './cluster.js';

/** `/calico/bgp/v1/global/as_num`'s default (confd/pkg/backends/calico/client.go). */
export const CALICO_DEFAULT_AS = 64512;

export interface MeshPeer {
  /** The peer node's name: confd's `# For peer /bgp/v1/host/NAME/ip_addr_v4`. */
  readonly name: string;
  readonly address: Ipv4Address;
  readonly as: number;
  /** This node waits for the peer to connect. */
  readonly passive: boolean;
}

/** The peer `name` at `address`, as the node at `self` sees it. */
export function meshPeer(self: Ipv4Address, name: string, address: Ipv4Address): MeshPeer {
  return { name, address, as: CALICO_DEFAULT_AS, passive: address.toString() > self.toString() };
}

export function meshPeers(cluster: ClusterState, node: NodeState): MeshPeer[] {
  return cluster.nodes.filter((peer) => peer.name !== node.name).map((peer) => meshPeer(node.ip, peer.name, peer.ip));
}

/**
 * Whom each node peers with, as confd's updatePeersV1 and bird.cfg.template make it: the mesh, reflectors taken out
 * of it, BGPPeers by address or selector with their reverse peerings, and `rr client` on a reflector's peers.
 */
import { describe, expect, test } from 'vitest';
import {
  bgpPeeringsOf,
  parseBgpConfiguration,
  parseBgpPeer,
  type BgpConfigurationSpec,
  type BgpNode,
  type BgpPeerSpec,
} from '../../src/calico/index.js';
import { Ipv4Address } from '../../src/routing/address.js';

const CLUSTER_ID = Ipv4Address.parse('244.0.0.1');

function node(name: string, ip: string, reflector = false): BgpNode {
  return {
    name,
    address: Ipv4Address.parse(ip),
    labels: { 'kubernetes.io/hostname': name, ...(reflector && { 'route-reflector': 'true' }) },
    ...(reflector && { routeReflectorClusterId: CLUSTER_ID }),
  };
}

function peer(name: string, spec: Record<string, unknown>): BgpPeerSpec {
  const parsed = parseBgpPeer({ apiVersion: 'projectcalico.org/v3', kind: 'BGPPeer', metadata: { name }, spec });
  if (typeof parsed === 'string') throw new Error(parsed);
  return parsed;
}

function configuration(spec: Record<string, unknown>): BgpConfigurationSpec {
  const parsed = parseBgpConfiguration({
    apiVersion: 'projectcalico.org/v3',
    kind: 'BGPConfiguration',
    metadata: { name: 'default' },
    spec,
  });
  if (typeof parsed === 'string') throw new Error(parsed);
  return parsed;
}

/** One line per peering, as `calicoctl node status` would list it, with BIRD's `rr client` marked. */
function peeringsText(
  self: string,
  nodes: BgpNode[],
  peers: BgpPeerSpec[],
  configurations: BgpConfigurationSpec[] = [],
) {
  return bgpPeeringsOf(self, nodes, peers, configurations).peerings.map(
    (peering) =>
      `${peering.address} ${peering.type}${peering.passive ? ' passive' : ''}` +
      (peering.reflectorClientOf ? ` rr client ${peering.reflectorClientOf}` : ''),
  );
}

const NODES = [
  node('master-node', '10.0.0.10'),
  node('worker-node01', '10.0.0.11'),
  node('worker-node02', '10.0.0.12'),
  node('worker-node03', '10.0.0.13'),
];
const WITH_REFLECTORS = [
  node('master-node', '10.0.0.10', true),
  NODES[1],
  node('worker-node02', '10.0.0.12', true),
  NODES[3],
];
const TO_REFLECTORS = peer('peer-with-route-reflectors', {
  nodeSelector: 'all()',
  peerSelector: "route-reflector == 'true'",
});
const MESH_OFF = configuration({ nodeToNodeMeshEnabled: false, asNumber: 64512 });

describe('bgpPeeringsOf', () => {
  test('the mesh alone: every other node, the greater address string passive', () => {
    expect(peeringsText('worker-node01', NODES, [])).toEqual([
      '10.0.0.10 node-to-node mesh',
      '10.0.0.12 node-to-node mesh passive',
      '10.0.0.13 node-to-node mesh passive',
    ]);
  });

  test('a reflector leaves the mesh, the others skip it, and it peers as the BGPPeer says', () => {
    expect(peeringsText('worker-node01', WITH_REFLECTORS, [TO_REFLECTORS])).toEqual([
      '10.0.0.13 node-to-node mesh passive',
      '10.0.0.10 node specific',
      '10.0.0.12 node specific',
    ]);
    // The reflector's side: no mesh, the other reflector a non-client (same cluster), the rest its clients through
    // the reverse peerings. In bird.cfg's order: confd lists the peers' keys sorted by address.
    expect(peeringsText('master-node', WITH_REFLECTORS, [TO_REFLECTORS])).toEqual([
      '10.0.0.11 node specific rr client 244.0.0.1',
      '10.0.0.12 node specific',
      '10.0.0.13 node specific rr client 244.0.0.1',
    ]);
  });

  test("lists the peerings in bird.cfg's order whatever order the datastore gave: the mesh by name, the rest by address", () => {
    const shuffled = [...NODES].reverse();
    expect(peeringsText('worker-node01', shuffled, [])).toEqual(peeringsText('worker-node01', NODES, []));
    const tors = [
      peer('b', { peerIP: '10.0.0.60', asNumber: 64512 }),
      peer('a', { peerIP: '10.0.0.50', asNumber: 64512 }),
    ];
    expect(peeringsText('worker-node01', NODES, tors, [MESH_OFF])).toEqual(['10.0.0.50 global', '10.0.0.60 global']);
  });

  test('with the mesh off, a client peers only with the reflectors', () => {
    expect(peeringsText('worker-node03', WITH_REFLECTORS, [TO_REFLECTORS], [MESH_OFF])).toEqual([
      '10.0.0.10 node specific',
      '10.0.0.12 node specific',
    ]);
    expect(peeringsText('worker-node03', NODES, [], [MESH_OFF])).toEqual([]);
  });

  test('a global peer by address; on a reflector an outside peer in its AS is a client, in another AS it is eBGP', () => {
    const tor = peer('tor', { peerIP: '10.0.0.50', asNumber: 64512 });
    const upstream = peer('upstream', { peerIP: '10.0.0.60', asNumber: 64600 });
    expect(peeringsText('worker-node01', NODES, [tor])).toContain('10.0.0.50 global');
    expect(peeringsText('master-node', WITH_REFLECTORS, [tor])).toEqual(['10.0.0.50 global rr client 244.0.0.1']);
    expect(bgpPeeringsOf('master-node', WITH_REFLECTORS, [upstream], []).otherAs).toEqual([
      { name: 'upstream', as: 64600 },
    ]);
  });

  test("the default BGPConfiguration's asNumber is the node's AS and its mesh peers'; a peer in the old AS is eBGP", () => {
    const moved = configuration({ asNumber: 64513 });
    const result = bgpPeeringsOf(
      'worker-node01',
      NODES,
      [peer('tor', { peerIP: '10.0.0.50', asNumber: 64512 })],
      [moved],
    );
    expect(result.localAs).toBe(64513);
    expect(result.peerings.map((peering) => `${peering.address} ${peering.as}`)).toEqual([
      '10.0.0.10 64513',
      '10.0.0.12 64513',
      '10.0.0.13 64513',
    ]);
    expect(result.otherAs).toEqual([{ name: 'tor', as: 64512 }]);
    expect(bgpPeeringsOf('worker-node01', NODES, [], []).localAs).toBe(64512);
  });

  test('a node-specific peer by address to another node gets its reverse there; a global one hides it', () => {
    const pair = peer('pair', { node: 'worker-node01', peerIP: '10.0.0.13', asNumber: 64512 });
    expect(peeringsText('worker-node01', NODES, [pair], [MESH_OFF])).toEqual(['10.0.0.13 node specific']);
    expect(peeringsText('worker-node03', NODES, [pair], [MESH_OFF])).toEqual(['10.0.0.11 node specific']);
    expect(peeringsText('worker-node02', NODES, [pair], [MESH_OFF])).toEqual([]);
    const global = peer('everyone', { peerIP: '10.0.0.13', asNumber: 64512 });
    expect(peeringsText('worker-node01', NODES, [pair, global], [MESH_OFF])).toEqual(['10.0.0.13 global']);
  });

  test("a node never peers with itself, and the mesh's protocol wins over a BGPPeer to a mesh node", () => {
    const all = peer('all-to-all', { nodeSelector: 'all()', peerSelector: 'all()' });
    expect(peeringsText('worker-node01', NODES, [all])).toEqual([
      '10.0.0.10 node-to-node mesh',
      '10.0.0.12 node-to-node mesh passive',
      '10.0.0.13 node-to-node mesh passive',
    ]);
    expect(peeringsText('worker-node01', NODES, [all], [MESH_OFF])).toEqual([
      '10.0.0.10 node specific',
      '10.0.0.12 node specific',
      '10.0.0.13 node specific',
    ]);
  });

  test('a node the datastore does not have yet peers with no one', () => {
    expect(bgpPeeringsOf('worker-node09', NODES, [TO_REFLECTORS], [])).toEqual({
      localAs: 64512,
      peerings: [],
      otherAs: [],
    });
  });
});

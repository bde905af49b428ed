/**
 * A global BGPPeer, the Calico way: `calicoctl apply -f` writes it into the lab's etcd, every agent (watching that key)
 * opens a session to it, and `calicoctl node status` lists it as PEER TYPE global beside the mesh. The peer is a real
 * BIRD 1.6 standing for a top-of-rack router in the cluster's AS; `calicoctl delete` takes it away again.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startLab, type BirdHandle, type Lab, until } from '../../src/testing/index.js';
import { REPO_ROOT } from '../support/cli.js';

const TOR = '10.38.0.50';
const ESTABLISHED_WITHIN_MS = 20_000;

const PEER_YAML = `apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: rack-tor
spec:
  peerIP: ${TOR}
  asNumber: 64512
`;

/** BIRD as a route server beside the nodes would be set up: it listens, learns (next hops on its own subnet), sends nothing. */
function torConfig(nodes: readonly string[]): string {
  return [
    `router id ${TOR};`,
    'protocol device { scan time 2; }',
    'template bgp nodes {',
    '  debug { states };',
    '  local as 64512;',
    '  passive on;',
    '  direct;',
    '  import all;',
    '  export none;',
    '}',
    ...nodes.map((ip) => `protocol bgp Node_${ip.replace(/\./g, '_')} from nodes { neighbor ${ip} as 64512; }`),
    '',
  ].join('\n');
}

describe('a global BGPPeer applied with calicoctl', () => {
  let lab: Lab;
  let tor: BirdHandle;
  const established = async () => {
    const sessions = (await tor.protocols()).filter((row) => row.proto === 'BGP');
    return sessions.length === 3 && sessions.every((row) => row.info === 'Established');
  };

  beforeAll(async () => {
    lab = await startLab({
      spec: `${REPO_ROOT}test/fixtures/global-peer.yaml`,
      datastore: true,
      dataplane: 'userspace',
    });
    tor = await lab.startBgpPeer({ name: 'rack-tor', ip: TOR, config: torConfig(lab.nodes().map((node) => node.ip)) });
  });

  afterAll(async () => {
    await lab?.stop();
  });

  test('apply: every node opens a session to it, and it learns each block from its owner', async () => {
    const master = lab.node('master-node');
    const applied = await master.exec(['sh', '-c', `calicoctl apply -f - <<'EOF'\n${PEER_YAML}EOF`]);
    expect(applied).toMatchObject({ exitCode: 0, stdout: "Successfully applied 1 'BGPPeer' resource(s)\n" });
    await until(established, ESTABLISHED_WITHIN_MS, 'BIRD to be Established with the three agents');
    const routes = await tor.routes();
    for (const node of lab.nodes()) {
      for (const block of node.state.blocks) {
        expect(routes).toContainEqual({
          prefix: String(block),
          target: `via ${node.ip} on eth0`,
          protocol: `Node_${node.ip.replace(/\./g, '_')}`,
        });
      }
    }
  });

  test('calicoctl get bgppeer and node status show it: global, up, Established, beside the mesh', async () => {
    const master = lab.node('master-node');
    expect((await master.exec(['calicoctl', 'get', 'bgppeer'])).stdout).toBe(
      'NAME       PEERIP       NODE       ASN     \nrack-tor   10.38.0.50   (global)   64512   \n',
    );
    const status = (await master.exec(['calicoctl', 'node', 'status'])).stdout;
    expect(status).toMatch(/\| 10\.38\.0\.50 +\| global +\| up +\| \d\d:\d\d:\d\d \| Established \|/);
    expect(status).toMatch(/\| 10\.38\.0\.11 +\| node-to-node mesh \| up +\|/);
    const json = JSON.parse((await master.exec(['calicoctl', 'node', 'status', '-o', 'json'])).stdout) as {
      ipv4Peers: { peerAddress: string; peerType: string }[];
    };
    expect(json.ipv4Peers.map((peer) => [peer.peerAddress, peer.peerType])).toEqual([
      ['10.38.0.11', 'node-to-node mesh'],
      ['10.38.0.12', 'node-to-node mesh'],
      [TOR, 'global'],
    ]);
  });

  test('a malformed BGPPeer in etcd is skipped and logged, and the others keep their sessions', async () => {
    const master = lab.node('master-node');
    const put = await master.exec(['etcdctl', 'put', '/calico/resources/v3/projectcalico.org/bgppeers/broken', '{']);
    expect(put.exitCode).toBe(0);
    await until(
      async () => (await master.logs()).includes('datastore: skipped a malformed BGPPeer'),
      5_000,
      'the agent to log the malformed BGPPeer',
    );
    expect(await established()).toBe(true);
    await master.exec(['etcdctl', 'del', '/calico/resources/v3/projectcalico.org/bgppeers/broken']);
  });

  test('delete: the sessions close (Cease) and node status lists only the mesh', async () => {
    const master = lab.node('master-node');
    expect((await master.exec(['calicoctl', 'delete', 'bgppeer', 'rack-tor'])).stdout).toBe(
      "Successfully deleted 1 'BGPPeer' resource(s)\n",
    );
    await until(
      async () => (await tor.protocols()).every((row) => row.proto !== 'BGP' || row.info !== 'Established'),
      5_000,
      'every session to the peer to close',
    );
    const json = JSON.parse((await master.exec(['calicoctl', 'node', 'status', '-o', 'json'])).stdout) as {
      ipv4Peers: { peerType: string }[];
    };
    expect(json.ipv4Peers.map((peer) => peer.peerType)).toEqual(['node-to-node mesh', 'node-to-node mesh']);
    const again = await master.exec(['calicoctl', 'delete', 'bgppeer', 'rack-tor']);
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toContain("Failed to delete 'BGPPeer' resource: [resource does not exist: BGPPeer(rack-tor)");
  });

  test("a BGPConfiguration's asNumber moves every node's mesh to that AS, and deleting it moves them back", async () => {
    const master = lab.node('master-node');
    const meshIn = (as: number) => async () => {
      const statuses = await Promise.all(lab.nodes().map((node) => node.bgp()));
      return statuses.every(
        (status) =>
          status?.as === as &&
          status.neighbours.length === 2 &&
          status.neighbours.every((peer) => peer.state === 'Established'),
      );
    };
    const applied = await master.exec([
      'sh',
      '-c',
      "calicoctl apply -f - <<'EOF'\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\n" +
        'metadata:\n  name: default\nspec:\n  asNumber: 64513\nEOF',
    ]);
    expect(applied.stdout).toBe("Successfully applied 1 'BGPConfiguration' resource(s)\n");
    const moved = await until(meshIn(64513), ESTABLISHED_WITHIN_MS, 'the mesh to re-establish in AS 64513');
    console.log(`global peer: the mesh re-established in AS 64513 ${moved} ms after calicoctl apply`);
    expect(await master.logs()).toContain('master-node: BGP: local AS 64513 (the default BGPConfiguration');
    const deleted = await master.exec(['calicoctl', 'delete', 'bgpconfiguration', 'default']);
    expect(deleted.stdout).toBe("Successfully deleted 1 'BGPConfiguration' resource(s)\n");
    await until(meshIn(64512), ESTABLISHED_WITHIN_MS, 'the mesh to re-establish in AS 64512');
  });
});

/**
 * Route reflectors the way Calico's docs set them up, with calicoctl against the lab's etcd: two nodes get a
 * `routeReflectorClusterID` and a `route-reflector=true` label, a BGPPeer makes every node peer with the labelled
 * ones, and a BGPConfiguration turns the node-to-node mesh off. Each client then has two sessions, not n-1, and still
 * learns every block, with its owner as next hop. A real BIRD 1.6 as a reflector client learns every block through
 * our reflectors, with the ORIGINATOR_ID and CLUSTER_LIST that RFC 4456 has them add.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startLab, type BirdHandle, type Lab, type LabNodeHandle, until } from '../../src/testing/index.js';
import { REPO_ROOT } from '../support/cli.js';

const REFLECTORS = ['master-node', 'worker-node02'];
const CLUSTER_ID = '244.0.0.1';
const CLIENT_BIRD = '10.39.0.50';
const REFLECTOR_BIRD = '10.39.0.51';
const CONVERGED_WITHIN_MS = 30_000;

/** Calico's route reflector set-up: every node peers with the reflectors, the mesh off. */
const MESH_OFF_YAML = readFileSync(`${REPO_ROOT}test/fixtures/mesh-off-reflectors.yaml`, 'utf8');

const BIRD_CLIENT_YAML = `apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: bird-client
spec:
  nodeSelector: route-reflector == 'true'
  peerIP: ${CLIENT_BIRD}
  asNumber: 64512
`;

/** BIRD as a plain iBGP router in the cluster's AS: it opens to both reflectors as they open to it, and exports nothing. */
function clientConfig(reflectors: readonly string[]): string {
  return [
    `router id ${CLIENT_BIRD};`,
    'protocol device { scan time 2; }',
    'template bgp reflectors {',
    '  debug { states };',
    '  local as 64512;',
    '  direct;',
    '  import all;',
    '  export none;',
    '  connect delay time 1;',
    '  connect retry time 3;',
    '}',
    ...reflectors.map((ip) => `protocol bgp RR_${ip.replace(/\./g, '_')} from reflectors { neighbor ${ip} as 64512; }`),
    '',
  ].join('\n');
}

/** BIRD as a route reflector for every node, its clients, in a cluster of its own; it reflects and originates nothing. */
function reflectorConfig(nodes: readonly string[]): string {
  return [
    `router id ${REFLECTOR_BIRD};`,
    'protocol device { scan time 2; }',
    'template bgp clients {',
    '  debug { states };',
    '  local as 64512;',
    '  direct;',
    '  rr client;',
    '  rr cluster id 244.0.0.2;',
    '  import all;',
    '  export all;',
    '  connect delay time 1;',
    '  connect retry time 3;',
    '}',
    ...nodes.map((ip) => `protocol bgp Client_${ip.replace(/\./g, '_')} from clients { neighbor ${ip} as 64512; }`),
    '',
  ].join('\n');
}

async function calicoctl(node: LabNodeHandle, script: string): Promise<string> {
  const result = await node.exec(['sh', '-c', script]);
  if (result.exitCode !== 0) throw new Error(`${script} exited ${result.exitCode}: ${result.stderr}`);
  return result.stdout;
}

describe('route reflectors, configured with calicoctl', () => {
  let lab: Lab;
  let bird: BirdHandle;
  const reflectorIps = () => REFLECTORS.map((name) => lab.node(name).ip);
  /** Every node's table holds every other node's block, via its owner. */
  const everyBlockEverywhere = async () => {
    for (const node of lab.nodes()) {
      const learned = (await node.bgp())?.routes ?? [];
      for (const owner of lab.nodes().filter((other) => other !== node)) {
        for (const block of owner.state.blocks) {
          const route = learned.find((candidate) => String(candidate.destination) === String(block));
          if (String(route?.nextHop) !== owner.ip) return false;
        }
      }
    }
    return true;
  };

  beforeAll(async () => {
    lab = await startLab({ spec: `${REPO_ROOT}test/fixtures/route-reflector.yaml`, datastore: true });
    bird = await lab.startBgpPeer({ name: 'rr-client', ip: CLIENT_BIRD, config: clientConfig(reflectorIps()) });
  });

  afterAll(async () => {
    await lab?.stop();
  });

  test('two reflectors and the mesh off: each client has only the reflectors, and every block reaches every node', async () => {
    await until(everyBlockEverywhere, CONVERGED_WITHIN_MS, 'the mesh to converge');
    const master = lab.node('master-node');
    const steps: string[] = [];
    for (const name of REFLECTORS) {
      const patch = JSON.stringify({ spec: { bgp: { routeReflectorClusterID: CLUSTER_ID } } });
      steps.push(await calicoctl(master, `calicoctl patch node ${name} -p '${patch}'`));
      steps.push(await calicoctl(master, `calicoctl label nodes ${name} route-reflector=true`));
    }
    steps.push(await calicoctl(master, `calicoctl apply -f - <<'EOF'\n${MESH_OFF_YAML}EOF`));
    expect(steps).toEqual([
      "Successfully patched 1 'Node' resource\n",
      'Successfully set label route-reflector on nodes master-node\n',
      "Successfully patched 1 'Node' resource\n",
      'Successfully set label route-reflector on nodes worker-node02\n',
      'Successfully applied 2 resource(s)\n',
    ]);

    // What calicoctl changed is in the Node resource, and bad changes are refused with calicoctl's words.
    const yaml = await calicoctl(master, 'calicoctl get node master-node -o yaml');
    expect(yaml).toContain(`routeReflectorClusterID: ${CLUSTER_ID}`);
    expect(yaml).toMatch(/route-reflector: "true"/);
    const relabel = await master.exec(['calicoctl', 'label', 'nodes', 'master-node', 'route-reflector=false']);
    expect(relabel.stderr).toBe(
      "failed to update label of nodes master-node, key route-reflector is already present. please use '--overwrite' to set a new value.\n",
    );
    const badPatch = await master.exec([
      'calicoctl',
      'patch',
      'node',
      'worker-node01',
      '-p',
      '{"spec":{"bgp":{"routeReflectorClusterID":"not-an-ip"}}}',
    ]);
    expect(badPatch).toMatchObject({ exitCode: 1 });
    expect(badPatch.stderr).toContain('spec.bgp.routeReflectorClusterID "not-an-ip" is not an IPv4 address');
    const missing = await master.exec(['calicoctl', 'label', 'nodes', 'worker-node09', 'a=b']);
    expect(missing.stderr).toBe(
      'failed to get nodes worker-node09, error resource does not exist: Node(worker-node09) with error: <nil>\n',
    );

    const onlyReflectors = async () => {
      const status = await lab.node('worker-node01').bgp();
      const peers = (status?.neighbours ?? []).map((peer) => `${peer.address} ${peer.type} ${peer.state}`);
      return JSON.stringify(peers) === JSON.stringify(reflectorIps().map((ip) => `${ip} node specific Established`));
    };
    const took = await until(onlyReflectors, CONVERGED_WITHIN_MS, 'worker-node01 to peer with the reflectors only');
    console.log(`route reflectors: worker-node01 had only its two reflectors ${took} ms after the last apply`);
    await until(everyBlockEverywhere, CONVERGED_WITHIN_MS, 'every block on every node through the reflectors');

    const status = await calicoctl(lab.node('worker-node03'), 'calicoctl node status');
    const rows = status.split('\n').filter((line) => /^\| \d/.test(line));
    expect(rows).toHaveLength(2);
    for (const [row, ip] of rows.map((line, i) => [line, reflectorIps()[i]] as const)) {
      expect(row).toMatch(
        new RegExp(
          `^\\| ${ip.replace(/\./g, '\\.')} +\\| node specific \\| up +\\| \\d\\d:\\d\\d:\\d\\d \\| Established \\|$`,
        ),
      );
    }
    // A reflector keeps the other reflector (its own cluster: not a client) and every other node (its clients).
    const reflector = await lab.node('master-node').bgp();
    expect(reflector?.neighbours.map((peer) => `${peer.address} ${peer.state}`).sort()).toEqual(
      ['10.39.0.11', '10.39.0.12', '10.39.0.13'].map((ip) => `${ip} Established`),
    );

    // Two clients, neither peering with the other, reach each other's pods over reflected routes.
    const [from] = lab.podsOn('worker-node01');
    const [to] = lab.podsOn('worker-node03');
    const report = await lab.node('worker-node01').ping({ from: from.name, to: to.name, count: 2, intervalMs: 200 });
    expect(report.received).toBe(2);
  });

  test('calicoctl get bgppeer shows the selector peering', async () => {
    expect(await calicoctl(lab.node('master-node'), 'calicoctl get bgppeer')).toBe(
      'NAME                         PEERIP   NODE    ASN   \npeer-with-route-reflectors            all()   0     \n',
    );
  });

  test('a real BIRD as a reflector client learns every block through the reflectors, with RFC 4456 attributes', async () => {
    await calicoctl(lab.node('master-node'), `calicoctl apply -f - <<'EOF'\n${BIRD_CLIENT_YAML}EOF`);
    await until(
      async () => {
        const sessions = (await bird.protocols()).filter((row) => row.proto === 'BGP');
        return sessions.length === 2 && sessions.every((row) => row.info === 'Established');
      },
      CONVERGED_WITHIN_MS,
      'BIRD to be Established with both reflectors',
    );
    const owners = new Map(lab.nodes().flatMap((node) => node.state.blocks.map((block) => [String(block), node])));
    await until(
      async () => new Set((await bird.routes()).map((route) => route.prefix)).size === owners.size,
      10_000,
      'every block at BIRD',
    );
    const routes = await bird.routes();
    for (const [block, owner] of owners) {
      // One path per reflector for a client's block; a reflector's own block once from it, once reflected by the other.
      const paths = routes.filter((route) => route.prefix === block);
      expect(paths.map((route) => route.target)).toEqual([`via ${owner.ip} on eth0`, `via ${owner.ip} on eth0`]);
    }
    const detail = await bird.birdc('show route all');
    const worker01Block = String(lab.node('worker-node01').state.blocks[0]);
    const section = detail.slice(detail.indexOf(worker01Block)).split(/\n(?=\S)/)[0];
    expect(section).toContain('BGP.originator_id: 10.39.0.11');
    expect(section).toContain(`BGP.cluster_list: ${CLUSTER_ID}`);
  });

  test('a real BIRD as the only reflector: our nodes, its clients, learn every block through it', async () => {
    const reflector = await lab.startBgpPeer({
      name: 'rr-bird',
      ip: REFLECTOR_BIRD,
      config: reflectorConfig(lab.nodes().map((node) => node.ip)),
    });
    const master = lab.node('master-node');
    // Our reflectors stand down (a null in a patch removes the field); every node peers with BIRD, globally.
    for (const name of REFLECTORS) {
      await calicoctl(master, `calicoctl patch node ${name} -p '{"spec":{"bgp":{"routeReflectorClusterID":null}}}'`);
    }
    expect(await calicoctl(master, 'calicoctl delete bgppeer peer-with-route-reflectors')).toBe(
      "Successfully deleted 1 'BGPPeer' resource(s)\n",
    );
    await calicoctl(master, 'calicoctl delete bgppeer bird-client');
    await calicoctl(
      master,
      `calicoctl apply -f - <<'EOF'\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: bird-reflector\n` +
        `spec:\n  peerIP: ${REFLECTOR_BIRD}\n  asNumber: 64512\nEOF`,
    );
    const onlyBird = async () => {
      for (const node of lab.nodes()) {
        const peers = ((await node.bgp())?.neighbours ?? []).map(
          (peer) => `${peer.address} ${peer.type} ${peer.state}`,
        );
        if (JSON.stringify(peers) !== JSON.stringify([`${REFLECTOR_BIRD} global Established`])) return false;
      }
      return true;
    };
    await until(onlyBird, CONVERGED_WITHIN_MS, 'every node to peer with the BIRD reflector only');
    await until(everyBlockEverywhere, CONVERGED_WITHIN_MS, 'every block on every node through BIRD');
    const learned = (await lab.node('worker-node01').bgp())?.routes ?? [];
    expect(new Set(learned.map((route) => route.from))).toEqual(new Set(['Global_10_39_0_51']));
    expect((await reflector.protocols()).filter((row) => row.info === 'Established')).toHaveLength(4);
    const [from] = lab.podsOn('worker-node01');
    const [to] = lab.podsOn('worker-node03');
    const report = await lab.node('worker-node01').ping({ from: from.name, to: to.name, count: 2, intervalMs: 200 });
    expect(report.received).toBe(2);
  });
});

/**
 * The live datastore on real containers: a real etcd (Debian's 3.4, from the node image) and four agents started at
 * once against it, whose hostname-seeded walks all begin at the same block of a four-block pool. Each must end with a
 * confirmed block of its own, no address may be handed out twice, the keys must read as Calico's, and the BGP mesh
 * must carry the blocks as the datastore has them.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { AllocationBlockValue, BlockAffinityValue, ClusterState } from '../../src/calico/index.js';
import { startLab, type Lab } from '../../src/testing/index.js';
import { REPO_ROOT } from '../support/cli.js';

let lab: Lab;

beforeAll(async () => {
  lab = await startLab({ spec: `${REPO_ROOT}test/fixtures/ipam-race.yaml`, datastore: true, dataplane: 'userspace' });
});

afterAll(async () => {
  await lab?.stop();
});

/** `etcdctl get --prefix PREFIX` on a node (ETCDCTL_ENDPOINTS points at the lab's etcd), as key → parsed value. */
async function etcdGet<T>(prefix: string): Promise<Map<string, T>> {
  const { stdout, exitCode, stderr } = await lab.nodes()[0].exec(['etcdctl', 'get', '--prefix', prefix]);
  expect(exitCode, stderr).toBe(0);
  const lines = stdout.trim().split('\n');
  const entries = new Map<string, T>();
  for (let i = 0; i + 1 < lines.length; i += 2) entries.set(lines[i], JSON.parse(lines[i + 1]) as T);
  return entries;
}

test("etcdctl lists Calico's keys: the pool, the nodes, the cluster information, affinities, blocks and handles", async () => {
  const { stdout } = await lab.nodes()[0].exec(['etcdctl', 'get', '--prefix', '/calico', '--keys-only']);
  const keys = stdout.split('\n').filter((line) => line.length > 0);
  console.log(keys.join('\n'));
  expect(keys).toContain('/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool');
  expect(keys).toContain('/calico/resources/v3/projectcalico.org/clusterinformations/default');
  expect(keys).toContain('/calico/ipam/v2/config');
  for (const node of lab.nodes()) {
    expect(keys).toContain(`/calico/resources/v3/projectcalico.org/nodes/${node.name}`);
    expect(keys).toContain(`/calico/ipam/v2/handle/ipip-tunnel-addr-${node.name}`);
    expect(keys.filter((key) => key.startsWith(`/calico/ipam/v2/host/${node.name}/ipv4/block/`))).toHaveLength(1);
  }
  expect(keys.filter((key) => key.startsWith('/calico/ipam/v2/assignment/ipv4/block/'))).toHaveLength(4);
});

test('four nodes racing for one block end with four confirmed blocks, one each, and no address twice', async () => {
  const affinities = await etcdGet<BlockAffinityValue>('/calico/ipam/v2/host/');
  expect([...affinities.values()].map((value) => value.state)).toEqual(Array(4).fill('confirmed'));
  const blocks = await etcdGet<AllocationBlockValue>('/calico/ipam/v2/assignment/ipv4/block/');
  const owners = [...blocks.values()].map((block) => block.affinity);
  expect(new Set(owners)).toEqual(new Set(lab.nodes().map((node) => `host:${node.name}`)));
  const handedOut = [...blocks.values()].flatMap((block) =>
    block.allocations.flatMap((attribute, ordinal) => (attribute === null ? [] : [`${block.cidr}+${ordinal}`])),
  );
  expect(handedOut).toHaveLength(4);
  expect(new Set(handedOut).size).toBe(4);
  // Each node runs with the block the datastore gave it, whatever the spec alone would have said.
  for (const node of lab.nodes()) {
    const cluster = await node.api<ClusterState>('GET', '/v1/cluster');
    const self = cluster.nodes.find((candidate) => candidate.name === node.name)!;
    const owned = [...blocks.values()].find((block) => block.affinity === `host:${node.name}`)!;
    expect(self.blocks.map(String)).toEqual([owned.cidr]);
    expect(String(self.tunnelAddress)).toBe(owned.cidr.split('/')[0]);
  }
});

test("the mesh peers are the datastore's Nodes, and each node routes every other's claimed block via its owner", async () => {
  const blocks = await etcdGet<AllocationBlockValue>('/calico/ipam/v2/assignment/ipv4/block/');
  for (const node of lab.nodes()) {
    const status = await node.bgp();
    expect(status?.neighbours.map((neighbour) => neighbour.state)).toEqual(Array(3).fill('Established'));
    const { stdout } = await node.exec(['ipip-lab', 'ip', 'route']);
    for (const peer of lab.nodes().filter((other) => other !== node)) {
      const owned = [...blocks.values()].find((block) => block.affinity === `host:${peer.name}`)!;
      expect(stdout).toContain(`${owned.cidr} via ${peer.ip} dev tunl0 proto bird onlink`);
    }
  }
});

test('a malformed Node in etcd is skipped and logged; the agents keep running and keep their sessions', async () => {
  const [first] = lab.nodes();
  const put = await first.exec(['etcdctl', 'put', '/calico/resources/v3/projectcalico.org/nodes/garbage', '{not json']);
  expect(put.exitCode, put.stderr).toBe(0);
  const deadline = Date.now() + 5_000;
  while (!(await first.logs()).includes('skipped a malformed Node') && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  expect(await first.logs()).toContain(
    'datastore: skipped a malformed Node: /calico/resources/v3/projectcalico.org/nodes/garbage: not JSON',
  );
  for (const node of lab.nodes()) {
    expect((await node.bgp())?.neighbours.map((neighbour) => neighbour.state)).toEqual(Array(3).fill('Established'));
  }
  await first.exec(['etcdctl', 'del', '/calico/resources/v3/projectcalico.org/nodes/garbage']);
});

test('an agent whose datastore never answers says so each second, then exits with code 2', async () => {
  const [first] = lab.nodes();
  const started = Date.now();
  const result = await first.exec([
    'ipip-lab',
    'node',
    '--name',
    first.name,
    '--datastore',
    'http://10.35.0.99:2379',
    '--datastore-timeout',
    '2',
    '--api-port',
    '19440',
    '--socket',
    '/tmp/second-agent.sock',
  ]);
  expect(result.exitCode).toBe(2);
  expect(result.stdout).toMatch(/waiting for the datastore at http:\/\/10\.35\.0\.99:2379 \(attempt 1: /);
  expect(result.stderr).toContain('the datastore at http://10.35.0.99:2379 did not answer within 2 s');
  expect(Date.now() - started).toBeLessThan(10_000);
});

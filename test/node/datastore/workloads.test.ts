/**
 * The CNI plugin's records for a node's pods in the datastore: each pod's address under its handle, in its block, and
 * its WorkloadEndpoint; converged again after a change, releasing what went, as Calico's IPAM releases by handle.
 */
import { beforeEach, describe, expect, test } from 'vitest';
import {
  DATASTORE_KEYS,
  DatastoreIpam,
  podContainerId,
  podHandle,
  type AllocationBlockValue,
  type ClusterState,
  type WorkloadEndpointResource,
} from '../../../src/calico/index.js';
import { clusterOf, readSpecFile } from '../../../src/cli/cluster-source.js';
import { syncWorkloads } from '../../../src/node/datastore/workloads.js';
import { Ipv4Address, Ipv4Prefix } from '../../../src/routing/address.js';
import { SEED_CNI_OVERVIEW } from '../../support/cli.js';
import { MemoryCasStore } from '../../support/memory-store.js';

const NODE = 'worker-node01';
const NOW = new Date('2026-12-07T12:00:00Z');
/** worker-node01's block in the first seed. */
const BLOCK = Ipv4Prefix.parse('192.168.87.192/26');

function ordinalOf(address: Ipv4Address): number {
  return address.value - BLOCK.first().value;
}

async function block(store: MemoryCasStore, cidr: string): Promise<AllocationBlockValue> {
  const stored = await store.get(`/calico/ipam/v2/assignment/ipv4/block/${cidr.replace('/', '-')}`);
  return JSON.parse(stored!.value) as AllocationBlockValue;
}

describe('syncWorkloads', () => {
  let store: MemoryCasStore;
  let cluster: ClusterState;
  const lines: string[] = [];

  /** One sync of worker-node01's records, its log lines kept. */
  const sync = (state: ClusterState) =>
    syncWorkloads(
      store,
      state,
      NODE,
      (line) => lines.push(line),
      () => NOW,
    );

  beforeEach(async () => {
    store = new MemoryCasStore();
    cluster = clusterOf(readSpecFile(SEED_CNI_OVERVIEW));
    lines.length = 0;
    // calico-node's start: the block, then the tunnel address at its first ordinal.
    const ipam = new DatastoreIpam(store, cluster.pool, () => NOW);
    const claimed = await ipam.claimBlock(NODE);
    await ipam.assign(NODE, claimed, `ipip-tunnel-addr-${NODE}`, { node: NODE, type: 'ipipTunnelAddress' });
  });

  test("records each pod: its address in the block under its handle, its WorkloadEndpoint under Calico's key", async () => {
    const pods = cluster.pods.filter((pod) => pod.node === NODE);
    expect(pods.length).toBeGreaterThan(0);
    expect(await sync(cluster)).toEqual({
      recorded: pods.length,
      released: 0,
    });
    expect(lines).toEqual([]);
    const value = await block(store, '192.168.87.192/26');
    for (const pod of pods) {
      const ordinal = ordinalOf(pod.ip);
      const handle = podHandle(podContainerId(pod.namespace, pod.name));
      expect(value.attributes[value.allocations[ordinal]!]).toEqual({
        handle_id: handle,
        secondary: { namespace: 'default', node: NODE, pod: pod.name, timestamp: NOW.toISOString() },
      });
      expect(value.unallocated).not.toContain(ordinal);
      expect(JSON.parse((await store.get(DATASTORE_KEYS.handle(handle)))!.value)).toEqual({
        block: { '192.168.87.192/26': 1 },
        deleted: false,
      });
      const name = `worker--node01-k8s-${pod.name.replace(/-/g, '--')}-eth0`;
      const wep = JSON.parse(
        (await store.get(DATASTORE_KEYS.workloadEndpoint('default', name)))!.value,
      ) as WorkloadEndpointResource;
      expect(wep.spec).toMatchObject({
        orchestrator: 'k8s',
        node: NODE,
        pod: pod.name,
        endpoint: 'eth0',
        ipNetworks: [`${pod.ip}/32`],
        interfaceName: pod.hostInterface,
        profiles: ['kns.default', 'ksa.default.default'],
      });
      expect(wep.metadata.labels).toMatchObject({ app: 'hello-world', 'projectcalico.org/orchestrator': 'k8s' });
    }
    // Converged: a second pass changes nothing.
    expect(await sync(cluster)).toEqual({ recorded: 0, released: 0 });
  });

  test('a pod that went is released: its address to the end of the free list, its handle and endpoint deleted', async () => {
    await sync(cluster);
    const before = await block(store, '192.168.87.192/26');
    const [gone, ...kept] = cluster.pods.filter((pod) => pod.node === NODE);
    const fewer = { ...cluster, pods: cluster.pods.filter((pod) => pod !== gone) };
    expect(await sync(fewer)).toEqual({ recorded: 0, released: 1 });
    const after = await block(store, '192.168.87.192/26');
    const ordinal = ordinalOf(gone.ip);
    expect(after.allocations[ordinal]).toBeNull();
    expect(after.unallocated.at(-1)).toBe(ordinal);
    expect(after.attributes).toHaveLength(before.attributes.length - 1);
    // The others' allocations still point at their own attributes after the renumbering.
    for (const pod of kept) {
      const attribute = after.attributes[after.allocations[ordinalOf(pod.ip)]!];
      expect(attribute.secondary.pod).toBe(pod.name);
    }
    expect(after.attributes[after.allocations[0]!].handle_id).toBe(`ipip-tunnel-addr-${NODE}`);
    expect(await store.get(DATASTORE_KEYS.handle(podHandle(podContainerId('default', gone.name))))).toBeUndefined();
    const keys = [...(await store.list(DATASTORE_KEYS.workloadEndpoints)).keys()];
    expect(keys.some((key) => key.includes(gone.name.replace(/-/g, '--')))).toBe(false);
  });

  test("another node's endpoints are never touched, and an address outside any claimed block is said so", async () => {
    const foreign = `${DATASTORE_KEYS.workloadEndpoints}default/other`;
    await store.put(foreign, JSON.stringify({ spec: { node: 'worker-node02', containerID: 'x' } }));
    await store.put(`${DATASTORE_KEYS.workloadEndpoints}default/broken`, '{');
    const elsewhere = cluster.pods.find((pod) => pod.node === 'worker-node02')!;
    const moved = { ...cluster, pods: [...cluster.pods, { ...elsewhere, name: 'visitor', node: NODE }] };
    await sync(moved);
    expect(await store.get(foreign)).toBeDefined();
    expect(lines).toEqual([
      `datastore: default/visitor's ${elsewhere.ip} is in no claimed block: its WorkloadEndpoint is written, its allocation is not`,
    ]);
  });
});

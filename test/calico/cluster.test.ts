import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Ipv4Address, Ipv4Prefix } from '../../src/routing/address.js';
import {
  buildCluster,
  nodeByName,
  nodeOwningBlock,
  podByIp,
  podByName,
  type ClusterState,
} from '../../src/calico/cluster.js';
import { vethNameForWorkload } from '../../src/calico/naming.js';
import { parseSpec, type ClusterSpec } from '../../src/calico/spec.js';

/** The lab specs in containers/ are the seeds' clusters: seed 1 is cni-overview, seed 2 (kind) is networking. */
function labSpec(lab: 'cni-overview' | 'networking'): ClusterSpec {
  const file = path.resolve('containers', lab, 'cluster.yaml');
  return parseSpec(readFileSync(file, 'utf8'), {
    source: file,
    readFile: (relative) => readFileSync(path.resolve(path.dirname(file), relative), 'utf8'),
  });
}

const ip = (text: string) => Ipv4Address.parse(text);
const K8S_NAME_CHARS = '[bcdfghjklmnpqrstvwxz2456789]';

function node(cluster: ClusterState, name: string) {
  const found = nodeByName(cluster, name);
  if (!found) throw new Error(`no node ${name}`);
  return found;
}

describe('buildCluster on seed 1 (cni-overview)', () => {
  const cluster = buildCluster(labSpec('cni-overview'));

  it('gives each node the tunnel address the seed shows, the base of its first block', () => {
    expect(cluster.nodes.map((n) => [n.name, n.tunnelAddress?.toString(), n.blocks.map(String)])).toEqual([
      ['master-node', '192.168.77.128', ['192.168.77.128/26']],
      ['worker-node01', '192.168.87.192', ['192.168.87.192/26']],
      ['worker-node02', '192.168.158.0', ['192.168.158.0/26']],
    ]);
  });

  it('annotates nodes as calico-node does', () => {
    expect(node(cluster, 'master-node').annotations).toEqual({
      'node.alpha.kubernetes.io/ttl': '0',
      'projectcalico.org/IPv4Address': '10.0.0.10/24',
      'projectcalico.org/IPv4IPIPTunnelAddr': '192.168.77.128',
    });
  });

  it('hands out Kubernetes PodCIDRs in node order, unrelated to the Calico blocks', () => {
    expect(cluster.nodes.map((n) => n.podCIDR.toString())).toEqual([
      '192.168.0.0/24',
      '192.168.1.0/24',
      '192.168.2.0/24',
    ]);
  });

  it('describes nodes as kubectl 1.21 shows them', () => {
    const master = node(cluster, 'master-node');
    expect(master.roles).toEqual(['control-plane', 'master']);
    expect(master.taints).toEqual([{ key: 'node-role.kubernetes.io/master', effect: 'NoSchedule' }]);
    expect(master.labels['kubernetes.io/hostname']).toBe('master-node');
    expect(master.internalIP).toEqual(ip('10.0.0.10'));
    const worker = node(cluster, 'worker-node01');
    expect(worker.roles).toEqual(['worker']);
    expect(worker.taints).toEqual([]);
  });

  it('runs the 3 hello-world replicas on the workers, each inside its node block', () => {
    expect(cluster.pods).toHaveLength(3);
    for (const pod of cluster.pods) {
      expect(pod.node).not.toBe('master-node');
      expect(node(cluster, pod.node).blocks.some((block) => block.contains(pod.ip))).toBe(true);
    }
    // Tunnel addresses come first, so each node's first pod takes the next address of its block.
    expect(cluster.pods.map((p) => [p.node, p.ip.toString()])).toEqual([
      ['worker-node01', '192.168.87.193'],
      ['worker-node02', '192.168.158.1'],
      ['worker-node01', '192.168.87.194'],
    ]);
  });

  it('names pods <deployment>-<pod-template-hash>-<suffix> and labels them with the hash', () => {
    const hash = cluster.pods[0].labels['pod-template-hash'];
    expect(hash).toMatch(new RegExp(`^${K8S_NAME_CHARS}{1,10}$`));
    for (const pod of cluster.pods) {
      expect(pod.name).toMatch(new RegExp(`^hello-world-${hash}-${K8S_NAME_CHARS}{5}$`));
      expect(pod.labels).toEqual({ app: 'hello-world', 'pod-template-hash': hash });
      expect(pod).toMatchObject({ namespace: 'default', deployment: 'hello-world', mtu: 1480, podIfIndex: 4 });
      expect(pod.containers).toEqual([
        {
          name: 'hello-world',
          image: 'gcr.io/google-samples/hello-app:1.0',
          ports: [{ containerPort: 8080, protocol: 'TCP' }],
        },
      ]);
    }
    expect(new Set(cluster.pods.map((p) => p.name)).size).toBe(3);
  });

  it('wires each pod to a cali veth numbered after eth0 on its node', () => {
    expect(cluster.pods.map((p) => [p.node, p.hostIfIndex])).toEqual([
      ['worker-node01', 4],
      ['worker-node02', 4],
      ['worker-node01', 5],
    ]);
    for (const pod of cluster.pods) {
      expect(pod.hostInterface).toBe(vethNameForWorkload(pod.namespace, pod.name));
      expect(pod.hostInterface).toMatch(/^cali[0-9a-f]{11}$/);
      expect(pod.netns).toMatch(/^cni-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(pod.podMac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
      const first = parseInt(pod.podMac.slice(0, 2), 16);
      expect(first & 0x01).toBe(0); // unicast
      expect(first & 0x02).toBe(2); // locally administered
    }
    expect(new Set(cluster.pods.map((p) => p.podMac)).size).toBe(3);
  });

  it('looks nodes and pods up by name, address and block', () => {
    const pod = cluster.pods[1];
    expect(nodeByName(cluster, 'worker-node02')?.ip).toEqual(ip('10.0.0.12'));
    expect(nodeByName(cluster, 'nope')).toBeUndefined();
    expect(podByName(cluster, pod.name)).toBe(pod);
    expect(podByName(cluster, pod.name, 'default')).toBe(pod);
    expect(podByName(cluster, pod.name, 'kube-system')).toBeUndefined();
    expect(podByIp(cluster, pod.ip)).toBe(pod);
    expect(podByIp(cluster, ip('192.168.158.63'))).toBeUndefined();
    expect(nodeOwningBlock(cluster, ip('192.168.77.150'))?.name).toBe('master-node');
    expect(nodeOwningBlock(cluster, ip('192.168.158.63'))?.name).toBe('worker-node02');
    expect(nodeOwningBlock(cluster, ip('192.168.1.1'))).toBeUndefined();
  });
});

describe('buildCluster on seed 2 (kind networking)', () => {
  const cluster = buildCluster(labSpec('networking'));

  it('annotates the control plane with its /16 address and its tunnel address', () => {
    const controlPlane = node(cluster, 'networking-control-plane');
    expect(controlPlane.ip).toEqual(ip('172.20.0.2'));
    expect(controlPlane.annotations['projectcalico.org/IPv4Address']).toBe('172.20.0.2/16');
    expect(controlPlane.annotations['projectcalico.org/IPv4IPIPTunnelAddr']).toBe('192.168.223.128');
    expect(controlPlane.podCIDR.toString()).toBe('192.168.0.0/24');
  });

  it('claims the blocks the seed routes to', () => {
    expect(cluster.nodes.map((n) => [n.name, n.ip.toString(), n.blocks.map(String)])).toEqual([
      ['networking-control-plane', '172.20.0.2', ['192.168.223.128/26']],
      ['networking-worker', '172.20.0.3', ['192.168.78.128/26']],
      ['networking-worker2', '172.20.0.4', ['192.168.175.0/26']],
      ['networking-worker3', '172.20.0.5', ['192.168.21.128/26']],
    ]);
  });

  it('spreads the 3 replicas one per worker', () => {
    expect(cluster.pods.map((p) => p.node)).toEqual(['networking-worker', 'networking-worker2', 'networking-worker3']);
  });
});

describe('buildCluster determinism', () => {
  it('gives deep-equal state for the same spec parsed twice', () => {
    expect(buildCluster(labSpec('cni-overview'))).toEqual(buildCluster(labSpec('cni-overview')));
    const spec = labSpec('networking');
    expect(buildCluster(spec)).toEqual(buildCluster(spec));
  });
});

describe('buildCluster variants', () => {
  const seed = labSpec('cni-overview');
  const withPool = (pool: Partial<ClusterSpec['pool']>, rest: Partial<ClusterSpec> = {}): ClusterSpec => ({
    ...seed,
    ...rest,
    pool: { ...seed.pool, ...pool },
  });

  it('allocates no tunnel addresses in ipipMode Never, and keeps the host MTU for pods', () => {
    const cluster = buildCluster(withPool({ ipipMode: 'Never' }));
    for (const n of cluster.nodes) {
      expect(n.tunnelAddress).toBeUndefined();
      expect(n.annotations).not.toHaveProperty('projectcalico.org/IPv4IPIPTunnelAddr');
    }
    // Without a tunnel address the master claims no block, and a worker's first pod takes its block base.
    expect(node(cluster, 'master-node').blocks).toEqual([]);
    expect(cluster.pods[0].ip).toEqual(ip('192.168.87.192'));
    expect(cluster.pods[0].mtu).toBe(1500);
  });

  it('subtracts the IPIP header from a jumbo MTU', () => {
    const cluster = buildCluster({ ...seed, network: { ...seed.network, mtu: 9000 } });
    expect(cluster.pods.every((p) => p.mtu === 8980)).toBe(true);
  });

  it('borrows addresses from another node block when the pool has too few blocks', () => {
    const cluster = buildCluster(
      withPool({ cidr: Ipv4Prefix.parse('192.168.0.0/26') }, { clusterCIDR: Ipv4Prefix.parse('10.244.0.0/16') }),
    );
    expect(cluster.nodes.map((n) => [n.name, n.blocks.map(String)])).toEqual([
      ['master-node', ['192.168.0.0/26']],
      ['worker-node01', []],
      ['worker-node02', []],
    ]);
    const worker = node(cluster, 'worker-node01');
    expect(worker.blocks).toEqual([]);
    expect(nodeOwningBlock(cluster, worker.tunnelAddress!)?.name).toBe('master-node');
    expect(
      cluster.pods
        .filter((p) => p.node === 'worker-node01')
        .every((p) => nodeOwningBlock(cluster, p.ip)?.name === 'master-node'),
    ).toBe(true);
  });
});

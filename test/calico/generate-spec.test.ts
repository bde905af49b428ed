import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  buildCluster,
  GENERATED_DEPLOYMENT,
  GENERATED_SPEC_DEFAULTS,
  GenerateSpecError,
  generateSpec,
  kindNodeNames,
  MAX_PODS_PER_NODE,
  parseSpecDocument,
  readSpecDocument,
  type ClusterState,
  type GenerateSpecOptions,
} from '../../src/calico/index.js';
import { Ipv4Prefix } from '../../src/routing/address.js';

function podsPerNode(cluster: ClusterState): Map<string, number> {
  const counts = new Map(cluster.nodes.map((node) => [node.name, 0]));
  for (const pod of cluster.pods) counts.set(pod.node, counts.get(pod.node)! + 1);
  return counts;
}

function errorOf(options: GenerateSpecOptions): GenerateSpecError {
  try {
    generateSpec(options);
  } catch (error) {
    if (error instanceof GenerateSpecError) return error;
    throw error;
  }
  throw new Error(`generateSpec(${JSON.stringify(options)}) did not fail`);
}

describe('generateSpec output', () => {
  it("round-trips through the spec's own reader: the text alone gives the same spec", () => {
    const { text, spec } = generateSpec({ nodes: 7, podsPerNode: 3 });
    const document = readSpecDocument('generated.yaml', text, (file) => {
      throw new Error(`a generated spec names no workload file, yet ${file} was read`);
    });
    expect(document.files).toEqual({});
    expect(parseSpecDocument(document)).toEqual(spec);
  });

  it('names nodes as kind does and addresses them from .2 of the network, the control plane first', () => {
    const { spec } = generateSpec({ nodes: 4, name: 'networking', networkCidr: '172.20.0.0/16' });
    expect(spec.nodes.map((node) => [node.name, node.ip.toString(), node.role])).toEqual([
      ['networking-control-plane', '172.20.0.2', 'control-plane'],
      ['networking-worker', '172.20.0.3', 'worker'],
      ['networking-worker2', '172.20.0.4', 'worker'],
      ['networking-worker3', '172.20.0.5', 'worker'],
    ]);
    expect(spec.name).toBe('networking');
    expect(spec.network.cidr.toString()).toBe('172.20.0.0/16');
  });

  it("uses the documented defaults: a kind cluster on 10.10.0.0/24, the seeds' pool, one pod per node", () => {
    const { spec } = generateSpec({ nodes: 2 });
    expect(spec.name).toBe(GENERATED_SPEC_DEFAULTS.name);
    expect(spec.network.cidr.toString()).toBe(GENERATED_SPEC_DEFAULTS.networkCidr);
    expect(spec.pool).toMatchObject({ name: 'default-ipv4-ippool', blockSize: 26, ipipMode: 'Always' });
    expect(spec.pool.cidr.toString()).toBe('192.168.0.0/16');
    expect([...podsPerNode(buildCluster(spec)).values()]).toEqual([1, 1]);
  });

  it('is deterministic: the same options give the same text', () => {
    const options = { nodes: 12, podsPerNode: 5, name: 'lab', networkCidr: '10.41.0.0/24' };
    expect(generateSpec(options).text).toBe(generateSpec({ ...options }).text);
  });

  it('writes one Deployment a user would recognise, with nodes × pods-per-node replicas', () => {
    const { text } = generateSpec({ nodes: 5, podsPerNode: 4 });
    const workloads = (parse(text) as { workloads: Record<string, any>[] }).workloads;
    expect(workloads).toHaveLength(1);
    const [deployment] = workloads;
    expect(deployment).toMatchObject({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: GENERATED_DEPLOYMENT.name },
    });
    expect(deployment.spec.replicas).toBe(20);
    expect(deployment.spec.template.spec.topologySpreadConstraints).toEqual([
      {
        maxSkew: 1,
        topologyKey: 'kubernetes.io/hostname',
        whenUnsatisfiable: 'DoNotSchedule',
        labelSelector: { matchLabels: { app: GENERATED_DEPLOYMENT.name } },
      },
    ]);
    expect(deployment.spec.template.spec.containers[0].ports).toEqual([{ containerPort: GENERATED_DEPLOYMENT.port }]);
    // Plain YAML, no anchors or aliases for a reader to chase.
    expect(text).not.toMatch(/[&*]a\d/);
  });

  it('leaves the workloads out with 0 pods per node, as the compose labs start', () => {
    const { text, spec } = generateSpec({ nodes: 3, podsPerNode: 0 });
    expect(spec.workloads).toEqual([]);
    expect(parse(text)).not.toHaveProperty('workloads');
  });
});

describe('placement and addresses', () => {
  it.each([
    [1, 1],
    [2, 7],
    [7, 3],
    [50, 20],
  ])('%i nodes × %i pods: every node, the control plane included, runs exactly that many', (nodes, perNode) => {
    const cluster = buildCluster(generateSpec({ nodes, podsPerNode: perNode }).spec);
    expect(cluster.pods).toHaveLength(nodes * perNode);
    expect([...podsPerNode(cluster).entries()]).toEqual(kindNodeNames('kind', nodes).map((name) => [name, perNode]));
  });

  it('gives 50 nodes 50 distinct blocks, each node its pods from its own block after its tunl0 address', () => {
    const cluster = buildCluster(generateSpec({ nodes: 50, podsPerNode: 20 }).spec);
    const blocks = cluster.nodes.flatMap((node) => node.blocks.map(String));
    expect(new Set(blocks).size).toBe(50);
    for (const node of cluster.nodes) {
      expect(node.blocks).toHaveLength(1);
      expect(node.tunnelAddress?.toString()).toBe(node.blocks[0].first().toString());
      const own = cluster.pods.filter((pod) => pod.node === node.name);
      expect(own.every((pod) => node.blocks[0].contains(pod.ip))).toBe(true);
    }
  });

  it.each([
    [63, 1],
    [64, 2],
    [MAX_PODS_PER_NODE, 2],
  ])("%i pods per node: tunl0 and the pods take %i /26 block(s) per node, never another node's", (perNode, blocks) => {
    const cluster = buildCluster(generateSpec({ nodes: 6, podsPerNode: perNode }).spec);
    const all = cluster.nodes.flatMap((node) => node.blocks.map(String));
    expect(new Set(all).size).toBe(6 * blocks);
    for (const node of cluster.nodes) {
      expect(node.blocks).toHaveLength(blocks);
      const own = cluster.pods.filter((pod) => pod.node === node.name);
      expect(own).toHaveLength(perNode);
      expect(own.every((pod) => node.blocks.some((block) => block.contains(pod.ip)))).toBe(true);
    }
  });

  it("fills the smallest pool it accepts without any node borrowing from another node's blocks", () => {
    // A /22 pool holds four /24 PodCIDRs, so four nodes; at the pod limit each needs two of its sixteen /26 blocks.
    const cluster = buildCluster(
      generateSpec({ nodes: 4, podsPerNode: MAX_PODS_PER_NODE, poolCidr: '10.244.0.0/22' }).spec,
    );
    for (const pod of cluster.pods) {
      const node = cluster.nodes.find((n) => n.name === pod.node)!;
      expect(node.blocks.some((block) => block.contains(pod.ip))).toBe(true);
    }
    expect(
      cluster.nodes
        .flatMap((node) => node.blocks)
        .every((block) => Ipv4Prefix.parse('10.244.0.0/22').contains(block.first())),
    ).toBe(true);
  });
});

describe('kindNodeNames', () => {
  it('numbers workers from the second one on, as kind does', () => {
    expect(kindNodeNames('kind', 4)).toEqual(['kind-control-plane', 'kind-worker', 'kind-worker2', 'kind-worker3']);
    expect(kindNodeNames('x', 1)).toEqual(['x-control-plane']);
  });
});

describe('options that cannot make a lab', () => {
  it.each<[GenerateSpecOptions, GenerateSpecError['option'], RegExp]>([
    [{ nodes: 0 }, 'nodes', /needs at least one node/],
    [{ nodes: 2.5 }, 'nodes', /2\.5 is not a whole number/],
    [{ nodes: 3, podsPerNode: -1 }, 'podsPerNode', /-1 is negative/],
    [{ nodes: 3, podsPerNode: 111 }, 'podsPerNode', /111 is more than kubelet's default --max-pods \(110\)/],
    [
      { nodes: 50, networkCidr: '10.0.0.0/28' },
      'networkCidr',
      /10\.0\.0\.0\/28 has room for 13 node\(s\).*not 50: use a larger network, e\.g\. 10\.0\.0\.0\/26/,
    ],
    [{ nodes: 254, networkCidr: '10.0.0.0/24' }, 'networkCidr', /has room for 253 .* e\.g\. 10\.0\.0\.0\/23/],
    [{ nodes: 2, networkCidr: '10.0.0.1/24' }, 'networkCidr', /host bits set \(did you mean 10\.0\.0\.0\/24\?\)/],
    [{ nodes: 2, networkCidr: '10.0.0.0' }, 'networkCidr', /"10\.0\.0\.0" is not an IPv4 CIDR/],
    [{ nodes: 2, poolCidr: '10.10.0.0/16' }, 'poolCidr', /overlaps the node network 10\.10\.0\.0\/24/],
    [{ nodes: 5, poolCidr: '10.244.0.0/22' }, 'poolCidr', /room for 4 node PodCIDR\(s\) \(a \/24 each\), not 5/],
    [{ nodes: 1, poolCidr: '10.244.0.0/25' }, 'poolCidr', /room for 0 node PodCIDR/],
    [{ nodes: 2, name: 'Kind' }, 'name', /"Kind" is not a DNS-1123 label/],
    [{ nodes: 2, name: 'a'.repeat(50) }, 'name', /-control-plane \(64 characters\), longer than a hostname's 63/],
  ])('%j is refused, naming %s', (options, option, message) => {
    const error = errorOf(options);
    expect(error.option).toBe(option);
    expect(error.message).toMatch(message);
  });

  it('accepts the largest lab a /24 network holds', () => {
    expect(generateSpec({ nodes: 253, networkCidr: '10.0.0.0/24' }).spec.nodes.at(-1)?.ip.toString()).toBe(
      '10.0.0.254',
    );
  });
});

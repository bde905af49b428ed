import { describe, expect, it } from 'vitest';
import { Ipv4Address } from '../../src/routing/address.js';
import {
  nodeLabels,
  nodeRoles,
  nodeTaints,
  schedule,
  tolerates,
  unschedulableReason,
  type Taint,
} from '../../src/calico/scheduler.js';
import type { Deployment, NodeSpec, PodTemplate, Toleration } from '../../src/calico/spec.js';

function node(name: string, role: NodeSpec['role'], host: number): NodeSpec {
  return { name, ip: Ipv4Address.parse(`10.0.0.${host}`), role };
}

const MASTER = node('master-node', 'control-plane', 10);
const WORKERS = [
  node('worker-node01', 'worker', 11),
  node('worker-node02', 'worker', 12),
  node('worker-node03', 'worker', 13),
];

function deployment(name: string, replicas: number, template: Partial<PodTemplate> = {}): Deployment {
  return {
    name,
    namespace: 'default',
    replicas,
    template: {
      labels: { app: name },
      containers: [{ name, image: 'nginx', ports: [] }],
      tolerations: [],
      nodeSelector: {},
      raw: {},
      ...template,
    },
  };
}

function counts(nodes: readonly string[]): Record<string, number> {
  const result: Record<string, number> = {};
  for (const name of nodes) result[name] = (result[name] ?? 0) + 1;
  return result;
}

const MASTER_TAINT: Taint = { key: 'node-role.kubernetes.io/master', effect: 'NoSchedule' };

function toleration(fields: Partial<Toleration>): Toleration {
  return { key: '', operator: 'Equal', value: '', effect: '', ...fields };
}

describe('node metadata', () => {
  it('taints control-plane nodes as kubeadm 1.21 does, and not workers', () => {
    expect(nodeTaints(MASTER)).toEqual([MASTER_TAINT]);
    expect(nodeTaints(WORKERS[0])).toEqual([]);
  });

  it('labels nodes as kubelet and kubeadm do, and derives kubectl ROLES from the labels', () => {
    const master = nodeLabels(MASTER);
    expect(master).toMatchObject({
      'kubernetes.io/hostname': 'master-node',
      'kubernetes.io/os': 'linux',
      'node-role.kubernetes.io/control-plane': '',
      'node-role.kubernetes.io/master': '',
    });
    expect(nodeRoles(master)).toEqual(['control-plane', 'master']);
    // Nothing labels a worker by role: kubectl shows <none> (as on kind) until the spec labels it.
    expect(nodeRoles(nodeLabels(WORKERS[0]))).toEqual([]);
    const labelled = { ...WORKERS[0], labels: { 'node-role.kubernetes.io/worker': 'worker' } };
    expect(nodeRoles(nodeLabels(labelled))).toEqual(['worker']);
    expect(nodeLabels(labelled)['node-role.kubernetes.io/worker']).toBe('worker');
    expect(nodeRoles({ 'kubernetes.io/role': 'edge', 'node-role.kubernetes.io/': '' })).toEqual(['edge']);
    expect(nodeRoles({})).toEqual([]);
  });
});

describe('tolerates', () => {
  it('follows Kubernetes: key, operator, value and effect', () => {
    expect(
      tolerates(toleration({ key: MASTER_TAINT.key, operator: 'Exists', effect: 'NoSchedule' }), MASTER_TAINT),
    ).toBe(true);
    expect(tolerates(toleration({ key: MASTER_TAINT.key, operator: 'Exists' }), MASTER_TAINT)).toBe(true);
    expect(tolerates(toleration({ operator: 'Exists' }), MASTER_TAINT)).toBe(true);
    expect(tolerates(toleration({ key: MASTER_TAINT.key }), MASTER_TAINT)).toBe(true);
    expect(tolerates(toleration({ key: MASTER_TAINT.key, value: 'x' }), MASTER_TAINT)).toBe(false);
    expect(tolerates(toleration({ key: 'other', operator: 'Exists' }), MASTER_TAINT)).toBe(false);
    expect(
      tolerates(toleration({ key: MASTER_TAINT.key, operator: 'Exists', effect: 'NoExecute' }), MASTER_TAINT),
    ).toBe(false);
  });
});

describe('unschedulableReason', () => {
  it('keeps ordinary pods off the control plane and lets tolerating ones on', () => {
    const plain = deployment('web', 1).template;
    expect(unschedulableReason(MASTER, plain)).toBe('untolerated taint node-role.kubernetes.io/master:NoSchedule');
    expect(unschedulableReason(WORKERS[0], plain)).toBeUndefined();
    const tolerant = deployment('web', 1, {
      tolerations: [toleration({ key: MASTER_TAINT.key, operator: 'Exists' })],
    }).template;
    expect(unschedulableReason(MASTER, tolerant)).toBeUndefined();
  });

  it('honours nodeSelector against the node labels', () => {
    const pinned = deployment('web', 1, { nodeSelector: { 'kubernetes.io/hostname': 'worker-node02' } }).template;
    expect(unschedulableReason(WORKERS[0], pinned)).toBe(
      'nodeSelector kubernetes.io/hostname=worker-node02 does not match',
    );
    expect(unschedulableReason(WORKERS[1], pinned)).toBeUndefined();
  });
});

describe('schedule', () => {
  it('never places pods on a control-plane node', () => {
    const [placement] = schedule([MASTER, ...WORKERS], [deployment('web', 30)]);
    expect(placement.nodes).not.toContain('master-node');
    expect(placement.nodes).toHaveLength(30);
  });

  it('spreads 3 replicas over 2 workers as 2 + 1, the first-listed node taking the extra one', () => {
    const [placement] = schedule([MASTER, ...WORKERS.slice(0, 2)], [deployment('hello-world', 3)]);
    expect(placement.nodes).toEqual(['worker-node01', 'worker-node02', 'worker-node01']);
  });

  it('spreads 20 replicas over 3 workers as 7/7/6', () => {
    const [placement] = schedule([MASTER, ...WORKERS], [deployment('web', 20)]);
    expect(counts(placement.nodes)).toEqual({ 'worker-node01': 7, 'worker-node02': 7, 'worker-node03': 6 });
  });

  it('balances pods across Deployments: the least-loaded node first', () => {
    const placements = schedule(WORKERS.slice(0, 2), [deployment('a', 1), deployment('b', 3)]);
    expect(placements.map((p) => p.nodes)).toEqual([
      ['worker-node01'],
      ['worker-node02', 'worker-node01', 'worker-node02'],
    ]);
  });

  it('puts tolerating pods on the control plane too', () => {
    const tolerant = deployment('agent', 4, { tolerations: [toleration({ operator: 'Exists' })] });
    expect(counts(schedule([MASTER, ...WORKERS], [tolerant])[0].nodes)).toEqual({
      'master-node': 1,
      'worker-node01': 1,
      'worker-node02': 1,
      'worker-node03': 1,
    });
  });

  it('is deterministic', () => {
    const input = [deployment('a', 5), deployment('b', 7)];
    expect(schedule([MASTER, ...WORKERS], input)).toEqual(schedule([MASTER, ...WORKERS], input));
  });

  it('accepts zero replicas anywhere and refuses pods that fit nowhere', () => {
    expect(schedule([MASTER], [deployment('idle', 0)])).toEqual([{ deployment: deployment('idle', 0), nodes: [] }]);
    expect(() => schedule([MASTER], [deployment('web', 1)])).toThrow('no node can run Deployment default/web');
  });
});

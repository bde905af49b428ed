/**
 * Where each replica runs. The real kube-scheduler picks randomly among equally good nodes; a lab
 * needs every node agent to reach the same answer on its own, so ties here go to the node listed
 * first in the spec.
 */
import type { Deployment, NodeSpec, PodTemplate, TaintEffect, Toleration } from './spec.js';

export interface Taint {
  readonly key: string;
  readonly value?: string;
  readonly effect: TaintEffect;
}

/** kubeadm 1.21 taints control-plane nodes with the `master` key only (the `control-plane` key came in 1.24). */
const CONTROL_PLANE_TAINT: Taint = { key: 'node-role.kubernetes.io/master', effect: 'NoSchedule' };

const NODE_ROLE_PREFIX = 'node-role.kubernetes.io/';

export function nodeTaints(node: NodeSpec): Taint[] {
  return node.role === 'control-plane' ? [CONTROL_PLANE_TAINT] : [];
}

/**
 * The labels kubelet and kubeadm 1.21 put on a Node, then the spec's own. Nothing labels a worker by role: a worker
 * shows ROLES `<none>` (as on kind) unless its spec labels it, as the first seed's course did by hand.
 */
export function nodeLabels(node: NodeSpec): Record<string, string> {
  const common = {
    'beta.kubernetes.io/os': 'linux',
    'kubernetes.io/hostname': node.name,
    'kubernetes.io/os': 'linux',
  };
  const kubeadm: Record<string, string> =
    node.role === 'control-plane'
      ? {
          [`${NODE_ROLE_PREFIX}control-plane`]: '',
          [`${NODE_ROLE_PREFIX}master`]: '',
          'node.kubernetes.io/exclude-from-external-load-balancers': '',
        }
      : {};
  return { ...common, ...kubeadm, ...node.labels };
}

/** kubectl's ROLES column: every `node-role.kubernetes.io/<role>` label and `kubernetes.io/role`, sorted. */
export function nodeRoles(labels: Readonly<Record<string, string>>): string[] {
  const roles = new Set<string>();
  for (const [key, value] of Object.entries(labels)) {
    if (key.startsWith(NODE_ROLE_PREFIX) && key.length > NODE_ROLE_PREFIX.length)
      roles.add(key.slice(NODE_ROLE_PREFIX.length));
    else if (key === 'kubernetes.io/role' && value !== '') roles.add(value);
  }
  return [...roles].sort();
}

/** Kubernetes' Toleration.ToleratesTaint. */
export function tolerates(toleration: Toleration, taint: Taint): boolean {
  if (toleration.effect !== '' && toleration.effect !== taint.effect) return false;
  if (toleration.key !== '' && toleration.key !== taint.key) return false;
  return toleration.operator === 'Exists' || toleration.value === (taint.value ?? '');
}

/** Why a pod of this template cannot run on the node, or undefined when it can. */
export function unschedulableReason(node: NodeSpec, template: PodTemplate): string | undefined {
  // PreferNoSchedule only lowers a node's score; NoSchedule and NoExecute keep pods off.
  const blocking = nodeTaints(node).find(
    (taint) => taint.effect !== 'PreferNoSchedule' && !template.tolerations.some((t) => tolerates(t, taint)),
  );
  if (blocking) return `untolerated taint ${blocking.key}:${blocking.effect}`;
  const labels = nodeLabels(node);
  const mismatch = Object.entries(template.nodeSelector).find(([key, value]) => labels[key] !== value);
  if (mismatch) return `nodeSelector ${mismatch[0]}=${mismatch[1]} does not match`;
  return undefined;
}

/** The node of each replica of one Deployment, replica by replica. */
export interface Placement {
  readonly deployment: Deployment;
  readonly nodes: readonly string[];
}

/**
 * Places replicas one at a time, as the ReplicaSet controller creates them: on the feasible node with
 * the fewest pods overall, then the fewest of this Deployment, then the first in spec order.
 */
export function schedule(nodes: readonly NodeSpec[], deployments: readonly Deployment[]): Placement[] {
  const total = new Map(nodes.map((node) => [node.name, 0]));
  return deployments.map((deployment) => {
    const feasible = nodes.filter((node) => unschedulableReason(node, deployment.template) === undefined);
    if (feasible.length === 0 && deployment.replicas > 0) {
      throw new Error(`no node can run Deployment ${deployment.namespace}/${deployment.name}`);
    }
    const own = new Map(feasible.map((node) => [node.name, 0]));
    const placed: string[] = [];
    for (let replica = 0; replica < deployment.replicas; replica++) {
      const best = feasible.reduce((a, b) => {
        const byTotal = total.get(b.name)! - total.get(a.name)!;
        const byOwn = own.get(b.name)! - own.get(a.name)!;
        return byTotal < 0 || (byTotal === 0 && byOwn < 0) ? b : a;
      });
      total.set(best.name, total.get(best.name)! + 1);
      own.set(best.name, own.get(best.name)! + 1);
      placed.push(best.name);
    }
    return { deployment, nodes: placed };
  });
}

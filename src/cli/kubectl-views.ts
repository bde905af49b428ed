import type { ClusterState, NodeState, PodState } from '../calico/index.js';
import { humanDuration, renderTable } from './kubectl-table.js';
import type { ClusterView, NodeFacts } from './cluster-source.js';

/** What a view knows beyond the spec: each node's facts (from its agent, when agents run) and the time now. */
export interface ViewContext {
  readonly facts: ReadonlyMap<string, NodeFacts>;
  readonly now: number;
}

/** Asks each node's facts once (from its agent, when agents run), all at once. */
export async function gatherViewContext(view: ClusterView, nodes: readonly NodeState[]): Promise<ViewContext> {
  const facts = new Map<string, NodeFacts>();
  await Promise.all(nodes.map(async (node) => facts.set(node.name, await view.facts(node))));
  return { facts, now: Date.now() };
}

function factsOf(context: ViewContext, nodeName: string): NodeFacts {
  const facts = context.facts.get(nodeName);
  if (!facts) throw new Error(`no facts gathered for node ${nodeName}`);
  return facts;
}

/** A node's age is its agent's; a pod starts with its node's agent, so it has the same age. */
function age(context: ViewContext, nodeName: string): string {
  const { startedAt } = factsOf(context, nodeName);
  return startedAt === undefined ? '<unknown>' : humanDuration(context.now - startedAt);
}

function rolesOf(node: NodeState): string {
  return node.roles.length === 0 ? '<none>' : node.roles.join(',');
}

/** The API server lists objects in its store's key order: by namespace, then name. */
function byName<T extends { name: string; namespace?: string }>(items: readonly T[]): T[] {
  const key = (item: T): string => `${item.namespace ?? ''}/${item.name}`;
  return [...items].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

export function renderGetNodes(cluster: ClusterState, context: ViewContext, wide: boolean): string {
  const header = ['NAME', 'STATUS', 'ROLES', 'AGE', 'VERSION'];
  if (wide) header.push('INTERNAL-IP', 'EXTERNAL-IP', 'OS-IMAGE', 'KERNEL-VERSION', 'CONTAINER-RUNTIME');
  const version = cluster.spec.kubernetesVersion;
  const rows = byName(cluster.nodes).map((node) => {
    const { status, system } = factsOf(context, node.name);
    const row = [node.name, status, rolesOf(node), age(context, node.name), version];
    if (wide) {
      row.push(node.ip.toString(), '<none>', system.osImage, system.kernelVersion, system.containerRuntime);
    }
    return row;
  });
  return renderTable(header, rows);
}

/** `allNamespaces`: kubectl's `-A`, which adds a NAMESPACE column in front. */
export function renderGetPods(
  pods: readonly PodState[],
  context: ViewContext,
  wide: boolean,
  { allNamespaces = false }: { allNamespaces?: boolean } = {},
): string {
  if (pods.length === 0) return 'No resources found in default namespace.\n';
  const header = [...(allNamespaces ? ['NAMESPACE'] : []), 'NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE'];
  if (wide) header.push('IP', 'NODE', 'NOMINATED NODE', 'READINESS GATES');
  const rows = byName(pods).map((pod) => {
    const ready = `${pod.containers.length}/${pod.containers.length}`;
    const row = [...(allNamespaces ? [pod.namespace] : []), pod.name, ready, 'Running', '0', age(context, pod.node)];
    if (wide) row.push(pod.ip.toString(), pod.node, '<none>', '<none>');
    return row;
  });
  return renderTable(header, rows);
}

/** kubectl describe's two-level layout: `Key:` padded to a common column, continuation lines aligned. */
function section(pairs: readonly [string, readonly string[]][], width: number): string {
  return pairs
    .map(([key, values]) => {
      const label = `${key}:`.padEnd(width);
      const [first = '<none>', ...rest] = values;
      return [`${label}${first}`, ...rest.map((v) => `${' '.repeat(width)}${v}`)].join('\n') + '\n';
    })
    .join('');
}

export function renderDescribeNode(cluster: ClusterState, node: NodeState, context: ViewContext): string {
  const labels = Object.entries(node.labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`);
  const annotations = Object.entries(node.annotations)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}: ${v}`);
  const taints = node.taints.map((t) => `${t.key}:${t.effect}`);
  const pods = cluster.pods.filter((p) => p.node === node.name);
  const { startedAt, system } = factsOf(context, node.name);
  let out = section(
    [
      ['Name', [node.name]],
      ['Roles', [rolesOf(node)]],
      ['Labels', labels],
      ['Annotations', annotations],
      [
        'CreationTimestamp',
        [startedAt === undefined ? '<unknown>' : new Date(startedAt).toUTCString().replace('GMT', '+0000')],
      ],
      ['Taints', taints],
      ['Unschedulable', ['false']],
    ],
    20,
  );
  out += 'Addresses:\n';
  out += `  InternalIP:  ${node.ip}\n`;
  out += `  Hostname:    ${node.name}\n`;
  out += 'System Info:\n';
  out += section(
    [
      ['  Kernel Version', [system.kernelVersion]],
      ['  OS Image', [system.osImage]],
      ['  Operating System', ['linux']],
      ['  Architecture', [system.architecture]],
      ['  Container Runtime Version', [system.containerRuntime]],
      ['  Kubelet Version', [cluster.spec.kubernetesVersion]],
    ],
    30,
  );
  out += section(
    [
      ['PodCIDR', [node.podCIDR.toString()]],
      ['PodCIDRs', [node.podCIDR.toString()]],
      ['Non-terminated Pods', [`(${pods.length} in total)`]],
    ],
    30,
  );
  if (pods.length > 0) {
    out += renderTable(
      ['Namespace', 'Name', 'IP', 'Age'],
      [
        ['---------', '----', '--', '---'],
        ...pods.map((p) => [p.namespace, p.name, p.ip.toString(), age(context, node.name)]),
      ],
    )
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => `  ${line}\n`)
      .join('');
  }
  // Not part of kubectl's output: the answer to the seed's question "why aren't the pods in PodCIDR?".
  out += 'Calico IPAM (projectcalico.org, not part of the Node object):\n';
  out += section(
    [
      [
        '  IPPool',
        [
          `${cluster.pool.name} ${cluster.pool.cidr} (blockSize /${cluster.pool.blockSize}, ipipMode ${cluster.pool.ipipMode})`,
        ],
      ],
      ['  Affine blocks', node.blocks.map((b) => b.toString())],
      ['  IPIP tunnel address', [node.tunnelAddress ? `${node.tunnelAddress} (tunl0)` : '<none>']],
      ['  Note', ['pod IPs come from the Calico blocks above, not from PodCIDR']],
    ],
    30,
  );
  out += 'Events:                       <none>\n';
  return out;
}

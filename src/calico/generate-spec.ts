/**
 * Cluster specs for labs larger than the seeds': N kind-style nodes on one underlay network and one Deployment that
 * puts the same number of pods on every node. The text is what a user would write by hand (the same document shape
 * as containers/*\/cluster.yaml, workloads inline so the file stands alone) and goes through the spec's own
 * validator before it is handed out, so a generated spec is never one the agents would refuse.
 */
import { Document, isMap, isScalar, isSeq, type YAMLMap, type YAMLSeq } from 'yaml';
import { Ipv4Prefix } from '../routing/address.js';
import {
  DEFAULT_BLOCK_SIZE,
  DEFAULT_KUBERNETES_VERSION,
  DEFAULT_POOL_NAME,
  NODE_POD_CIDR_LENGTH,
  parseSpecDocument,
  type ClusterSpec,
  type SpecDocument,
} from './spec.js';

export interface GenerateSpecOptions {
  readonly nodes: number;
  readonly podsPerNode?: number;
  /** The cluster's name, which prefixes every node name as kind does: `<name>-control-plane`, `<name>-worker`… */
  readonly name?: string;
  /** The underlay network (the Docker network of the node containers). */
  readonly networkCidr?: string;
  /** The Calico IP pool the pods' addresses come from. */
  readonly poolCidr?: string;
}

export type GenerateSpecOption = keyof GenerateSpecOptions;

/** Options that cannot make a valid lab; `option` names which, so a caller can point at its own flag. */
export class GenerateSpecError extends Error {
  constructor(
    readonly option: GenerateSpecOption,
    detail: string,
  ) {
    super(detail);
    this.name = 'GenerateSpecError';
  }
}

export interface GeneratedSpec {
  /** The spec's YAML, deterministic for the same options. */
  readonly text: string;
  /** The same spec as the agents will read it. */
  readonly spec: ClusterSpec;
}

export const GENERATED_SPEC_DEFAULTS = {
  podsPerNode: 1,
  /** kind's own default cluster name. */
  name: 'kind',
  /** Not the seed labs' 10.0.0.0/24 or 172.20.0.0/16, so a generated lab can run beside them. */
  networkCidr: '10.10.0.0/24',
  poolCidr: '192.168.0.0/16',
} as const;

/** kubelet's default --max-pods: a real node with default settings leaves any pod past this Pending. */
export const MAX_PODS_PER_NODE = 110;
/** A node name is also the container's hostname, which Linux keeps to 64 bytes; a DNS label stops at 63. */
const MAX_NODE_NAME_LENGTH = 63;
/** Docker gives the network's first host address to its gateway, so nodes start at the second, as on kind. */
const FIRST_NODE_OFFSET = 2;
/** The network address, the gateway and the broadcast address are never a node's. */
const RESERVED_ADDRESSES = 3;
const CONTROL_PLANE_SUFFIX = '-control-plane';
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export const GENERATED_DEPLOYMENT = {
  name: 'hello-world',
  image: 'gcr.io/google-samples/hello-app:1.0',
  port: 8080,
} as const;
/** The taint kubeadm 1.21 (the spec's Kubernetes version) puts on a control plane; see scheduler.ts. */
const CONTROL_PLANE_TAINT_KEY = 'node-role.kubernetes.io/master';

/** kind's names: the control plane, then `worker`, `worker2`, `worker3`… */
export function kindNodeNames(cluster: string, count: number): string[] {
  const workers = Array.from({ length: count - 1 }, (_, i) => `${cluster}-worker${i === 0 ? '' : i + 1}`);
  return [`${cluster}${CONTROL_PLANE_SUFFIX}`, ...workers];
}

function wholeNumber(option: GenerateSpecOption, value: number): number {
  if (!Number.isInteger(value)) throw new GenerateSpecError(option, `${value} is not a whole number`);
  return value;
}

function prefix(option: GenerateSpecOption, text: string): Ipv4Prefix {
  const parsed = text.includes('/') ? Ipv4Prefix.tryParse(text) : undefined;
  if (!parsed) throw new GenerateSpecError(option, `${JSON.stringify(text)} is not an IPv4 CIDR (a.b.c.d/len)`);
  if (!parsed.isMasked())
    throw new GenerateSpecError(option, `${text} has host bits set (did you mean ${parsed.masked()}?)`);
  return parsed;
}

function nodeRoom(network: Ipv4Prefix): number {
  return Math.max(0, network.size - RESERVED_ADDRESSES);
}

function checkNetwork(network: Ipv4Prefix, nodes: number): void {
  const room = nodeRoom(network);
  if (room >= nodes) return;
  let length = network.length;
  while (length > 0 && 2 ** (32 - length) - RESERVED_ADDRESSES < nodes) length--;
  const larger = Ipv4Prefix.of(network.address, length).masked();
  throw new GenerateSpecError(
    'networkCidr',
    `${network} has room for ${room} node(s) (its network address, gateway .1 and broadcast address are taken), ` +
      `not ${nodes}: use a larger network, e.g. ${larger}`,
  );
}

/**
 * The pool must not meet the node network and must hold a PodCIDR per node. Its blocks then always suffice: a node
 * needs at most two /26 blocks (tunl0 and ${MAX_PODS_PER_NODE} pods), and each /24 PodCIDR's worth of pool is four.
 */
function checkPool(pool: Ipv4Prefix, network: Ipv4Prefix, nodes: number): void {
  if (pool.overlaps(network)) {
    throw new GenerateSpecError(
      'poolCidr',
      `${pool} overlaps the node network ${network}: pod and node addresses must differ`,
    );
  }
  // The pool is also the cluster CIDR kube-controller-manager cuts node PodCIDRs from (see spec.ts).
  const podCidrs = pool.length <= NODE_POD_CIDR_LENGTH ? 2 ** (NODE_POD_CIDR_LENGTH - pool.length) : 0;
  if (podCidrs < nodes) {
    throw new GenerateSpecError(
      'poolCidr',
      `${pool} has room for ${podCidrs} node PodCIDR(s) (a /${NODE_POD_CIDR_LENGTH} each), not ${nodes}: use a larger pool`,
    );
  }
}

function checkName(name: string, nodes: number): void {
  if (!DNS1123_LABEL.test(name)) {
    throw new GenerateSpecError(
      'name',
      `${JSON.stringify(name)} is not a DNS-1123 label (lowercase letters, digits and "-")`,
    );
  }
  const longest = kindNodeNames(name, nodes).reduce((a, b) => (b.length > a.length ? b : a));
  if (longest.length > MAX_NODE_NAME_LENGTH) {
    throw new GenerateSpecError(
      'name',
      `${JSON.stringify(name)} makes node names like ${longest} (${longest.length} characters), longer than a ` +
        `hostname's ${MAX_NODE_NAME_LENGTH}`,
    );
  }
}

/**
 * ipip-lab's scheduler already spreads one Deployment's replicas evenly (fewest pods first, scheduler.ts) and reads
 * no topologySpreadConstraints; the constraint is there so that the manifest asks for the same spread from a real
 * kube-scheduler, whose default spreading only scores nodes and would leave some a pod or two ahead.
 */
function deploymentManifest(replicas: number): Record<string, unknown> {
  // A fresh object each time: the YAML writer would turn a shared one into an anchor and aliases.
  const labels = () => ({ app: GENERATED_DEPLOYMENT.name });
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: GENERATED_DEPLOYMENT.name },
    spec: {
      replicas,
      selector: { matchLabels: labels() },
      template: {
        metadata: { labels: labels() },
        spec: {
          tolerations: [{ key: CONTROL_PLANE_TAINT_KEY, operator: 'Exists', effect: 'NoSchedule' }],
          topologySpreadConstraints: [
            {
              maxSkew: 1,
              topologyKey: 'kubernetes.io/hostname',
              whenUnsatisfiable: 'DoNotSchedule',
              labelSelector: { matchLabels: labels() },
            },
          ],
          containers: [
            {
              name: GENERATED_DEPLOYMENT.name,
              image: GENERATED_DEPLOYMENT.image,
              ports: [{ containerPort: GENERATED_DEPLOYMENT.port }],
            },
          ],
        },
      },
    },
  };
}

function collectionAt(document: Document, path: readonly (string | number)[]): YAMLMap | YAMLSeq {
  const node = document.getIn(path, true);
  if (!isMap(node) && !isSeq(node)) throw new Error(`generated spec has no collection at ${path.join('.')}`);
  return node;
}

/** Puts a comment on the line above `key:` in the mapping at `path`. */
function commentKey(document: Document, path: readonly (string | number)[], key: string, comment: string): void {
  const map = collectionAt(document, path);
  const pair = isMap(map) ? map.items.find((item) => isScalar(item.key) && item.key.value === key) : undefined;
  if (!pair || !isScalar(pair.key)) throw new Error(`generated spec has no ${key} at ${path.join('.')}`);
  pair.key.commentBefore = comment;
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function render(
  name: string,
  network: Ipv4Prefix,
  pool: Ipv4Prefix,
  nodeNames: readonly string[],
  podsPerNode: number,
): string {
  const nodes = nodeNames.map((nodeName, i) => ({
    name: nodeName,
    ip: network
      .first()
      .add(FIRST_NODE_OFFSET + i)
      .toString(),
    role: i === 0 ? 'control-plane' : 'worker',
  }));
  const replicas = nodes.length * podsPerNode;
  const document = new Document({
    apiVersion: 'ipip-lab/v1alpha1',
    kind: 'Cluster',
    metadata: { name },
    kubernetesVersion: DEFAULT_KUBERNETES_VERSION,
    network: { cidr: network.toString() },
    pool: { name: DEFAULT_POOL_NAME, cidr: pool.toString(), blockSize: DEFAULT_BLOCK_SIZE, ipipMode: 'Always' },
    nodes,
    ...(replicas > 0 && { workloads: [deploymentManifest(replicas)] }),
  });
  const workers = nodes.length - 1;
  const pods = replicas > 0 ? `${replicas} hello-world pods, ${podsPerNode} on every node` : 'no pods yet';
  document.commentBefore =
    ` A kind-style cluster: ${count(nodes.length, 'node')} (1 control plane, ${count(workers, 'worker')}), Calico in IPIP\n` +
    ` Always mode, ${pods}.`;
  // One line per node keeps a large spec readable.
  nodes.forEach((_, i) => (collectionAt(document, ['nodes', i]).flow = true));
  if (replicas > 0) {
    const podSpec = ['workloads', 0, 'spec', 'template', 'spec'];
    commentKey(
      document,
      podSpec,
      'tolerations',
      ' The control plane runs pods too, so that every node has some to reach.',
    );
    commentKey(
      document,
      podSpec,
      'topologySpreadConstraints',
      ` No node more than one pod ahead of another: ${replicas} replicas on ${count(nodes.length, 'node')} are exactly ` +
        `${podsPerNode} per node.`,
    );
  }
  return document.toString({ lineWidth: 0 });
}

/** A spec for `nodes` nodes with `podsPerNode` pods on each; throws GenerateSpecError for options that cannot fit. */
export function generateSpec(options: GenerateSpecOptions): GeneratedSpec {
  const name = options.name ?? GENERATED_SPEC_DEFAULTS.name;
  const podsPerNode = options.podsPerNode ?? GENERATED_SPEC_DEFAULTS.podsPerNode;
  const nodes = wholeNumber('nodes', options.nodes);
  if (nodes < 1) throw new GenerateSpecError('nodes', `${nodes}: a cluster needs at least one node, its control plane`);
  if (wholeNumber('podsPerNode', podsPerNode) < 0)
    throw new GenerateSpecError('podsPerNode', `${podsPerNode} is negative`);
  if (podsPerNode > MAX_PODS_PER_NODE) {
    throw new GenerateSpecError(
      'podsPerNode',
      `${podsPerNode} is more than kubelet's default --max-pods (${MAX_PODS_PER_NODE}): a real node would leave the rest Pending`,
    );
  }
  const network = prefix('networkCidr', options.networkCidr ?? GENERATED_SPEC_DEFAULTS.networkCidr);
  const pool = prefix('poolCidr', options.poolCidr ?? GENERATED_SPEC_DEFAULTS.poolCidr);
  checkNetwork(network, nodes);
  checkPool(pool, network, nodes);
  checkName(name, nodes);

  const text = render(name, network, pool, kindNodeNames(name, nodes), podsPerNode);
  const document: SpecDocument = { source: `gen-spec (${name})`, text, files: {} };
  return { text, spec: parseSpecDocument(document) };
}

/**
 * The lab's cluster spec: a small YAML document (pool, nodes, underlay network) plus Kubernetes
 * `apps/v1` Deployment manifests. Everything a node agent computes comes from this, so a bad spec is
 * rejected here, with the field path and the offending value, rather than surfacing later as an odd
 * route or a missing pod.
 */
import { parseAllDocuments, parseDocument } from 'yaml';
import { Ipv4Address, Ipv4Prefix } from '../routing/address.js';
import { IPIP_OVERHEAD } from '../wire/ipip.js';
import { IPV4_MIN_MTU } from '../wire/linux-defaults.js';
import type { IpipMode, IpPool } from './ipam.js';
import { unschedulableReason } from './scheduler.js';

export type NodeRole = 'control-plane' | 'worker';
export type TaintEffect = 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';

export interface NodeSpec {
  readonly name: string;
  readonly ip: Ipv4Address;
  readonly role: NodeRole;
  /**
   * Labels added to the ones kubelet and kubeadm set, as `kubectl label node` would: a cluster's workers show ROLES
   * `worker` only when someone labelled them `node-role.kubernetes.io/worker` (the first seed's course did, kind
   * does not).
   */
  readonly labels?: Readonly<Record<string, string>>;
}

export interface NetworkSpec {
  /** The underlay: without subnets, the one Docker network the node containers share, whose mask the node IPs take. */
  readonly cidr: Ipv4Prefix;
  readonly mtu: number;
  /**
   * Routed subnets of `cidr`, joined by a router at each one's last host address (see `underlayRouter`): the
   * topology ipipMode CrossSubnet is for. The pool may take the rest of `cidr`. Empty: `cidr` is one flat network.
   */
  readonly subnets: readonly Ipv4Prefix[];
}

/** The subnet a node's eth0 is on, as calico-node autodetects it with its address: what CrossSubnet compares against. */
export function underlaySubnet(network: Pick<NetworkSpec, 'cidr' | 'subnets'>, ip: Ipv4Address): Ipv4Prefix {
  return network.subnets.find((subnet) => subnet.contains(ip)) ?? network.cidr;
}

/** The router that joins a lab's subnets, at each subnet's last host address; Docker's bridge keeps the first. */
export function underlayRouter(subnet: Ipv4Prefix): Ipv4Address {
  return subnet.last().add(-1);
}

export interface ContainerPort {
  readonly containerPort: number;
  readonly protocol: 'TCP' | 'UDP' | 'SCTP';
  readonly name?: string;
}

export interface Container {
  readonly name: string;
  readonly image: string;
  readonly ports: readonly ContainerPort[];
}

/** Kubernetes semantics: an empty key (with Exists) matches every taint, an empty effect every effect. */
export interface Toleration {
  readonly key: string;
  readonly operator: 'Exists' | 'Equal';
  readonly value: string;
  readonly effect: TaintEffect | '';
}

export interface PodTemplate {
  readonly labels: Readonly<Record<string, string>>;
  readonly containers: readonly Container[];
  readonly tolerations: readonly Toleration[];
  readonly nodeSelector: Readonly<Record<string, string>>;
  /** `spec.template` exactly as written: what the pod-template-hash is computed from. */
  readonly raw: unknown;
}

export interface Deployment {
  readonly name: string;
  readonly namespace: string;
  readonly replicas: number;
  readonly template: PodTemplate;
}

export interface ClusterSpec {
  readonly name: string;
  readonly kubernetesVersion: string;
  readonly network: NetworkSpec;
  /** kube-controller-manager's --cluster-cidr, which Node PodCIDRs come from (and Calico ignores). */
  readonly clusterCIDR: Ipv4Prefix;
  readonly pool: IpPool;
  readonly nodes: readonly NodeSpec[];
  readonly workloads: readonly Deployment[];
}

export interface ParseSpecOptions {
  /** How the spec is named in error messages, usually its path. */
  readonly source: string;
  /** Reads a workload file named relative to the spec. */
  readonly readFile: (relativePath: string) => string;
}

/** A spec mistake: `field` is a path into the spec such as `nodes[1].ip`, `''` for the document itself. */
export class SpecError extends Error {
  constructor(
    readonly source: string,
    readonly field: string,
    readonly detail: string,
  ) {
    super(`${source}: ${field === '' ? '' : `${field}: `}${detail}`);
    this.name = 'SpecError';
  }
}

export const DEFAULT_KUBERNETES_VERSION = 'v1.21.4';
export const DEFAULT_POOL_NAME = 'default-ipv4-ippool';
export const DEFAULT_BLOCK_SIZE = 26;
export const DEFAULT_MTU = 1500;
/** kube-controller-manager's default --node-cidr-mask-size for IPv4. */
export const NODE_POD_CIDR_LENGTH = 24;

const SPEC_API_VERSION = 'ipip-lab/v1alpha1';
const IPIP_MODES: readonly IpipMode[] = ['Always', 'CrossSubnet', 'Never'];
const ROLES: readonly NodeRole[] = ['control-plane', 'worker'];
const TAINT_EFFECTS: readonly TaintEffect[] = ['NoSchedule', 'PreferNoSchedule', 'NoExecute'];
const PROTOCOLS: readonly ContainerPort['protocol'][] = ['TCP', 'UDP', 'SCTP'];
const MIN_BLOCK_SIZE = 20;
const MAX_BLOCK_SIZE = 32;
/** The tunnel MTU (mtu - 20) must still carry IPv4's minimum datagram. */
const MIN_MTU = IPV4_MIN_MTU + IPIP_OVERHEAD;
const MAX_MTU = 65535;
/** Room for at least two hosts besides the network and broadcast addresses. */
const MAX_NETWORK_LENGTH = 30;
/** Deployment replicas is an int32 in the Kubernetes API. */
const MAX_INT32 = 2 ** 31 - 1;

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const KUBERNETES_VERSION = /^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/;
/** A label key's name part and a label value (apimachinery's qualified name). */
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
/** Labels kubelet sets from the node itself: a spec that overrode them would contradict the node's name and OS. */
const KUBELET_LABELS = ['kubernetes.io/hostname', 'kubernetes.io/os', 'beta.kubernetes.io/os'];

/** The value as the user wrote it: strings quoted, so `"10"` and `10` read differently. */
function show(value: unknown): string {
  // JSON would print YAML's .nan and .inf as null.
  const text = typeof value === 'number' && !Number.isFinite(value) ? String(value) : JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** A place in a document; `note` says which workload file it is in when that is not the spec itself. */
class At {
  constructor(
    readonly source: string,
    readonly field: string,
    private readonly note?: string,
  ) {}

  key(name: string): At {
    return new At(this.source, this.field === '' ? name : `${this.field}.${name}`, this.note);
  }

  index(i: number): At {
    return new At(this.source, `${this.field}[${i}]`, this.note);
  }

  fail(detail: string): never {
    throw new SpecError(this.source, this.field, this.note ? `${detail} (${this.note})` : detail);
  }
}

type Mapping = Record<string, unknown>;

/** YAML's `key:` with nothing after it is null; like Kubernetes, treat it as absent. */
function absent(value: unknown): value is undefined | null {
  return value === undefined || value === null;
}

function mapping(at: At, value: unknown, known?: readonly string[]): Mapping {
  if (absent(value)) at.fail('is required');
  if (typeof value !== 'object' || Array.isArray(value)) at.fail(`${show(value)} is not a mapping`);
  const map = value as Mapping;
  if (known) {
    for (const key of Object.keys(map)) {
      if (!known.includes(key)) at.key(key).fail(`unknown field (expected one of: ${known.join(', ')})`);
    }
  }
  return map;
}

function list(at: At, value: unknown): unknown[] {
  if (absent(value)) at.fail('is required');
  if (!Array.isArray(value)) at.fail(`${show(value)} is not a list`);
  return value;
}

function string(at: At, value: unknown): string {
  if (absent(value)) at.fail('is required');
  if (typeof value !== 'string') at.fail(`${show(value)} is not a string`);
  if (value === '') at.fail('must not be empty');
  return value;
}

function integer(at: At, value: unknown, min: number, max: number): number {
  if (absent(value)) at.fail('is required');
  if (typeof value !== 'number' || !Number.isInteger(value)) at.fail(`${show(value)} is not an integer`);
  if (value < min || value > max) at.fail(`${value} is outside ${min}..${max}`);
  return value;
}

function oneOf<T extends string>(at: At, value: unknown, allowed: readonly T[]): T {
  const text = string(at, value);
  if (!(allowed as readonly string[]).includes(text)) {
    at.fail(`${show(text)} is not one of ${allowed.join(', ')}`);
  }
  return text as T;
}

function matching(at: At, value: unknown, pattern: RegExp, what: string, maxLength: number): string {
  const text = string(at, value);
  if (text.length > maxLength || !pattern.test(text)) at.fail(`${show(text)} is not ${what}`);
  return text;
}

function subdomainName(at: At, value: unknown): string {
  return matching(
    at,
    value,
    DNS1123_SUBDOMAIN,
    'a valid Kubernetes name (DNS-1123 subdomain: lowercase letters, digits, "-" and ".")',
    253,
  );
}

function labelName(at: At, value: unknown): string {
  return matching(
    at,
    value,
    DNS1123_LABEL,
    'a valid DNS-1123 label (lowercase letters, digits and "-", at most 63)',
    63,
  );
}

function address(at: At, value: unknown): Ipv4Address {
  const text = string(at, value);
  return Ipv4Address.tryParse(text) ?? at.fail(`${show(text)} is not an IPv4 address`);
}

function cidr(at: At, value: unknown): Ipv4Prefix {
  const text = string(at, value);
  const prefix = text.includes('/') ? Ipv4Prefix.tryParse(text) : undefined;
  if (!prefix) at.fail(`${show(text)} is not an IPv4 CIDR (a.b.c.d/len)`);
  if (!prefix.isMasked()) at.fail(`${show(text)} has host bits set (did you mean ${prefix.masked()}?)`);
  return prefix;
}

function stringMap(at: At, value: unknown): Record<string, string> {
  if (absent(value)) return {};
  const map = mapping(at, value);
  for (const [key, entry] of Object.entries(map)) {
    if (typeof entry !== 'string') at.key(key).fail(`${show(entry)} is not a string (quote it)`);
  }
  return map as Record<string, string>;
}

/** An alias of a node inside that node: the data would be infinite. */
function isCircular(value: unknown, ancestors = new Set<object>()): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (ancestors.has(value)) return true;
  ancestors.add(value);
  const circular = Object.values(value).some((child) => isCircular(child, ancestors));
  ancestors.delete(value);
  return circular;
}

/**
 * A parsed document as plain data. The yaml library throws, rather than reports, on aliases it will not expand (one
 * whose anchor is missing, or so many that they look like a "billion laughs" attack), and builds circular data from
 * an alias inside its own anchor: all of them are the spec's mistakes, not ours.
 */
function toData(at: At, document: { toJS(): unknown }): unknown {
  let value: unknown;
  try {
    value = document.toJS();
  } catch (error) {
    return at.fail(`invalid YAML: ${(error as Error).message}`);
  }
  if (isCircular(value)) at.fail('invalid YAML: an alias refers to a node that contains it');
  return value;
}

function yamlError(at: At, errors: readonly { message: string }[]): never {
  // The yaml library's messages carry a multi-line excerpt; its first line has the position.
  return at.fail(`invalid YAML: ${errors[0].message.split('\n')[0].replace(/:$/, '')}`);
}

function parseToleration(at: At, value: unknown): Toleration {
  const map = mapping(at, value);
  const key = absent(map.key) ? '' : string(at.key('key'), map.key);
  const operator = absent(map.operator)
    ? 'Equal'
    : oneOf(at.key('operator'), map.operator, ['Exists', 'Equal'] as const);
  const tolerationValue = absent(map.value) ? '' : string(at.key('value'), map.value);
  const effect = absent(map.effect) ? '' : oneOf(at.key('effect'), map.effect, TAINT_EFFECTS);
  if (key === '' && operator !== 'Exists')
    at.key('operator').fail(`${show(operator)} needs a key (only Exists may omit it)`);
  if (operator === 'Exists' && tolerationValue !== '')
    at.key('value').fail(`${show(tolerationValue)} must be empty when operator is Exists`);
  return { key, operator, value: tolerationValue, effect };
}

function parseContainer(at: At, value: unknown): Container {
  const map = mapping(at, value);
  const ports = absent(map.ports)
    ? []
    : list(at.key('ports'), map.ports).map((entry, i): ContainerPort => {
        const portAt = at.key('ports').index(i);
        const port = mapping(portAt, entry);
        const containerPort = integer(portAt.key('containerPort'), port.containerPort, 1, 65535);
        const protocol = absent(port.protocol) ? 'TCP' : oneOf(portAt.key('protocol'), port.protocol, PROTOCOLS);
        return absent(port.name)
          ? { containerPort, protocol }
          : { containerPort, protocol, name: string(portAt.key('name'), port.name) };
      });
  return { name: labelName(at.key('name'), map.name), image: string(at.key('image'), map.image), ports };
}

/**
 * One Deployment, checked only where the emulator uses it: a real manifest carries many more fields
 * (resources, probes, strategy…) and they are accepted untouched.
 */
function parseDeployment(at: At, value: unknown): Deployment {
  const manifest = mapping(at, value);
  const kind = string(at.key('kind'), manifest.kind);
  if (kind !== 'Deployment') at.key('kind').fail(`${show(kind)} is not supported (only apps/v1 Deployment)`);
  const apiVersion = string(at.key('apiVersion'), manifest.apiVersion);
  if (apiVersion !== 'apps/v1')
    at.key('apiVersion').fail(`${show(apiVersion)} is not supported (only apps/v1 Deployment)`);

  const metadataAt = at.key('metadata');
  const metadata = mapping(metadataAt, manifest.metadata);
  const name = subdomainName(metadataAt.key('name'), metadata.name);
  const namespace = absent(metadata.namespace) ? 'default' : labelName(metadataAt.key('namespace'), metadata.namespace);

  const specAt = at.key('spec');
  const spec = mapping(specAt, manifest.spec);
  // Kubernetes defaults replicas to 1 when the field is left out.
  const replicas = absent(spec.replicas) ? 1 : integer(specAt.key('replicas'), spec.replicas, 0, MAX_INT32);
  const selectorAt = specAt.key('selector');
  const matchLabels = stringMap(selectorAt.key('matchLabels'), mapping(selectorAt, spec.selector).matchLabels);

  const templateAt = specAt.key('template');
  const template = mapping(templateAt, spec.template);
  const templateMetadataAt = templateAt.key('metadata');
  const labels = absent(template.metadata)
    ? {}
    : stringMap(templateMetadataAt.key('labels'), mapping(templateMetadataAt, template.metadata).labels);
  for (const [key, wanted] of Object.entries(matchLabels)) {
    if (labels[key] !== wanted) {
      selectorAt.fail(`matchLabels ${key}=${wanted} does not match the template's labels ${show(labels)}`);
    }
  }

  const podAt = templateAt.key('spec');
  const pod = mapping(podAt, template.spec);
  const containersAt = podAt.key('containers');
  const containers = list(containersAt, pod.containers).map((c, i) => parseContainer(containersAt.index(i), c));
  if (containers.length === 0) containersAt.fail('needs at least one container');
  containers.forEach((container, i) => {
    const first = containers.findIndex((c) => c.name === container.name);
    if (first !== i)
      containersAt
        .index(i)
        .key('name')
        .fail(`${show(container.name)} is already used by containers[${first}]`);
  });
  const tolerationsAt = podAt.key('tolerations');
  const tolerations = absent(pod.tolerations)
    ? []
    : list(tolerationsAt, pod.tolerations).map((t, i) => parseToleration(tolerationsAt.index(i), t));
  const nodeSelector = stringMap(podAt.key('nodeSelector'), pod.nodeSelector);

  return { name, namespace, replicas, template: { labels, containers, tolerations, nodeSelector, raw: spec.template } };
}

interface Located<T> {
  readonly value: T;
  readonly at: At;
}

/** Each non-empty document of a (multi-document) file, addressed `[i]` only when there are several. */
function parseDeploymentDocuments(at: At, text: string): Located<Deployment>[] {
  const documents = parseAllDocuments(text);
  const located: Located<Deployment>[] = [];
  documents.forEach((document, i) => {
    const documentAt = documents.length === 1 ? at : at.index(i);
    if (document.errors.length > 0) yamlError(documentAt, document.errors);
    const value = toData(documentAt, document);
    if (!absent(value)) located.push({ value: parseDeployment(documentAt, value), at: documentAt });
  });
  return located;
}

/** The Deployments in a manifest file, as `kubectl apply -f` reads it. */
export function parseDeployments(text: string, source: string): Deployment[] {
  return parseDeploymentDocuments(new At(source, ''), text).map((d) => d.value);
}

function readWorkloadFile(at: At, file: string, readFile: (relativePath: string) => string): string {
  try {
    return readFile(file);
  } catch (error) {
    return at.fail(`${show(file)} cannot be read: ${(error as Error).message}`);
  }
}

function parseWorkloads(at: At, value: unknown, readFile: (relativePath: string) => string): Located<Deployment>[] {
  if (absent(value)) return [];
  return list(at, value).flatMap((entry, i) => {
    const entryAt = at.index(i);
    const map = mapping(entryAt, entry);
    if (!('file' in map)) return [{ value: parseDeployment(entryAt, map), at: entryAt }];
    mapping(entryAt, map, ['file']);
    const fileAt = entryAt.key('file');
    const file = string(fileAt, map.file);
    const text = readWorkloadFile(fileAt, file, readFile);
    const deployments = parseDeploymentDocuments(new At(at.source, entryAt.field, `in ${file}`), text);
    if (deployments.length === 0) fileAt.fail(`${show(file)} holds no Deployment`);
    return deployments;
  });
}

/** Kubernetes' label syntax: `[prefix/]name` (prefix a DNS subdomain, name at most 63), value empty or like a name. */
function nodeLabelMap(at: At, value: unknown): Record<string, string> {
  const labels = stringMap(at, value);
  for (const [key, labelValue] of Object.entries(labels)) {
    const keyAt = at.key(key);
    const slash = key.lastIndexOf('/');
    const prefix = slash < 0 ? undefined : key.slice(0, slash);
    const name = key.slice(slash + 1);
    const validPrefix = prefix === undefined || (prefix.length <= 253 && DNS1123_SUBDOMAIN.test(prefix));
    if (!validPrefix || name.length > 63 || !LABEL_NAME.test(name)) {
      keyAt.fail('is not a valid label key ([prefix/]name: name at most 63 of letters, digits, "-", "_", ".")');
    }
    if (KUBELET_LABELS.includes(key)) keyAt.fail('is set by kubelet from the node itself and cannot be overridden');
    if (labelValue !== '' && (labelValue.length > 63 || !LABEL_NAME.test(labelValue))) {
      keyAt.fail(
        `${show(labelValue)} is not a valid label value (empty, or at most 63 of letters, digits, "-", "_", ".")`,
      );
    }
  }
  return labels;
}

function parseNode(at: At, value: unknown): NodeSpec {
  const map = mapping(at, value, ['name', 'ip', 'role', 'labels']);
  return {
    name: subdomainName(at.key('name'), map.name),
    ip: absent(map.ip)
      ? at
          .key('ip')
          .fail(
            'is required: give every node its address, or run the agents with a datastore (--datastore), where ' +
              'each registers the address it has in network.cidr and finds the others',
          )
      : address(at.key('ip'), map.ip),
    role: oneOf(at.key('role'), map.role, ROLES),
    labels: nodeLabelMap(at.key('labels'), map.labels),
  };
}

function parsePool(at: At, value: unknown, network: NetworkSpec): IpPool {
  const map = mapping(at, value, ['name', 'cidr', 'blockSize', 'ipipMode']);
  const name = absent(map.name) ? DEFAULT_POOL_NAME : subdomainName(at.key('name'), map.name);
  const poolCidr = cidr(at.key('cidr'), map.cidr);
  // Routed subnets leave the rest of network.cidr free, as a data centre's address plan leaves room for pods.
  const taken = network.subnets.length > 0 ? network.subnets : [network.cidr];
  const overlapped = taken.find((subnet) => poolCidr.overlaps(subnet));
  if (overlapped) {
    const where = network.subnets.length > 0 ? 'network.subnets' : 'network.cidr';
    at.key('cidr').fail(`${show(poolCidr.toString())} overlaps the node network ${overlapped} (${where})`);
  }
  const blockSize = absent(map.blockSize)
    ? DEFAULT_BLOCK_SIZE
    : integer(at.key('blockSize'), map.blockSize, MIN_BLOCK_SIZE, MAX_BLOCK_SIZE);
  if (blockSize < poolCidr.length) {
    at.key('blockSize').fail(
      `${blockSize} is shorter than the pool's own prefix /${poolCidr.length} (pool.cidr ${poolCidr})`,
    );
  }
  return { name, cidr: poolCidr, blockSize, ipipMode: oneOf(at.key('ipipMode'), map.ipipMode, IPIP_MODES) };
}

function nodeNetworkCidr(at: At, value: unknown): Ipv4Prefix {
  const networkCidr = cidr(at, value);
  if (networkCidr.length > MAX_NETWORK_LENGTH) {
    at.fail(`${show(networkCidr.toString())} is too small for a node network (at most /${MAX_NETWORK_LENGTH})`);
  }
  return networkCidr;
}

function parseSubnets(at: At, value: unknown, networkCidr: Ipv4Prefix): Ipv4Prefix[] {
  if (absent(value)) return [];
  const subnets = list(at, value).map((item, i) => nodeNetworkCidr(at.index(i), item));
  if (subnets.length < 2) at.fail('needs at least two subnets to route between (or none, for one flat network)');
  subnets.forEach((subnet, i) => {
    if (!networkCidr.contains(subnet.first()) || !networkCidr.contains(subnet.last())) {
      at.index(i).fail(`${show(subnet.toString())} is outside network.cidr ${networkCidr}`);
    }
    const overlapping = subnets.findIndex((other) => other.overlaps(subnet));
    if (overlapping !== i) at.index(i).fail(`${show(subnet.toString())} overlaps subnets[${overlapping}]`);
  });
  return subnets;
}

function parseNetwork(at: At, value: unknown): NetworkSpec {
  const map = mapping(at, value, ['cidr', 'mtu', 'subnets']);
  const networkCidr = nodeNetworkCidr(at.key('cidr'), map.cidr);
  const mtu = absent(map.mtu) ? DEFAULT_MTU : integer(at.key('mtu'), map.mtu, MIN_MTU, MAX_MTU);
  return { cidr: networkCidr, mtu, subnets: parseSubnets(at.key('subnets'), map.subnets, networkCidr) };
}

function checkNodes(at: At, nodes: readonly NodeSpec[], network: NetworkSpec): void {
  if (nodes.length === 0) at.fail('needs at least one node');
  nodes.forEach((node, i) => {
    const nodeAt = at.index(i);
    const sameName = nodes.findIndex((n) => n.name === node.name);
    if (sameName !== i) nodeAt.key('name').fail(`${show(node.name)} is already used by nodes[${sameName}]`);
    const ipAt = nodeAt.key('ip');
    const ip = show(node.ip.toString());
    const sameIp = nodes.findIndex((n) => n.ip.equals(node.ip));
    if (sameIp !== i) ipAt.fail(`${ip} is already used by nodes[${sameIp}] (${nodes[sameIp].name})`);
    if (!network.cidr.contains(node.ip)) ipAt.fail(`${ip} is outside network.cidr ${network.cidr}`);
    const subnet = underlaySubnet(network, node.ip);
    if (network.subnets.length > 0 && subnet === network.cidr) {
      ipAt.fail(`${ip} is in none of network.subnets (${network.subnets.join(', ')})`);
    }
    if (node.ip.equals(subnet.first())) ipAt.fail(`${ip} is the network address of ${subnet}`);
    if (node.ip.equals(subnet.last())) ipAt.fail(`${ip} is the broadcast address of ${subnet}`);
    if (network.subnets.length > 0 && node.ip.equals(underlayRouter(subnet))) {
      ipAt.fail(`${ip} is the address of the router that joins the subnets (the last host of ${subnet})`);
    }
  });
}

function parseClusterCidr(at: At, value: unknown, pool: IpPool, nodeCount: number): Ipv4Prefix {
  const explicit = !absent(value);
  const clusterCidr = explicit ? cidr(at, value) : pool.cidr;
  const room = clusterCidr.length <= NODE_POD_CIDR_LENGTH ? 2 ** (NODE_POD_CIDR_LENGTH - clusterCidr.length) : 0;
  if (room < nodeCount) {
    const what = explicit
      ? show(clusterCidr.toString())
      : `${show(clusterCidr.toString())} (pool.cidr, the default clusterCIDR)`;
    at.fail(`${what} has room for ${room} node PodCIDRs (/${NODE_POD_CIDR_LENGTH}), but there are ${nodeCount} nodes`);
  }
  return clusterCidr;
}

function checkWorkloads(
  workloads: readonly Located<Deployment>[],
  nodes: readonly NodeSpec[],
  pool: IpPool,
  poolAt: At,
): void {
  const tunnels = pool.ipipMode === 'Never' ? 0 : nodes.length;
  const capacity = pool.cidr.size - tunnels;
  if (capacity < 0) {
    poolAt
      .key('cidr')
      .fail(
        `${show(pool.cidr.toString())} holds ${pool.cidr.size} addresses, too few for ${tunnels} node tunnel addresses`,
      );
  }
  let pods = 0;
  workloads.forEach(({ value: deployment, at }, i) => {
    const id = `${deployment.namespace}/${deployment.name}`;
    const same = workloads.findIndex(
      (w) => w.value.namespace === deployment.namespace && w.value.name === deployment.name,
    );
    if (same !== i)
      at.key('metadata')
        .key('name')
        .fail(`${show(deployment.name)}: Deployment ${id} is already defined at ${workloads[same].at.field}`);
    const replicasAt = at.key('spec').key('replicas');
    if (deployment.replicas > 0 && nodes.every((node) => unschedulableReason(node, deployment.template))) {
      const reasons = nodes.map((node) => `${node.name}: ${unschedulableReason(node, deployment.template)}`);
      replicasAt.fail(`${deployment.replicas}: no node can run Deployment ${id} (${reasons.join('; ')})`);
    }
    pods += deployment.replicas;
    if (pods > capacity) {
      replicasAt.fail(
        `${deployment.replicas}: the cluster would have ${pods} pods, but pool ${pool.name} (${pool.cidr}) ` +
          `holds ${capacity} pod addresses (${pool.cidr.size} minus ${tunnels} tunnel addresses)`,
      );
    }
  });
}

const SPEC_FIELDS = [
  'apiVersion',
  'kind',
  'metadata',
  'kubernetesVersion',
  'network',
  'clusterCIDR',
  'pool',
  'nodes',
  'workloads',
];

/**
 * A spec together with the workload files it names, as one value. An agent serves the document it started from, so
 * a CLI elsewhere rebuilds exactly the agent's cluster: the state is a deterministic function of this document.
 */
export interface SpecDocument {
  readonly source: string;
  readonly text: string;
  /** Workload file contents by the relative path the spec names them with. */
  readonly files: Readonly<Record<string, string>>;
}

/** Reads a spec and every workload file it names through `readFile`, and checks it parses. */
export function readSpecDocument(
  source: string,
  text: string,
  readFile: (relativePath: string) => string,
): SpecDocument {
  const files: Record<string, string> = {};
  parseSpec(text, {
    source,
    readFile: (relativePath) => (files[relativePath] = readFile(relativePath)),
  });
  return { source, text, files };
}

export function parseSpecDocument(document: SpecDocument): ClusterSpec {
  return parseSpec(document.text, {
    source: document.source,
    readFile: (relativePath) => {
      const text = document.files[relativePath];
      if (text === undefined) throw new Error(`${relativePath}: not part of the spec document`);
      return text;
    },
  });
}

export function parseSpec(text: string, options: ParseSpecOptions): ClusterSpec {
  const root = new At(options.source, '');
  const document = parseDocument(text);
  if (document.errors.length > 0) yamlError(root, document.errors);
  const value = toData(root, document);
  if (absent(value)) root.fail('is empty');
  const map = mapping(root, value, SPEC_FIELDS);

  const apiVersion = string(root.key('apiVersion'), map.apiVersion);
  if (apiVersion !== SPEC_API_VERSION) root.key('apiVersion').fail(`${show(apiVersion)} is not ${SPEC_API_VERSION}`);
  const kind = string(root.key('kind'), map.kind);
  if (kind !== 'Cluster') root.key('kind').fail(`${show(kind)} is not Cluster`);
  const metadataAt = root.key('metadata');
  const name = subdomainName(metadataAt.key('name'), mapping(metadataAt, map.metadata, ['name']).name);
  const kubernetesVersion = absent(map.kubernetesVersion)
    ? DEFAULT_KUBERNETES_VERSION
    : matching(
        root.key('kubernetesVersion'),
        map.kubernetesVersion,
        KUBERNETES_VERSION,
        'a Kubernetes version like v1.21.4',
        64,
      );

  const network = parseNetwork(root.key('network'), map.network);
  const pool = parsePool(root.key('pool'), map.pool, network);
  const nodesAt = root.key('nodes');
  const nodes = list(nodesAt, map.nodes).map((n, i) => parseNode(nodesAt.index(i), n));
  checkNodes(nodesAt, nodes, network);
  const clusterCIDR = parseClusterCidr(root.key('clusterCIDR'), map.clusterCIDR, pool, nodes.length);
  const workloads = parseWorkloads(root.key('workloads'), map.workloads, options.readFile);
  checkWorkloads(workloads, nodes, pool, root.key('pool'));

  return { name, kubernetesVersion, network, clusterCIDR, pool, nodes, workloads: workloads.map((w) => w.value) };
}

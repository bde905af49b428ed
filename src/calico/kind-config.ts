/**
 * kind's own cluster config (`kind.x-k8s.io/v1alpha4`, kind's pkg/apis/config/v1alpha4), read for what decides the
 * lab: the cluster's name, its nodes' roles and `networking.podSubnet`, which kubeadm passes on and calico-node takes
 * for its default pool when the manifest sets none. The rest (images, mounts, port mappings, patches) shapes a
 * kind node container that this lab does not have: accepted, and reported as ignored.
 */
import { parseDocument } from 'yaml';
import { Ipv4Prefix } from '../routing/address.js';

export interface KindConfig {
  readonly name?: string;
  readonly controlPlanes: number;
  readonly workers: number;
  /** kubeadm's podSubnet; kind's default is 10.244.0.0/16. */
  readonly podSubnet: Ipv4Prefix;
  readonly disableDefaultCNI: boolean;
  /** Fields read but without effect here, for the one line that says so. */
  readonly ignored: readonly string[];
}

export const KIND_DEFAULT_POD_SUBNET = '10.244.0.0/16';
const API_VERSION = 'kind.x-k8s.io/v1alpha4';
const NODE_FIELDS = ['role', 'image', 'extraMounts', 'extraPortMappings', 'labels', 'kubeadmConfigPatches'];
const NETWORKING_FIELDS = [
  'ipFamily',
  'apiServerAddress',
  'apiServerPort',
  'podSubnet',
  'serviceSubnet',
  'disableDefaultCNI',
  'kubeProxyMode',
];
/** What configures kubeadm and containerd inside kind's node containers, which the lab's nodes are not. */
const IGNORED_TOP_FIELDS = [
  'featureGates',
  'runtimeConfig',
  'kubeadmConfigPatches',
  'kubeadmConfigPatchesJSON6902',
  'containerdConfigPatches',
  'containerdConfigPatchesJSON6902',
];
const TOP_FIELDS = ['kind', 'apiVersion', 'name', 'nodes', 'networking', ...IGNORED_TOP_FIELDS];

export class KindConfigError extends Error {}

type Fields = Record<string, unknown>;

function fields(value: unknown, where: string, known: readonly string[]): Fields {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new KindConfigError(`${where}: is not a mapping`);
  const unknown = Object.keys(value).filter((key) => !known.includes(key));
  if (unknown.length > 0) {
    throw new KindConfigError(
      `${where}: unknown field ${JSON.stringify(unknown[0])} (kind's fields: ${known.join(', ')})`,
    );
  }
  return value as Fields;
}

/** Reads a kind config file's text; `source` names it in errors. */
export function parseKindConfig(text: string, source: string): KindConfig {
  const document = parseDocument(text);
  if (document.errors.length > 0) throw new KindConfigError(`${source}: invalid YAML: ${document.errors[0].message}`);
  const top = fields(document.toJS() as unknown, source, TOP_FIELDS);
  if (top.kind !== 'Cluster') throw new KindConfigError(`${source}: kind: ${JSON.stringify(top.kind)} is not Cluster`);
  if (top.apiVersion !== API_VERSION) {
    throw new KindConfigError(`${source}: apiVersion: ${JSON.stringify(top.apiVersion)} is not ${API_VERSION}`);
  }
  const ignored = IGNORED_TOP_FIELDS.filter((key) => top[key] !== undefined);
  if (top.name !== undefined && typeof top.name !== 'string')
    throw new KindConfigError(`${source}: name: not a string`);

  const nodes = top.nodes === undefined ? [{ role: 'control-plane' }] : top.nodes;
  if (!Array.isArray(nodes) || nodes.length === 0)
    throw new KindConfigError(`${source}: nodes: needs at least one node`);
  const roles = nodes.map((node, i) => {
    const where = `${source}: nodes[${i}]`;
    const entry = fields(node, where, NODE_FIELDS);
    ignored.push(
      ...NODE_FIELDS.filter((key) => key !== 'role' && entry[key] !== undefined).map((key) => `nodes[${i}].${key}`),
    );
    const role = entry.role ?? 'control-plane';
    if (role !== 'control-plane' && role !== 'worker') {
      throw new KindConfigError(`${where}.role: ${JSON.stringify(role)} is not control-plane or worker`);
    }
    return role;
  });
  const controlPlanes = roles.filter((role) => role === 'control-plane').length;
  if (controlPlanes !== 1) {
    throw new KindConfigError(
      `${source}: nodes: ${controlPlanes} control planes; a lab has exactly one (kind's HA control planes are not emulated)`,
    );
  }

  const networking = fields(top.networking, `${source}: networking`, NETWORKING_FIELDS);
  if (networking.ipFamily !== undefined && networking.ipFamily !== 'ipv4') {
    throw new KindConfigError(
      `${source}: networking.ipFamily: ${JSON.stringify(networking.ipFamily)}: the lab is IPv4 only`,
    );
  }
  ignored.push(
    ...['apiServerAddress', 'apiServerPort', 'serviceSubnet', 'kubeProxyMode']
      .filter((key) => networking[key] !== undefined)
      .map((key) => `networking.${key}`),
  );
  const subnetText = networking.podSubnet ?? KIND_DEFAULT_POD_SUBNET;
  const podSubnet = typeof subnetText === 'string' ? Ipv4Prefix.tryParse(subnetText) : undefined;
  if (!podSubnet || !podSubnet.isMasked()) {
    throw new KindConfigError(`${source}: networking.podSubnet: ${JSON.stringify(subnetText)} is not an IPv4 CIDR`);
  }
  const disable = networking.disableDefaultCNI ?? false;
  if (typeof disable !== 'boolean') throw new KindConfigError(`${source}: networking.disableDefaultCNI: not a boolean`);
  return {
    ...(top.name !== undefined && { name: top.name }),
    controlPlanes,
    workers: roles.length - controlPlanes,
    podSubnet,
    disableDefaultCNI: disable,
    ignored,
  };
}

/**
 * `calicoctl apply -f`, `delete` and `get bgppeer`: BGPPeer resources in the lab's etcd, under Calico's key, as
 * calicoctl writes them with an etcdv3 datastore. The agents watch that key and peer with what it holds: a global peer
 * (no `node`) from every node, a node-specific one from its node only. calicoctl's messages are its own
 * (calicoctl/commands/common/resources.go).
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import {
  bgpConfigurationResource,
  bgpPeerResource,
  DATASTORE_KEYS,
  parseBgpConfiguration,
  parseBgpPeer,
  type BgpPeerResource,
  type NodeResource,
} from '../calico/index.js';
import { registeredNode } from '../node/datastore/registration.js';
import { connectEtcd, type EtcdStore } from '../node/datastore/etcd-store.js';
import type { Io } from './common.js';
import { renderCalicoctlTabwriter } from './go-tables.js';

/** calicoctl's own refusal: printed as it is, exit 1. */
export class CalicoctlError extends Error {}

export const BGPPEER_NAMES = ['bgppeer', 'bgppeers', 'bgpp', 'bgpps', 'bp', 'bps'];

/** How long calicoctl waits for the datastore: a command, not a daemon. */
const CONNECT_TIMEOUT_MS = 5_000;

/** The datastore calicoctl talks to: as calico-node's own, from the node container's environment. */
export function datastoreEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  const endpoint = env.IPIP_LAB_DATASTORE || env.ETCDCTL_ENDPOINTS;
  if (!endpoint) {
    throw new CalicoctlError(
      'no datastore to write to: set IPIP_LAB_DATASTORE (the lab sets it in every node container, ' +
        'e.g. http://10.0.0.2:2379)',
    );
  }
  return endpoint.split(',')[0];
}

async function withStore<T>(endpoint: string, use: (store: EtcdStore) => Promise<T>): Promise<T> {
  let store: EtcdStore;
  try {
    store = await connectEtcd(endpoint, { timeoutMs: CONNECT_TIMEOUT_MS, log: () => undefined });
  } catch (error) {
    throw new CalicoctlError(`Failed to connect to the datastore: ${(error as Error).message}`);
  }
  try {
    return await use(store);
  } finally {
    store.close();
  }
}

/** The kinds calicoctl writes here: how each is checked, stored and named. */
interface StoredKind<T extends { name: string }> {
  kind: string;
  key: (name: string) => string;
  parse: (value: unknown) => T | string;
  resource: (spec: T, created: Date) => unknown;
}

const STORED_KINDS = [
  { kind: 'BGPPeer', key: DATASTORE_KEYS.bgpPeer, parse: parseBgpPeer, resource: bgpPeerResource },
  {
    kind: 'BGPConfiguration',
    key: DATASTORE_KEYS.bgpConfiguration,
    parse: parseBgpConfiguration,
    resource: bgpConfigurationResource,
  },
] as const satisfies readonly StoredKind<{ name: string }>[];

type KindName = (typeof STORED_KINDS)[number]['kind'];

/** One resource of a file, checked: its kind, its name, and how to store it. */
interface ResourceToWrite {
  kind: KindName;
  name: string;
  key: string;
  resource: (created: Date) => unknown;
}

/** The resources of a file, each checked; anything else is refused before anything is written. */
function readResources(file: string): ResourceToWrite[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CalicoctlError(`Failed to execute command: open ${file}: ${(error as NodeJS.ErrnoException).code}`);
  }
  const documents = parseAllDocuments(text);
  const objects = documents.flatMap((document) => {
    if (document.errors.length > 0) {
      throw new CalicoctlError(`Failed to execute command: error parsing ${file}: ${document.errors[0].message}`);
    }
    return document.contents === null ? [] : [document.toJS() as unknown];
  });
  if (objects.length === 0) throw new CalicoctlError('No resources specified');
  return objects.map((object) => {
    const kind = (object as { kind?: unknown } | null)?.kind;
    const stored = STORED_KINDS.find((candidate) => candidate.kind === kind);
    if (!stored) {
      throw new CalicoctlError(
        `Failed to execute command: ipip-lab's calicoctl applies ${STORED_KINDS.map((k) => k.kind).join(' and ')} ` +
          `resources only, not ${JSON.stringify(kind)} (the IP pool comes from the lab spec)`,
      );
    }
    const spec = stored.parse(object);
    if (typeof spec === 'string') throw new CalicoctlError(`Failed to execute command: ${file}: ${spec}`);
    return {
      kind: stored.kind,
      name: spec.name,
      key: stored.key(spec.name),
      resource: (created) => (stored.resource as (spec: { name: string }, created: Date) => unknown)(spec, created),
    };
  });
}

/** calicoctl names the kind when there is one: `Successfully applied 2 'BGPPeer' resource(s)`. */
function summary(verb: 'applied' | 'deleted', resources: readonly { kind: string }[]): string {
  const kinds = new Set(resources.map((resource) => resource.kind));
  const kind = kinds.size === 1 ? ` '${[...kinds][0]}'` : '';
  return `Successfully ${verb} ${resources.length}${kind} resource(s)\n`;
}

export async function applyResources(io: Io, file: string, endpoint: string, now: () => number): Promise<void> {
  const resources = readResources(file);
  await withStore(endpoint, async (store) => {
    for (const resource of resources) {
      // apply keeps the creation time of what it replaces, as the API server does.
      const existing = await store.get(resource.key);
      const created =
        existing &&
        (JSON.parse(existing.value) as { metadata?: { creationTimestamp?: string } }).metadata?.creationTimestamp;
      await store.put(resource.key, JSON.stringify(resource.resource(created ? new Date(created) : new Date(now()))));
    }
  });
  io.out(summary('applied', resources));
}

export const BGPCONFIGURATION_NAMES = ['bgpconfiguration', 'bgpconfigurations', 'bgpconfig', 'bgpconfigs'];

/** The kind a command line names (`bgppeer`, `bgpconfig`, …), or undefined. */
export function storedKindNamed(name: string): KindName | undefined {
  if (BGPPEER_NAMES.includes(name.toLowerCase())) return 'BGPPeer';
  if (BGPCONFIGURATION_NAMES.includes(name.toLowerCase())) return 'BGPConfiguration';
  return undefined;
}

/** `delete -f FILE` (the resources it names) or `delete KIND NAME`. */
export async function deleteResources(
  io: Io,
  resources: readonly { kind: KindName; name: string }[],
  endpoint: string,
): Promise<void> {
  const missing = await withStore(endpoint, async (store) => {
    const gone: { kind: KindName; name: string }[] = [];
    for (const resource of resources) {
      const key = STORED_KINDS.find((stored) => stored.kind === resource.kind)!.key(resource.name);
      if (!(await store.delete(key))) gone.push(resource);
    }
    return gone;
  });
  const errors = `[${missing.map(({ kind, name }) => `resource does not exist: ${kind}(${name}) with error: <nil>`).join(' ')}]`;
  if (missing.length === 0) return io.out(summary('deleted', resources));
  const kinds = new Set(resources.map((resource) => resource.kind));
  const kind = kinds.size === 1 ? `'${[...kinds][0]}' ` : '';
  if (missing.length === resources.length) {
    throw new CalicoctlError(
      resources.length === 1
        ? `Failed to delete ${kind}resource: ${errors}`
        : `Failed to delete any ${kind}resources: ${errors}`,
    );
  }
  io.out(
    `Partial success: deleted the first ${resources.length - missing.length} out of ${resources.length} ${kind}resources:\n`,
  );
  throw new CalicoctlError(`hit error: ${errors}`);
}

export function resourcesIn(file: string): { kind: KindName; name: string }[] {
  return readResources(file).map(({ kind, name }) => ({ kind, name }));
}

/**
 * The stored resources of one kind (`get bgppeer [NAME]`, and `get node -o yaml` where there is a datastore), sorted
 * by name; a name that is not there is calicoctl's refusal.
 */
export async function getStored<T extends { metadata: { name: string } }>(
  endpoint: string,
  kind: 'BGPPeer' | 'Node',
  name: string | undefined,
): Promise<T[]> {
  const prefix = kind === 'BGPPeer' ? DATASTORE_KEYS.bgpPeers : DATASTORE_KEYS.nodes;
  const stored = await withStore(endpoint, (store) => store.list(prefix));
  const resources = [...stored.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([, { value }]) => JSON.parse(value) as T)
    .filter((resource) => name === undefined || resource.metadata.name === name);
  if (name !== undefined && resources.length === 0) {
    throw new CalicoctlError(`resource does not exist: ${kind}(${name}) with error: <nil>`);
  }
  return resources;
}

export function renderGetBgpPeers(resources: readonly BgpPeerResource[]): string {
  return renderCalicoctlTabwriter([
    ['NAME', 'PEERIP', 'NODE', 'ASN'],
    ...resources.map((resource) => [
      resource.metadata.name,
      resource.spec.peerIP ?? '',
      resource.spec.node || resource.spec.nodeSelector || '(global)',
      String(resource.spec.asNumber ?? 0),
    ]),
  ]);
}

/** A stored Node as calicoctl reads it before changing it, or calicoctl's refusal. */
async function storedNode(store: EtcdStore, name: string, refusal: (error: string) => string) {
  const stored = await store.get(DATASTORE_KEYS.node(name));
  if (!stored) throw new CalicoctlError(refusal(`resource does not exist: Node(${name}) with error: <nil>`));
  return JSON.parse(stored.value) as NodeResource;
}

export interface LabelChange {
  key: string;
  /** Absent: `--remove`. */
  value?: string;
  overwrite: boolean;
}

/** `label nodes NAME key=value [--overwrite]` or `label nodes NAME key --remove`, with calicoctl's messages. */
export async function labelNode(io: Io, kind: string, name: string, change: LabelChange, endpoint: string) {
  const message = await withStore(endpoint, async (store) => {
    const node = await storedNode(store, name, (error) => `failed to get ${kind} ${name}, error ${error}`);
    const labels = { ...node.metadata.labels };
    const { key, value } = change;
    let done: string;
    if (value === undefined) {
      if (!(key in labels))
        throw new CalicoctlError(`cannot remove label of ${kind} ${name}, key ${key} does not exist`);
      delete labels[key];
      done = `Successfully removed label ${key} from ${kind} ${name}`;
    } else if (key in labels) {
      if (!change.overwrite && labels[key] !== value) {
        throw new CalicoctlError(
          `failed to update label of ${kind} ${name}, key ${key} is already present. ` +
            "please use '--overwrite' to set a new value.",
        );
      }
      labels[key] = value;
      done = `Successfully updated label ${key} on ${kind} ${name}`;
    } else {
      labels[key] = value;
      done = `Successfully set label ${key} on ${kind} ${name}`;
    }
    await store.put(DATASTORE_KEYS.node(name), JSON.stringify({ ...node, metadata: { ...node.metadata, labels } }));
    return done;
  });
  io.out(`${message}\n`);
}

/** A strategic merge patch of plain objects: maps merge key by key, null removes a key, anything else replaces. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const merged: Record<string, unknown> =
    typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete merged[key];
    else merged[key] = mergePatch(merged[key], value);
  }
  return merged;
}

/** `patch node NAME -p '{"spec":{"bgp":{"routeReflectorClusterID":"244.0.0.1"}}}'`: the Node checked, then written. */
export async function patchNode(io: Io, name: string, patchText: string, endpoint: string) {
  let patch: unknown;
  try {
    patch = JSON.parse(patchText);
  } catch (error) {
    throw new CalicoctlError(`Hit error: the patch is not JSON: ${(error as Error).message}`);
  }
  await withStore(endpoint, async (store) => {
    const node = await storedNode(store, name, (error) => `Hit error: ${error}`);
    const patched = mergePatch(node, patch) as NodeResource;
    const key = DATASTORE_KEYS.node(name);
    const text = JSON.stringify({ ...patched, metadata: { ...patched.metadata, name } });
    const checked = registeredNode(key, text);
    if (typeof checked === 'string') throw new CalicoctlError(`Hit error: ${checked.slice(key.length + 2)}`);
    await store.put(key, text);
  });
  io.out("Successfully patched 1 'Node' resource\n");
}

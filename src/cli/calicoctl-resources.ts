/**
 * `calicoctl apply -f`, `delete` and `get bgppeer`: BGPPeer resources in the lab's etcd, under Calico's key, as
 * calicoctl writes them with an etcdv3 datastore. The agents watch that key and peer with what it holds: a global peer
 * (no `node`) from every node, a node-specific one from its node only. calicoctl's messages are its own
 * (calicoctl/commands/common/resources.go).
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import {
  bgpPeerResource,
  DATASTORE_KEYS,
  parseBgpPeer,
  type BgpPeerResource,
  type BgpPeerSpec,
} from '../calico/index.js';
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

/** The BGPPeers of a file, each checked; anything else is refused before anything is written. */
function readBgpPeers(file: string): BgpPeerSpec[] {
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
    if (kind !== 'BGPPeer') {
      throw new CalicoctlError(
        `Failed to execute command: ipip-lab's calicoctl applies BGPPeer resources only, not ${JSON.stringify(kind)} ` +
          '(the IP pool comes from the lab spec)',
      );
    }
    const peer = parseBgpPeer(object);
    if (typeof peer === 'string') throw new CalicoctlError(`Failed to execute command: ${file}: ${peer}`);
    return peer;
  });
}

function summary(verb: 'applied' | 'deleted', count: number): string {
  return `Successfully ${verb} ${count} 'BGPPeer' resource(s)\n`;
}

export async function applyBgpPeers(io: Io, file: string, endpoint: string, now: () => number): Promise<void> {
  const peers = readBgpPeers(file);
  await withStore(endpoint, async (store) => {
    for (const peer of peers) {
      // apply keeps the creation time of what it replaces, as the API server does.
      const existing = await store.get(DATASTORE_KEYS.bgpPeer(peer.name));
      const created = existing && (JSON.parse(existing.value) as Partial<BgpPeerResource>).metadata?.creationTimestamp;
      const resource = bgpPeerResource(peer, created ? new Date(created) : new Date(now()));
      await store.put(DATASTORE_KEYS.bgpPeer(peer.name), JSON.stringify(resource));
    }
  });
  io.out(summary('applied', peers.length));
}

/** `delete -f FILE` (the names it holds) or `delete bgppeer NAME`. */
export async function deleteBgpPeers(io: Io, names: readonly string[], endpoint: string): Promise<void> {
  const missing = await withStore(endpoint, async (store) => {
    const gone: string[] = [];
    for (const name of names) if (!(await store.delete(DATASTORE_KEYS.bgpPeer(name)))) gone.push(name);
    return gone;
  });
  const errors = `[${missing.map((name) => `resource does not exist: BGPPeer(${name}) with error: <nil>`).join(' ')}]`;
  if (missing.length === 0) return io.out(summary('deleted', names.length));
  if (missing.length === names.length) {
    throw new CalicoctlError(
      names.length === 1
        ? `Failed to delete 'BGPPeer' resource: ${errors}`
        : `Failed to delete any 'BGPPeer' resources: ${errors}`,
    );
  }
  io.out(
    `Partial success: deleted the first ${names.length - missing.length} out of ${names.length} 'BGPPeer' resources:\n`,
  );
  throw new CalicoctlError(`hit error: ${errors}`);
}

export function bgpPeerNamesIn(file: string): string[] {
  return readBgpPeers(file).map((peer) => peer.name);
}

/** `get bgppeer [NAME] [-o wide|json|yaml]`: NAME, PEERIP, NODE (`(global)`), ASN, as calicoctl's table prints them. */
export async function getBgpPeers(endpoint: string, name: string | undefined): Promise<BgpPeerResource[]> {
  const stored = await withStore(endpoint, (store) => store.list(DATASTORE_KEYS.bgpPeers));
  const resources = [...stored.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([, { value }]) => JSON.parse(value) as BgpPeerResource)
    .filter((resource) => name === undefined || resource.metadata.name === name);
  if (name !== undefined && resources.length === 0) {
    throw new CalicoctlError(`resource does not exist: BGPPeer(${name}) with error: <nil>`);
  }
  return resources;
}

export function renderGetBgpPeers(resources: readonly BgpPeerResource[]): string {
  return renderCalicoctlTabwriter([
    ['NAME', 'PEERIP', 'NODE', 'ASN'],
    ...resources.map((resource) => [
      resource.metadata.name,
      resource.spec.peerIP,
      resource.spec.node ?? '(global)',
      String(resource.spec.asNumber),
    ]),
  ]);
}

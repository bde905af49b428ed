/**
 * The lab's datastore: a real etcd v3, reached with the maintained `etcd3` client, behind the compare-and-swap
 * operations Calico's etcdv3 backend uses (calico/datastore/block-claim.ts names them).
 */
import { promises as dns } from 'node:dns';
import { isIPv4 } from 'node:net';
import type { Etcd3 } from 'etcd3';
import type { CasStore, Stored } from '../../calico/index.js';

export class EtcdStore implements CasStore {
  constructor(
    readonly client: Etcd3,
    /** The endpoint as connected to: its host name, if it had one, resolved. */
    readonly endpoint: string,
  ) {}

  async get(key: string): Promise<Stored | undefined> {
    const { kvs } = await this.client.get(key).exec();
    const kv = kvs[0];
    return kv && { value: kv.value.toString(), revision: kv.mod_revision };
  }

  async list(prefix: string): Promise<Map<string, Stored>> {
    const { kvs } = await this.client.getAll().prefix(prefix).exec();
    return new Map(kvs.map((kv) => [kv.key.toString(), { value: kv.value.toString(), revision: kv.mod_revision }]));
  }

  async create(key: string, value: string): Promise<boolean> {
    const result = await this.client.if(key, 'Version', '==', 0).then(this.client.put(key).value(value)).commit();
    return result.succeeded;
  }

  async update(key: string, value: string, revision: string): Promise<boolean> {
    const result = await this.client.if(key, 'Mod', '==', revision).then(this.client.put(key).value(value)).commit();
    return result.succeeded;
  }

  async delete(key: string, revision?: string): Promise<boolean> {
    if (revision === undefined) return (await this.client.delete().key(key).exec()).deleted !== '0';
    const result = await this.client.if(key, 'Mod', '==', revision).then(this.client.delete().key(key)).commit();
    return result.succeeded;
  }

  /** Writes a value whatever the key holds: for resources a node owns alone, as its own Node. */
  async put(key: string, value: string): Promise<void> {
    await this.client.put(key).value(value).exec();
  }

  close(): void {
    this.client.close();
  }
}

const ATTEMPT_MS = 1000;

/**
 * The endpoint with its host name resolved by DNS (a swarm lab's `etcd` service): the node image resolves names from
 * /etc/hosts alone (containers/Dockerfile says why), so the system resolver would not find it.
 */
async function resolvedEndpoint(endpoint: string): Promise<string> {
  const url = new URL(endpoint);
  if (isIPv4(url.hostname)) return endpoint;
  const [address] = await dns.resolve4(url.hostname);
  return `${url.protocol}//${address}:${url.port}`;
}

/** The datastore did not answer within the time the agent waits at start: the CLI exits with code 2. */
export class DatastoreUnavailableError extends Error {}

/**
 * Connects, retrying once a second with a line each time, as calico-node waits for its datastore, and gives up after
 * `timeoutMs`.
 */
export async function connectEtcd(
  endpoint: string,
  options: { timeoutMs: number; log: (line: string) => void },
): Promise<EtcdStore> {
  const deadline = Date.now() + options.timeoutMs;
  // Loaded here, not with the module: gRPC and protobuf.js cost every agent and every CLI command about 20 MB of
  // memory and 0.1 s at start, and only a lab with a datastore uses them.
  const { Etcd3: Client } = await import('etcd3');
  for (let attempt = 1; ; attempt++) {
    let client: Etcd3 | undefined;
    try {
      // A fresh client each time: the client's circuit breaker, once open, would refuse the next tries outright.
      const resolved = await resolvedEndpoint(endpoint);
      client = new Client({ hosts: resolved, dialTimeout: ATTEMPT_MS });
      // Each try is bounded too: an address nobody answers ARP for would hold one for seconds.
      await client
        .get('/calico')
        .options({ deadline: new Date(Date.now() + ATTEMPT_MS) })
        .exec();
      return new EtcdStore(client, resolved);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      // gRPC's words for a bounded try that got no answer say more about gRPC than about the datastore.
      const reason = message.includes('DEADLINE_EXCEEDED') ? `no answer within ${ATTEMPT_MS / 1000} s` : message;
      client?.close();
      options.log(`waiting for the datastore at ${endpoint} (attempt ${attempt}: ${reason})`);
      if (Date.now() >= deadline) {
        throw new DatastoreUnavailableError(
          `the datastore at ${endpoint} did not answer within ${options.timeoutMs / 1000} s (${reason}): ` +
            "start the lab's etcd first, or fix --datastore",
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

/**
 * What Calico's CNI plugin records in an etcd datastore for the pods of a node: each pod's address under its handle
 * (`k8s-pod-network.<container ID>`) in the block that holds it, and its WorkloadEndpoint. The agent converges these
 * to the node's pods at start and after each change: new pods are recorded, gone ones released (their addresses go to
 * the end of the block's free list) and their endpoints deleted. Another node's records are never touched.
 */
import {
  DATASTORE_KEYS,
  DatastoreIpam,
  podContainerId,
  podHandle,
  workloadEndpointResource,
  type CasStore,
  type ClusterState,
  type WorkloadEndpointResource,
} from '../../calico/index.js';

/** The etcd store's operations that this needs; the tests give an in-memory one. */
type WorkloadStore = CasStore & { put(key: string, value: string): Promise<void> };

export interface WorkloadSync {
  recorded: number;
  released: number;
}

/** This node's WorkloadEndpoints as stored, by key; anything unreadable is left alone. */
async function storedEndpoints(store: WorkloadStore, nodeName: string): Promise<Map<string, WorkloadEndpointResource>> {
  const mine = new Map<string, WorkloadEndpointResource>();
  for (const [key, { value }] of await store.list(DATASTORE_KEYS.workloadEndpoints)) {
    try {
      const resource = JSON.parse(value) as WorkloadEndpointResource;
      if (resource.spec?.node === nodeName) mine.set(key, resource);
    } catch {
      // A malformed object is not ours to repair.
    }
  }
  return mine;
}

export async function syncWorkloads(
  store: WorkloadStore,
  cluster: ClusterState,
  nodeName: string,
  log: (line: string) => void,
  now: () => Date = () => new Date(),
): Promise<WorkloadSync> {
  const ipam = new DatastoreIpam(store, cluster.pool, now);
  const existing = await storedEndpoints(store, nodeName);
  const pods = cluster.pods.filter((pod) => pod.node === nodeName);
  const wanted = new Set<string>();
  let recorded = 0;
  for (const pod of pods) {
    const containerId = podContainerId(pod.namespace, pod.name);
    const resource = workloadEndpointResource(pod, containerId, now());
    const key = DATASTORE_KEYS.workloadEndpoint(pod.namespace, resource.metadata.name);
    wanted.add(key);
    if (existing.has(key)) continue;
    const assigned = await ipam.assignAddress(pod.ip, podHandle(containerId), {
      namespace: pod.namespace,
      node: nodeName,
      pod: pod.name,
      timestamp: now().toISOString(),
    });
    if (assigned === 'taken' || assigned === 'no-block') {
      log(
        `datastore: ${pod.namespace}/${pod.name}'s ${pod.ip} is ${assigned === 'taken' ? 'held by another handle' : 'in no claimed block'}: its WorkloadEndpoint is written, its allocation is not`,
      );
    }
    await store.put(key, JSON.stringify(resource));
    recorded++;
  }
  let released = 0;
  for (const [key, resource] of existing) {
    if (wanted.has(key)) continue;
    await ipam.releaseHandle(podHandle(resource.spec.containerID));
    await store.delete(key);
    released++;
  }
  return { recorded, released };
}

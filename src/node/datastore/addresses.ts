/**
 * Nodes without a fixed address find each other through the datastore, as calico-node does where the platform hands
 * out addresses (a swarm lab): each takes the address its interface has in the spec's network (calico-node's
 * IP_AUTODETECTION_METHOD=cidr=…), writes it into its Node (`spec.bgp.ipv4Address`), waits until every node of the
 * spec has done so, and fills them all into its copy of the spec, which the agent and the node's CLI then read.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { addresslessSpec, DATASTORE_KEYS, specAddresses, withAddresses } from '../../calico/index.js';
import { Ipv4Address, type Ipv4Prefix } from '../../routing/address.js';
import { connectEtcd, type EtcdStore } from './etcd-store.js';
import { putNode, registeredNode } from './registration.js';

const POLL_MS = 500;
const PROGRESS_MS = 5000;

/** No address in the network, or not every node registered one in time: the CLI exits with code 2. */
export class AddressDiscoveryError extends Error {}

/** The first IPv4 address of this machine's interfaces inside `cidr`. */
export function detectAddress(
  cidr: Ipv4Prefix,
  interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces(),
): Ipv4Address | undefined {
  for (const entries of Object.values(interfaces)) {
    for (const entry of entries ?? []) {
      const address = entry.family === 'IPv4' ? Ipv4Address.tryParse(entry.address) : undefined;
      if (address && cidr.contains(address)) return address;
    }
  }
  return undefined;
}

/** Every registered Node's address, by name. */
export async function registeredAddresses(store: EtcdStore): Promise<Map<string, Ipv4Address>> {
  const addresses = new Map<string, Ipv4Address>();
  for (const [key, stored] of await store.list(DATASTORE_KEYS.nodes)) {
    const node = registeredNode(key, stored.value);
    if (typeof node !== 'string') addresses.set(node.name, node.address);
  }
  return addresses;
}

/** Polls until every one of `names` has registered an address, with a progress line every few seconds. */
export async function awaitAddresses(
  store: EtcdStore,
  names: readonly string[],
  options: { timeoutMs: number; log: (line: string) => void },
): Promise<Map<string, Ipv4Address>> {
  const started = Date.now();
  let reported = started;
  for (;;) {
    const addresses = await registeredAddresses(store);
    const missing = names.filter((name) => !addresses.has(name));
    if (missing.length === 0) return addresses;
    const waited = Date.now() - started;
    const list = `${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`;
    if (waited >= options.timeoutMs) {
      throw new AddressDiscoveryError(
        `${missing.length} of ${names.length} nodes registered no address within ${options.timeoutMs / 1000} s ` +
          `(${list}): is each one running, on the lab network?`,
      );
    }
    if (Date.now() - reported >= PROGRESS_MS) {
      reported = Date.now();
      options.log(`waiting for ${missing.length} of ${names.length} nodes to register their addresses: ${list}`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

export interface ResolveAddressesOptions {
  readonly specPath: string;
  readonly nodeName: string;
  readonly datastore: string | undefined;
  readonly datastoreTimeoutMs: number;
  /** How long to wait for every node's address once the datastore answers. */
  readonly addressesTimeoutMs: number;
  readonly log: (line: string) => void;
  readonly interfaces?: NodeJS.Dict<os.NetworkInterfaceInfo[]>;
}

/**
 * Where the spec at `specPath` leaves nodes without an address: registers this node's, waits for everyone's and
 * rewrites the file with them (true). A spec whose nodes all have one is left as it is (false).
 */
export async function resolveSpecAddresses(options: ResolveAddressesOptions): Promise<boolean> {
  let text: string;
  try {
    text = readFileSync(options.specPath, 'utf8');
  } catch {
    return false; // The spec's reader says why it cannot read it.
  }
  const addressless = addresslessSpec(text);
  if (!addressless) return false;
  const { cidr, nodes } = addressless;
  if (options.datastore === undefined) {
    throw new AddressDiscoveryError(
      `${options.specPath}: ${nodes.length} nodes have no ip (${nodes[0]}, …): give every node its address, or ` +
        'run the agents with a datastore (--datastore), where each registers its own and finds the others',
    );
  }
  const needsOwn = nodes.includes(options.nodeName);
  const own = needsOwn ? detectAddress(cidr, options.interfaces) : undefined;
  if (needsOwn && own === undefined) {
    throw new AddressDiscoveryError(
      `${options.nodeName} has no ip in the spec and none of this machine's interfaces has an address in ` +
        `network.cidr ${cidr}: attach the container to the lab network`,
    );
  }
  const store = await connectEtcd(options.datastore, { timeoutMs: options.datastoreTimeoutMs, log: options.log });
  try {
    if (own !== undefined) {
      await putNode(store, { cidr, subnets: [] }, options.nodeName, own, undefined, {});
      options.log(`${options.nodeName}: autodetected ${own} in ${cidr}; waiting for the other nodes' addresses`);
    }
    const addresses = await awaitAddresses(store, nodes, { timeoutMs: options.addressesTimeoutMs, log: options.log });
    replaceSpec(options.specPath, withAddresses(text, addresses));
    options.log(`${options.specPath}: the addresses of ${nodes.length} nodes filled in from the datastore`);
    return true;
  } finally {
    store.close();
  }
}

/** A rename: the node's CLI reads the file at any moment and must never see half of it. */
function replaceSpec(specPath: string, text: string): void {
  const staging = `${specPath}.${process.pid}.addresses`;
  writeFileSync(staging, text);
  renameSync(staging, specPath);
}

/**
 * Where the registered address of a node of the spec differs from the spec's (Swarm restarted it, and gave the new
 * task another address), writes the registered one into the spec. Returns the nodes it changed.
 */
export function followRegisteredAddresses(specPath: string, registered: ReadonlyMap<string, Ipv4Address>): string[] {
  const text = readFileSync(specPath, 'utf8');
  const changed = new Map<string, Ipv4Address>();
  for (const [name, ip] of specAddresses(text)) {
    const address = registered.get(name);
    if (address && address.toString() !== ip) changed.set(name, address);
  }
  if (changed.size > 0) replaceSpec(specPath, withAddresses(text, changed));
  return [...changed.keys()];
}

/**
 * Specs whose nodes have no fixed address, as in a swarm lab, where Swarm hands out the underlay addresses: each node
 * takes the address its interface has in network.cidr (calico-node's IP_AUTODETECTION_METHOD=cidr=…), registers it
 * in the datastore, and fills everyone's into its copy of the spec. These are the spec text's side of that: which
 * nodes lack an address, and the same text with them filled in or taken out, comments and layout kept.
 */
import { isMap, isSeq, parseDocument, type Document, type YAMLMap } from 'yaml';
import { Ipv4Prefix, type Ipv4Address } from '../routing/address.js';

export interface AddresslessSpec {
  /** The underlay network, where each node finds its own address. */
  readonly cidr: Ipv4Prefix;
  /** The nodes without an `ip`, in the spec's order. */
  readonly nodes: readonly string[];
}

function nodeMaps(document: Document): YAMLMap[] {
  const nodes = document.get('nodes');
  return isSeq(nodes) ? nodes.items.filter((item): item is YAMLMap => isMap(item)) : [];
}

function parsed(text: string): Document | undefined {
  const document = parseDocument(text);
  return document.errors.length === 0 ? document : undefined;
}

/**
 * The nodes that have no `ip` and the network they are on, or undefined when every node has one (or the text is not
 * a spec this can read: the spec parser then says what is wrong).
 */
export function addresslessSpec(text: string): AddresslessSpec | undefined {
  const document = parsed(text);
  if (!document) return undefined;
  const nodes = nodeMaps(document)
    .filter((node) => !node.has('ip'))
    .map((node) => node.get('name'))
    .filter((name): name is string => typeof name === 'string');
  const cidr = Ipv4Prefix.tryParse(String(document.getIn(['network', 'cidr'])));
  return nodes.length > 0 && cidr ? { cidr, nodes } : undefined;
}

/** Each node's `ip` as the text has it (nodes without one left out). */
export function specAddresses(text: string): Map<string, string> {
  const document = parsed(text);
  const addresses = new Map<string, string>();
  for (const node of document ? nodeMaps(document) : []) {
    const [name, ip] = [node.get('name'), node.get('ip')];
    if (typeof name === 'string' && typeof ip === 'string') addresses.set(name, ip);
  }
  return addresses;
}

/** The spec with each named node's `ip` set (after its name, where a person would write it). */
export function withAddresses(text: string, addresses: ReadonlyMap<string, Ipv4Address>): string {
  const document = parseDocument(text);
  for (const node of nodeMaps(document)) {
    const address = addresses.get(String(node.get('name')));
    if (address === undefined) continue;
    node.delete('ip');
    const ip = document.createPair('ip', address.toString());
    node.items.splice(Math.min(1, node.items.length), 0, ip);
  }
  return document.toString({ lineWidth: 0 });
}

/** The spec with no node address, and the underlay MTU given: the spec a swarm lab's nodes start from. */
export function withoutAddresses(text: string, mtu: number): string {
  const document = parseDocument(text);
  for (const node of nodeMaps(document)) node.delete('ip');
  document.setIn(['network', 'mtu'], mtu);
  return document.toString({ lineWidth: 0 });
}

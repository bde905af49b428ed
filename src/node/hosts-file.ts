/**
 * The lab's node names in the container's /etc/hosts, as a real cluster's nodes resolve each other, so that
 * net-tools' `route` names tunl0's gateways by node hostname as the seed's output does (`worker-node02`), and
 * `ping worker-node02` works. Docker writes the container's own entries; ours sit in a marked block of their own,
 * rewritten whole on every change, and nothing else in the file is touched.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { NodeState } from '../calico/index.js';

/** A name and its address: a lab node, or the datastore where it is reached by name. */
export type HostEntry = Pick<NodeState, 'name' | 'ip'>;

const BEGIN = '# ipip-lab: the lab nodes (rewritten by the agent)';
const END = '# ipip-lab: end';

export function withLabNodes(hosts: string, nodes: readonly HostEntry[]): string {
  const kept: string[] = [];
  let inside = false;
  for (const line of hosts.split('\n')) {
    if (line === BEGIN) inside = true;
    else if (line === END) inside = false;
    else if (!inside) kept.push(line);
  }
  while (kept.length > 0 && kept[kept.length - 1] === '') kept.pop();
  // A name the file already maps to the same address (Docker's line for the container itself) is not repeated:
  // `hostname -i` would print the address twice.
  const present = new Set(kept.map((line) => line.trim().split(/\s+/).slice(0, 2).join(' ')));
  const missing = nodes.filter((node) => !present.has(`${node.ip.toString()} ${node.name}`));
  const block = [BEGIN, ...missing.map((node) => `${node.ip.toString()}\t${node.name}`), END];
  return [...kept, ...block, ''].join('\n');
}

/** Rewrites our block of `path`; a file we may not write is left alone, and the caller logs why. */
export function writeLabNodes(path: string, nodes: readonly HostEntry[]): void {
  const before = readFileSync(path, 'utf8');
  const after = withLabNodes(before, nodes);
  // Docker bind-mounts /etc/hosts: it must be written in place, never replaced by a rename.
  if (after !== before) writeFileSync(path, after);
}

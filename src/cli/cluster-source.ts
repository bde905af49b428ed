import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildCluster, parseSpec, type ClusterState, type NodeState } from '../calico/index.js';
import { UsageError } from './errors.js';

/** Where a node container keeps the lab's spec; the CLI inside the container finds it without flags. */
export const IN_CONTAINER_SPEC = '/etc/ipip-lab/cluster.yaml';

export function resolveSpecPath(option: string | undefined): string {
  const chosen = option ?? process.env.IPIP_LAB_SPEC ?? (existsSync(IN_CONTAINER_SPEC) ? IN_CONTAINER_SPEC : undefined);
  if (!chosen) {
    throw new UsageError(
      'no cluster spec: pass --spec FILE (e.g. --spec containers/cni-overview/cluster.yaml) or set IPIP_LAB_SPEC',
    );
  }
  return chosen;
}

export function loadCluster(specPath: string): ClusterState {
  let text: string;
  try {
    text = readFileSync(specPath, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read spec ${specPath}: ${(error as Error).message}`);
  }
  const base = path.dirname(specPath);
  const spec = parseSpec(text, {
    source: specPath,
    readFile: (relative) => readFileSync(path.resolve(base, relative), 'utf8'),
  });
  return buildCluster(spec);
}

/** `--node`, else IPIP_LAB_NODE, else this host when it is one of the cluster's nodes (inside a node container). */
export function resolveNode(cluster: ClusterState, option: string | undefined): NodeState {
  const wanted = option ?? process.env.IPIP_LAB_NODE ?? os.hostname();
  const node = cluster.nodes.find((n) => n.name === wanted);
  if (node) return node;
  const names = cluster.nodes.map((n) => n.name).join(', ');
  if (option === undefined && process.env.IPIP_LAB_NODE === undefined) {
    throw new UsageError(`which node? pass --node NAME (one of: ${names})`);
  }
  throw new UsageError(`no node named ${JSON.stringify(wanted)} in the cluster (nodes: ${names})`);
}

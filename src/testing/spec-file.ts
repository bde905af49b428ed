/**
 * A lab's spec as the harness ships it into each node container: one self-contained file, its workload files
 * inlined, so a spec may name files anywhere relative to itself (`../cni-overview/deployment.yml`).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isMap, isSeq, parseAllDocuments, parseDocument } from 'yaml';
import { buildCluster, parseSpec, type ClusterState } from '../calico/index.js';

export interface LoadedSpec {
  cluster: ClusterState;
  /** The spec with every `- file: X` workload replaced by the Deployments in X. */
  bundled: string;
}

export function loadSpecFile(specPath: string): LoadedSpec {
  const text = readFileSync(specPath, 'utf8');
  const readRelative = (relative: string): string => readFileSync(path.resolve(path.dirname(specPath), relative), 'utf8');
  // Validate first, so a bad spec fails here with the message that names its field and file.
  const cluster = buildCluster(parseSpec(text, { source: specPath, readFile: readRelative }));

  const document = parseDocument(text);
  const workloads = document.get('workloads');
  if (isSeq(workloads)) {
    workloads.items = workloads.items.flatMap((item) => {
      const file = isMap(item) ? item.get('file') : undefined;
      if (typeof file !== 'string') return [item];
      return parseAllDocuments(readRelative(file))
        .filter((manifest) => manifest.contents !== null)
        .map((manifest) => document.createNode(manifest.toJS()));
    });
  }
  return { cluster, bundled: document.toString() };
}

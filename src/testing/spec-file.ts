/**
 * A lab's spec as the harness ships it into each node container: one self-contained file, its workload files
 * inlined, so a spec may name files anywhere relative to itself (`../cni-overview/deployment.yml`).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  buildCluster,
  parseSpecDocument,
  readSpecDocument,
  withWorkloads,
  workloadManifests,
  type ClusterState,
} from '../calico/index.js';

export interface LoadedSpec {
  cluster: ClusterState;
  /** The spec with every `- file: X` workload replaced by the Deployments in X. */
  bundled: string;
}

export function loadSpecFile(specPath: string): LoadedSpec {
  const text = readFileSync(specPath, 'utf8');
  const readRelative = (relative: string): string => readFileSync(path.resolve(path.dirname(specPath), relative), 'utf8');
  // Validate first, so a bad spec fails here with the message that names its field and file.
  const document = readSpecDocument(specPath, text, readRelative);
  const cluster = buildCluster(parseSpecDocument(document));
  return { cluster, bundled: withWorkloads(text, workloadManifests(document)) };
}

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
import { packageRoot } from '../package-root.js';

export interface LoadedSpec {
  cluster: ClusterState;
  /** The spec with every `- file: X` workload replaced by the Deployments in X. */
  bundled: string;
}

/** The seed labs the package ships, by the names a test may give `startLab` instead of a path. */
export const SEED_LABS = ['cni-overview', 'networking'] as const;
export type SeedLab = (typeof SEED_LABS)[number];

/** The spec file of a seed lab inside the installed package (or the repository): its cluster, with the course's pods. */
export function seedSpecPath(name: SeedLab): string {
  return path.join(packageRoot(), 'containers', name, 'cluster.yaml');
}

/** A seed lab's name, or a path to a spec, relative to the working directory. */
export function resolveSpecPath(spec: string): string {
  return (SEED_LABS as readonly string[]).includes(spec) ? seedSpecPath(spec as SeedLab) : spec;
}

export function loadSpecFile(spec: string): LoadedSpec {
  const specPath = resolveSpecPath(spec);
  let text: string;
  try {
    text = readFileSync(specPath, 'utf8');
  } catch (error) {
    throw new Error(
      `cannot read the spec ${specPath} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): ` +
        `give a path to a cluster spec, or the name of a seed lab (${SEED_LABS.join(', ')})`,
    );
  }
  const readRelative = (relative: string): string =>
    readFileSync(path.resolve(path.dirname(specPath), relative), 'utf8');
  // Validate first, so a bad spec fails here with the message that names its field and file.
  const document = readSpecDocument(specPath, text, readRelative);
  const cluster = buildCluster(parseSpecDocument(document));
  return { cluster, bundled: withWorkloads(text, workloadManifests(document)) };
}

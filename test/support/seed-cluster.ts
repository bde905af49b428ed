/** The first seed's cluster (containers/cni-overview/cluster.yaml), parsed afresh for tests that change its spec. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { buildCluster, parseSpec, type ClusterSpec, type ClusterState } from '../../src/calico/index.js';
import { SEED_CNI_OVERVIEW } from './cli.js';

export function seedSpec(): ClusterSpec {
  return parseSpec(readFileSync(SEED_CNI_OVERVIEW, 'utf8'), {
    source: SEED_CNI_OVERVIEW,
    readFile: (relative) => readFileSync(path.resolve(path.dirname(SEED_CNI_OVERVIEW), relative), 'utf8'),
  });
}

export function seedCluster(): ClusterState {
  return buildCluster(seedSpec());
}

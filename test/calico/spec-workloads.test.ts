import { describe, expect, it } from 'vitest';
import { buildCluster, parseSpecDocument, withWorkloads, workloadManifests } from '../../src/calico/index.js';
import { readSpecFile } from '../../src/cli/cluster-source.js';
import { SEED_NETWORKING } from '../support/cli.js';

describe('workloadManifests and withWorkloads', () => {
  it("inline a spec's workload files into a spec that builds the same cluster on its own", () => {
    const document = readSpecFile(SEED_NETWORKING);
    const manifests = workloadManifests(document);
    expect(manifests).toHaveLength(1);
    expect(manifests[0]).toMatchObject({ kind: 'Deployment', metadata: { name: 'hello-world' } });
    const text = withWorkloads(document.text, manifests);
    expect(text).not.toContain('file:');
    expect(text).toContain("# The second seed's cluster");
    const alone = buildCluster(parseSpecDocument({ source: 'bundled', text, files: {} }));
    expect(alone).toEqual(buildCluster(parseSpecDocument(document)));
  });

  it('an empty list leaves a spec with no pods', () => {
    const document = readSpecFile(SEED_NETWORKING);
    const text = withWorkloads(document.text, []);
    expect(buildCluster(parseSpecDocument({ source: 'empty', text, files: {} })).pods).toEqual([]);
  });
});

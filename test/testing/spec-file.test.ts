import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSpecFile, resolveSpecPath, SEED_LABS, seedSpecPath } from '../../src/testing/spec-file.js';

describe('the spec a test names', () => {
  it("resolves a seed lab's name to the cluster spec the package ships", () => {
    expect(seedSpecPath('cni-overview')).toBe(path.resolve('containers/cni-overview/cluster.yaml'));
    expect(resolveSpecPath('networking')).toBe(path.resolve('containers/networking/cluster.yaml'));
  });

  it.each(SEED_LABS)('loads the %s seed by name, pods and all', (name) => {
    const { cluster } = loadSpecFile(name);
    expect(cluster.spec.name).toBe(name);
    expect(cluster.pods.length).toBeGreaterThan(0);
  });

  it("takes any other string as the user's own path, as given", () => {
    expect(resolveSpecPath('specs/cni-overview.yaml')).toBe('specs/cni-overview.yaml');
    expect(loadSpecFile('test/fixtures/live-views.yaml').cluster.nodes.length).toBeGreaterThan(0);
  });

  it('says what it could not read and what it would take instead', () => {
    expect(() => loadSpecFile('no-such-lab')).toThrow(
      'cannot read the spec no-such-lab (ENOENT): give a path to a cluster spec, or the name of a seed lab (cni-overview, networking)',
    );
  });
});

/** kind's cluster config, as `ipip-lab kind create cluster --config` reads it. */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { KindConfigError, parseKindConfig } from '../../src/calico/kind-config.js';
import { REPO_ROOT } from '../support/cli.js';

const HEADER = 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n';

describe('parseKindConfig', () => {
  test("Calico's kind tutorial config: one control plane, two workers, its podSubnet, no default CNI", () => {
    const text = `${HEADER}nodes:\n- role: control-plane\n- role: worker\n- role: worker\nnetworking:\n  disableDefaultCNI: true\n  podSubnet: 192.168.0.0/16\n`;
    const config = parseKindConfig(text, 'kind.yaml');
    expect(config).toMatchObject({ controlPlanes: 1, workers: 2, disableDefaultCNI: true, ignored: [] });
    expect(String(config.podSubnet)).toBe('192.168.0.0/16');
  });

  test("the second seed's config in the repository: four nodes on 192.168.0.0/16", () => {
    const file = `${REPO_ROOT}containers/networking/kind-config.yaml`;
    const config = parseKindConfig(readFileSync(file, 'utf8'), file);
    expect(config).toMatchObject({ controlPlanes: 1, workers: 3, disableDefaultCNI: true });
    expect(String(config.podSubnet)).toBe('192.168.0.0/16');
  });

  test("kind's defaults: one control plane, 10.244.0.0/16, kindnetd; the name and what is not emulated", () => {
    const config = parseKindConfig(
      `${HEADER}name: lab\nnodes:\n- role: control-plane\n  image: kindest/node:v1.21.1\n- role: worker\n  extraPortMappings: []\nnetworking:\n  serviceSubnet: 10.96.0.0/12\nfeatureGates: {}\n`,
      'c.yaml',
    );
    expect(config).toMatchObject({ name: 'lab', controlPlanes: 1, workers: 1, disableDefaultCNI: false });
    expect(config.ignored).toEqual([
      'featureGates',
      'nodes[0].image',
      'nodes[1].extraPortMappings',
      'networking.serviceSubnet',
    ]);
    expect(String(parseKindConfig(HEADER, 'c.yaml').podSubnet)).toBe('10.244.0.0/16');
    expect(parseKindConfig(HEADER, 'c.yaml')).toMatchObject({ controlPlanes: 1, workers: 0 });
  });

  test.each([
    [
      'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha3\n',
      'apiVersion: "kind.x-k8s.io/v1alpha3" is not kind.x-k8s.io/v1alpha4',
    ],
    ['kind: Config\napiVersion: kind.x-k8s.io/v1alpha4\n', 'kind: "Config" is not Cluster'],
    [`${HEADER}nodes: [\n`, 'invalid YAML'],
    [`${HEADER}nodes:\n- role: master\n`, 'nodes[0].role: "master" is not control-plane or worker'],
    [`${HEADER}nodes:\n- role: worker\n`, '0 control planes; a lab has exactly one'],
    [
      `${HEADER}nodes:\n- role: control-plane\n- role: control-plane\n`,
      "2 control planes; a lab has exactly one (kind's HA",
    ],
    [`${HEADER}nodes:\n- role: worker\n  zone: a\n`, 'nodes[0]: unknown field "zone"'],
    [
      `${HEADER}networking:\n  podSubnet: 192.168.0.0/33\n`,
      'networking.podSubnet: "192.168.0.0/33" is not an IPv4 CIDR',
    ],
    [`${HEADER}networking:\n  ipFamily: dual\n`, 'the lab is IPv4 only'],
    [`${HEADER}networking:\n  disableDefaultCNI: "yes"\n`, 'disableDefaultCNI: not a boolean'],
  ])('refuses %j: %s', (text, reason) => {
    expect(() => parseKindConfig(text, 'c.yaml')).toThrow(KindConfigError);
    expect(() => parseKindConfig(text, 'c.yaml')).toThrow(reason);
  });
});

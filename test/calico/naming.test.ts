import { describe, expect, it } from 'vitest';
import {
  K8S_ALPHANUMS,
  podName,
  podNameSuffix,
  podTemplateHash,
  safeEncodeString,
  vethNameForWorkload,
} from '../../src/calico/naming.js';

// Pod names and cali interfaces printed by the real clusters in the course walkthroughs (docs/).
const SEED_POD_NAMES = [
  'hello-world-54575d5b77-db9tv',
  'hello-world-54575d5b77-rz8vs',
  'hello-world-54575d5b77-vjr2r',
  'hello-world-7c64bd9f6b-lmhxb',
  'hello-world-7c64bd9f6b-s5cfz',
  'hello-world-7c64bd9f6b-tpnrz',
  'coredns-558bd4d5db-k4j7g',
];

// SafeEncodeString of a decimal string only ever uses the images of '0'..'9'.
const HASH_SHAPE = /^[456789bcdf]{1,10}$/;
const SUFFIX_SHAPE = /^[bcdfghjklmnpqrstvwxz2456789]{5}$/;
const POD_NAME_SHAPE = /^([a-z0-9-]+)-([456789bcdf]{1,10})-([bcdfghjklmnpqrstvwxz2456789]{5})$/;

describe('vethNameForWorkload', () => {
  it.each([
    ['default', 'hello-world-54575d5b77-rz8vs', 'cali6d8ff9bc555'],
    ['default', 'hello-world-7c64bd9f6b-tpnrz', 'cali52440ec1550'],
    ['kube-system', 'coredns-558bd4d5db-k4j7g', 'cali7dac2757ae1'],
  ])('%s/%s is %s, as on the real node', (namespace, pod, veth) => {
    expect(vethNameForWorkload(namespace, pod)).toBe(veth);
  });

  it('is 15 characters, the Linux interface-name limit', () => {
    expect(vethNameForWorkload('a-very-long-namespace', 'a-very-long-pod-name-xxxxxxxxxxxxxxxx')).toMatch(
      /^cali[0-9a-f]{11}$/,
    );
  });

  it('hashes namespace and name joined by a dot, so the pair matters, not the concatenation', () => {
    expect(vethNameForWorkload('ab', 'c')).not.toBe(vethNameForWorkload('a', 'bc'));
  });
});

describe('Kubernetes hashes and names', () => {
  it('uses the apimachinery alphabet and maps characters modulo 27', () => {
    expect(K8S_ALPHANUMS).toBe('bcdfghjklmnpqrstvwxz2456789');
    expect(safeEncodeString('0123456789')).toBe('456789bcdf');
    expect(safeEncodeString('1013181633')).toBe('54575d5b77');
    expect(safeEncodeString('')).toBe('');
    expect(safeEncodeString('a')).toBe('v');
  });

  it('gives the seed pod names the shape it generates: hashes that decode to a uint32 decimal', () => {
    const decode = (hash: string) => Number([...hash].map((c) => '456789bcdf'.indexOf(c)).join(''));
    for (const name of SEED_POD_NAMES) {
      const match = POD_NAME_SHAPE.exec(name);
      expect(match, name).not.toBeNull();
      const [, deployment, hash, suffix] = match as RegExpExecArray;
      expect(decode(hash)).toBeLessThan(2 ** 32);
      expect(podName(deployment, hash, suffix)).toBe(name);
    }
  });

  it('hashes a template to SafeEncodeString(decimal FNV-1a) of its canonical JSON', () => {
    // Go: fnv.New32a over "{}" is 1415952421, over {"a":1,"b":[1,2]} is 709422094.
    expect(podTemplateHash({})).toBe('5859f96865');
    expect(podTemplateHash({ b: [1, 2], a: 1 })).toBe('c4f8664f8');
  });

  it('hashes templates deterministically, whatever the key order, and differently when they differ', () => {
    const template = {
      metadata: { labels: { app: 'hello-world' } },
      spec: { containers: [{ name: 'hello-world', image: 'gcr.io/google-samples/hello-app:1.0', ports: [8080] }] },
    };
    const reordered = {
      spec: { containers: [{ ports: [8080], image: 'gcr.io/google-samples/hello-app:1.0', name: 'hello-world' }] },
      metadata: { labels: { app: 'hello-world' } },
    };
    const hash = podTemplateHash(template);
    expect(hash).toMatch(HASH_SHAPE);
    expect(podTemplateHash(reordered)).toBe(hash);
    expect(podTemplateHash({ ...template, metadata: { labels: { app: 'other' } } })).not.toBe(hash);
    expect(() => podTemplateHash(undefined)).toThrow(TypeError);
  });

  it('makes suffixes exactly as rand.String(5) does on Go math/rand', () => {
    // go1.19: String(5) four times from rand.New(rand.NewSource(int64(fnv32a("default/hello-world")))).
    expect(podNameSuffix('default/hello-world', 4)).toEqual(['48qkc', 'j227v', '2dd9c', 'f9psk']);
  });

  it('makes count distinct, deterministic suffixes of the seed shape', () => {
    const suffixes = podNameSuffix('default/hello-world-54575d5b77', 500);
    expect(suffixes).toHaveLength(500);
    expect(new Set(suffixes).size).toBe(500);
    for (const suffix of suffixes) expect(suffix).toMatch(SUFFIX_SHAPE);
    expect(podNameSuffix('default/hello-world-54575d5b77', 500)).toEqual(suffixes);
    expect(podNameSuffix('default/hello-world-54575d5b77', 3)).toEqual(suffixes.slice(0, 3));
    expect(podNameSuffix('kube-system/coredns', 3)).not.toEqual(suffixes.slice(0, 3));
    expect(podNameSuffix('x', 0)).toEqual([]);
    expect(() => podNameSuffix('x', -1)).toThrow(RangeError);
  });

  it('builds pod names of the seed shape, cutting the generateName base at 58 characters', () => {
    const hash = podTemplateHash({ app: 'hello-world' });
    const [suffix] = podNameSuffix('default/hello-world', 1);
    expect(podName('hello-world', hash, suffix)).toMatch(POD_NAME_SHAPE);
    const long = podName('d'.repeat(60), '54575d5b77', 'db9tv');
    expect(long).toBe(`${'d'.repeat(58)}db9tv`);
    expect(long).toHaveLength(63);
  });
});

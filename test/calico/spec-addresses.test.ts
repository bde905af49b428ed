import { describe, expect, it } from 'vitest';
import {
  addresslessSpec,
  generateSpec,
  parseSpecDocument,
  readSpecDocument,
  SpecError,
  withAddresses,
  withoutAddresses,
} from '../../src/calico/index.js';
import { Ipv4Address } from '../../src/routing/address.js';

const parseText = (text: string) =>
  parseSpecDocument(
    readSpecDocument('lab.yaml', text, () => {
      throw new Error('no workload files here');
    }),
  );

describe('specs whose nodes have no address', () => {
  const generated = generateSpec({ nodes: 4, networkCidr: '10.53.0.0/24' });
  const swarm = withoutAddresses(generated.text, 1450);

  it('takes every address out and sets the MTU, keeping the comments', () => {
    expect(swarm).not.toMatch(/\bip: /);
    expect(swarm).toContain('mtu: 1450');
    expect(swarm).toContain('# A kind-style cluster');
    expect(addresslessSpec(swarm)).toEqual({
      cidr: expect.objectContaining({}),
      nodes: generated.spec.nodes.map((node) => node.name),
    });
    expect(String(addresslessSpec(swarm)?.cidr)).toBe('10.53.0.0/24');
  });

  it('is refused by the spec parser with what to do about it', () => {
    expect(() => parseText(swarm)).toThrow(SpecError);
    expect(() => parseText(swarm)).toThrow(/nodes\[0\]\.ip: is required: .*--datastore/);
  });

  it('parses again, with the same nodes, once the addresses are filled in', () => {
    const addresses = new Map(
      generated.spec.nodes.map((node, i) => [node.name, Ipv4Address.parse(`10.53.0.${20 + i}`)]),
    );
    const filled = withAddresses(swarm, addresses);
    expect(addresslessSpec(filled)).toBeUndefined();
    const spec = parseText(filled);
    expect(spec.nodes.map((node) => [node.name, String(node.ip), node.role])).toEqual(
      generated.spec.nodes.map((node, i) => [node.name, `10.53.0.${20 + i}`, node.role]),
    );
    expect(spec.network.mtu).toBe(1450);
    expect(filled).toContain(`- { name: ${generated.spec.nodes[1].name}, ip: 10.53.0.21, role: worker }`);
  });

  it('fills only the nodes it knows and leaves a spec with every address alone', () => {
    const partly = withAddresses(swarm, new Map([['kind-worker', Ipv4Address.parse('10.53.0.9')]]));
    expect(addresslessSpec(partly)?.nodes).toEqual(['kind-control-plane', 'kind-worker2', 'kind-worker3']);
    expect(addresslessSpec(generated.text)).toBeUndefined();
    expect(addresslessSpec('nodes: [')).toBeUndefined();
  });
});

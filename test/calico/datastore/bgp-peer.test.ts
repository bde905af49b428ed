/** BGPPeer resources as calicoctl applies them and the agents read them back from etcd. */
import { describe, expect, test } from 'vitest';
import { bgpPeerResource, parseBgpPeer } from '../../../src/calico/index.js';
import { Ipv4Address } from '../../../src/routing/address.js';

const GLOBAL = {
  apiVersion: 'projectcalico.org/v3',
  kind: 'BGPPeer',
  metadata: { name: 'rack-tor' },
  spec: { peerIP: '10.0.0.50', asNumber: 64512 },
};

describe('parseBgpPeer', () => {
  test('a global peer (no node) and a node-specific one', () => {
    expect(parseBgpPeer(GLOBAL)).toEqual({ name: 'rack-tor', peerIP: Ipv4Address.parse('10.0.0.50'), asNumber: 64512 });
    expect(parseBgpPeer({ ...GLOBAL, spec: { ...GLOBAL.spec, node: 'worker-node01' } })).toMatchObject({
      node: 'worker-node01',
    });
  });

  test.each([
    [null, 'not an object'],
    [{ ...GLOBAL, kind: 'IPPool' }, 'kind "IPPool" is not BGPPeer'],
    [{ ...GLOBAL, apiVersion: 'v1' }, 'apiVersion "v1" is not projectcalico.org/v3'],
    [{ ...GLOBAL, metadata: { name: 'Rack_TOR' } }, 'metadata.name "Rack_TOR" is not a DNS-1123 subdomain'],
    [{ ...GLOBAL, spec: { asNumber: 64512 } }, 'spec.peerIP undefined is not an IPv4 address'],
    [{ ...GLOBAL, spec: { peerIP: '10.0.0.500', asNumber: 64512 } }, 'spec.peerIP "10.0.0.500" is not an IPv4 address'],
    [
      { ...GLOBAL, spec: { peerIP: '10.0.0.50', asNumber: 0 } },
      'spec.asNumber 0 is not an AS number (1 to 4294967295)',
    ],
    [{ ...GLOBAL, spec: { peerIP: '10.0.0.50', asNumber: '64512' } }, 'spec.asNumber "64512" is not an AS number'],
    [
      { ...GLOBAL, spec: { ...GLOBAL.spec, node: 'a', nodeSelector: 'all()' } },
      'spec.node and spec.nodeSelector cannot both be set',
    ],
    [
      { ...GLOBAL, spec: { ...GLOBAL.spec, peerSelector: "route-reflector == 'true'" } },
      'spec.peerIP must be empty when spec.peerSelector is set',
    ],
    [
      { ...GLOBAL, spec: { asNumber: 64512, peerSelector: "route-reflector == 'true'" } },
      'spec.asNumber must be empty when spec.peerSelector is set',
    ],
    [
      { ...GLOBAL, spec: { peerSelector: 'route-reflector = true' } },
      'spec.peerSelector: selector "route-reflector = true": expected an operator after "route-reflector" at character 17',
    ],
    [{ ...GLOBAL, spec: { ...GLOBAL.spec, node: 7 } }, 'spec.node is not a node name'],
  ])('refuses %j: %s', (value, reason) => {
    expect(parseBgpPeer(value)).toContain(reason);
  });

  test("the route reflector peering of Calico's docs: every node with the nodes labelled route-reflector", () => {
    const peer = parseBgpPeer({
      ...GLOBAL,
      metadata: { name: 'peer-with-route-reflectors' },
      spec: { nodeSelector: 'all()', peerSelector: "route-reflector == 'true'" },
    });
    if (typeof peer === 'string') throw new Error(peer);
    expect(peer.peerIP).toBeUndefined();
    expect(peer.nodeSelector?.matches({})).toBe(true);
    expect(peer.peerSelector?.matches({ 'route-reflector': 'true' })).toBe(true);
    expect(peer.peerSelector?.matches({ 'route-reflector': 'false' })).toBe(false);
    const stored = JSON.parse(JSON.stringify(bgpPeerResource(peer, new Date(0))));
    expect(stored.spec).toEqual({ nodeSelector: 'all()', peerSelector: "route-reflector == 'true'" });
  });

  test('bgpPeerResource is what parseBgpPeer reads back', () => {
    const peer = parseBgpPeer({ ...GLOBAL, spec: { ...GLOBAL.spec, node: 'master-node' } });
    if (typeof peer === 'string') throw new Error(peer);
    const stored = JSON.parse(JSON.stringify(bgpPeerResource(peer, new Date(0))));
    expect(stored.metadata).toEqual({ name: 'rack-tor', creationTimestamp: '1970-01-01T00:00:00.000Z' });
    expect(parseBgpPeer(stored)).toEqual(peer);
  });
});

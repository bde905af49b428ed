import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { NetworkInterfaceInfo } from 'node:os';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateSpec, withoutAddresses } from '../../../src/calico/index.js';
import {
  AddressDiscoveryError,
  detectAddress,
  followRegisteredAddresses,
  resolveSpecAddresses,
} from '../../../src/node/datastore/addresses.js';
import { Ipv4Address, Ipv4Prefix } from '../../../src/routing/address.js';

function ipv4(address: string, internal = false): NetworkInterfaceInfo {
  return {
    address,
    netmask: '255.255.255.0',
    family: 'IPv4',
    mac: '02:42:0a:35:00:05',
    internal,
    cidr: `${address}/24`,
  };
}

const IPV6_LINK_LOCAL: NetworkInterfaceInfo = {
  address: 'fe80::1',
  netmask: 'ffff:ffff:ffff:ffff::',
  family: 'IPv6',
  mac: '02:42:0a:35:00:05',
  internal: false,
  cidr: 'fe80::1/64',
  scopeid: 2,
};

const INTERFACES: Record<string, NetworkInterfaceInfo[]> = {
  lo: [ipv4('127.0.0.1', true)],
  eth0: [IPV6_LINK_LOCAL, ipv4('172.18.0.3')],
  eth1: [ipv4('10.53.0.7')],
};

describe('detectAddress', () => {
  it("takes the interface address inside the network, as calico-node's cidr= autodetection", () => {
    expect(String(detectAddress(Ipv4Prefix.parse('10.53.0.0/24'), INTERFACES))).toBe('10.53.0.7');
    expect(String(detectAddress(Ipv4Prefix.parse('172.16.0.0/12'), INTERFACES))).toBe('172.18.0.3');
    expect(detectAddress(Ipv4Prefix.parse('10.99.0.0/16'), INTERFACES)).toBeUndefined();
  });
});

describe('resolveSpecAddresses', () => {
  let folder: string;
  let specPath: string;
  const lines: string[] = [];
  const base = () => ({
    specPath,
    nodeName: 'kind-worker',
    datastoreTimeoutMs: 1000,
    addressesTimeoutMs: 1000,
    log: (line: string) => lines.push(line),
    interfaces: INTERFACES,
  });
  beforeEach(() => {
    folder = mkdtempSync(path.join(tmpdir(), 'addresses-'));
    specPath = path.join(folder, 'cluster.yaml');
  });
  afterEach(() => rmSync(folder, { recursive: true, force: true }));

  it('leaves a spec whose nodes all have addresses alone, without a datastore', async () => {
    const text = generateSpec({ nodes: 3 }).text;
    writeFileSync(specPath, text);
    await resolveSpecAddresses({ ...base(), datastore: undefined });
    expect(readFileSync(specPath, 'utf8')).toBe(text);
  });

  it('refuses nodes without addresses when there is no datastore to find them in', async () => {
    writeFileSync(specPath, withoutAddresses(generateSpec({ nodes: 3 }).text, 1450));
    await expect(resolveSpecAddresses({ ...base(), datastore: undefined })).rejects.toThrow(
      /3 nodes have no ip \(kind-control-plane, …\).*--datastore/,
    );
  });

  it('refuses, before it asks the datastore, when no interface is on the lab network', async () => {
    writeFileSync(specPath, withoutAddresses(generateSpec({ nodes: 3, networkCidr: '10.99.0.0/24' }).text, 1450));
    const attempt = resolveSpecAddresses({ ...base(), datastore: 'http://127.0.0.1:9' });
    await expect(attempt).rejects.toThrow(AddressDiscoveryError);
    await expect(resolveSpecAddresses({ ...base(), datastore: 'http://127.0.0.1:9' })).rejects.toThrow(
      /kind-worker has no ip in the spec and none of this machine's interfaces has an address in network\.cidr 10\.99\.0\.0\/24/,
    );
    expect(lines.filter((line) => line.includes('waiting for the datastore'))).toEqual([]);
  });

  it('follows a node registered at a new address into the spec, and leaves the others and unknown names alone', () => {
    const text = generateSpec({ nodes: 3, networkCidr: '10.53.0.0/24' }).text;
    writeFileSync(specPath, text);
    const registered = new Map([
      ['kind-control-plane', Ipv4Address.parse('10.53.0.2')],
      ['kind-worker', Ipv4Address.parse('10.53.0.40')],
      ['not-in-the-spec', Ipv4Address.parse('10.53.0.41')],
    ]);
    expect(followRegisteredAddresses(specPath, registered)).toEqual(['kind-worker']);
    const after = readFileSync(specPath, 'utf8');
    expect(after).toContain('- { name: kind-worker, ip: 10.53.0.40, role: worker }');
    expect(after).toContain('- { name: kind-worker2, ip: 10.53.0.4, role: worker }');
    expect(after).not.toContain('10.53.0.41');
    expect(followRegisteredAddresses(specPath, registered)).toEqual([]);
    expect(readFileSync(specPath, 'utf8')).toBe(after);
  });
});

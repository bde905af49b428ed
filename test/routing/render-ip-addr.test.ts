import { describe, expect, it } from 'vitest';
import type { Link } from '../../src/routing/link.js';
import { renderIpAddr } from '../../src/routing/render.js';
import {
  addr,
  busyboxPodLoAndTunl0,
  lines,
  loopbackLink,
  podTunl0Link,
  tunl0Link,
} from '../support/routing-fixtures.js';

/** hello-world pod 192.168.158.2 on worker-node02, as seed 1 shows it from inside (busybox `ip`). */
const seedPod: Link[] = [
  loopbackLink,
  podTunl0Link,
  {
    index: 4,
    name: 'eth0',
    parent: 'if8',
    flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
    mtu: 1480,
    qdisc: 'noqueue',
    state: 'UP',
    linkType: 'ether',
    linkAddress: 'a6:ee:aa:de:ef:4f',
    linkBroadcast: 'ff:ff:ff:ff:ff:ff',
    linkNetns: '0',
    addresses: [
      {
        address: addr('192.168.158.2'),
        prefixLength: 32,
        broadcast: addr('192.168.158.2'),
        scope: 'global',
        label: 'eth0',
      },
    ],
  },
];

describe('renderIpAddr', () => {
  it('reproduces seed 1: `ip addr` inside the hello-world pod (busybox), byte for byte', () => {
    expect(renderIpAddr(seedPod, { style: 'busybox' })).toBe(
      lines(
        ...busyboxPodLoAndTunl0,
        '4: eth0@if8: <BROADCAST,MULTICAST,UP,LOWER_UP,M-DOWN> mtu 1480 qdisc noqueue state UP ',
        '    link/ether a6:ee:aa:de:ef:4f brd ff:ff:ff:ff:ff:ff',
        '    inet 192.168.158.2/32 brd 192.168.158.2 scope global eth0',
        '       valid_lft forever preferred_lft forever',
      ),
    );
  });

  it('reproduces seed 1: tunl0 on master-node', () => {
    expect(renderIpAddr([tunl0Link(7, '192.168.77.128')], { style: 'iproute2' })).toBe(
      lines(
        '7: tunl0@NONE: <NOARP,UP,LOWER_UP> mtu 1480 qdisc noqueue state UNKNOWN group default qlen 1000',
        '    link/ipip 0.0.0.0 brd 0.0.0.0',
        '    inet 192.168.77.128/32 scope global tunl0',
        '       valid_lft forever preferred_lft forever',
      ),
    );
  });

  it('reproduces seed 1: tunl0 and eth1 on worker-node01, links in ifindex order', () => {
    const eth1: Link = {
      index: 3,
      name: 'eth1',
      flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
      mtu: 1500,
      qdisc: 'fq_codel',
      state: 'UP',
      qlen: 1000,
      linkType: 'ether',
      linkAddress: '08:00:27:23:f7:44',
      linkBroadcast: 'ff:ff:ff:ff:ff:ff',
      addresses: [
        {
          address: addr('10.0.0.11'),
          prefixLength: 24,
          broadcast: addr('10.0.0.255'),
          scope: 'global',
          label: 'eth1',
        },
      ],
      addresses6: [{ address: 'fe80::a00:27ff:fe23:f744', prefixLength: 64, scope: 'link' }],
    };
    const rendered = renderIpAddr([tunl0Link(8, '192.168.87.192'), eth1], { style: 'iproute2' });
    const eth1Block = lines(
      '3: eth1: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UP group default qlen 1000',
      '    link/ether 08:00:27:23:f7:44 brd ff:ff:ff:ff:ff:ff',
      '    inet 10.0.0.11/24 brd 10.0.0.255 scope global eth1',
      '       valid_lft forever preferred_lft forever',
      '    inet6 fe80::a00:27ff:fe23:f744/64 scope link ',
      '       valid_lft forever preferred_lft forever',
    );
    const tunl0Block = lines(
      '8: tunl0@NONE: <NOARP,UP,LOWER_UP> mtu 1480 qdisc noqueue state UNKNOWN group default qlen 1000',
      '    link/ipip 0.0.0.0 brd 0.0.0.0',
      '    inet 192.168.87.192/32 scope global tunl0',
      '       valid_lft forever preferred_lft forever',
    );
    expect(rendered).toBe(eth1Block + tunl0Block);
  });

  it('shows the same pod eth0 the iproute2 way: link-netnsid, no M-DOWN for a peer in another namespace', () => {
    expect(renderIpAddr([seedPod[2]], { style: 'iproute2' })).toBe(
      lines(
        '4: eth0@if8: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1480 qdisc noqueue state UP group default ',
        '    link/ether a6:ee:aa:de:ef:4f brd ff:ff:ff:ff:ff:ff link-netnsid 0',
        '    inet 192.168.158.2/32 brd 192.168.158.2 scope global eth0',
        '       valid_lft forever preferred_lft forever',
      ),
    );
  });

  it('names a cali veth peer namespace, and flags M-DOWN only for a known peer that is down', () => {
    const cali: Link = {
      index: 8,
      name: 'cali6d8ff9bc555',
      parent: 'if4',
      flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
      mtu: 1480,
      qdisc: 'noqueue',
      state: 'UP',
      qlen: 1000,
      linkType: 'ether',
      linkAddress: 'ee:ee:ee:ee:ee:ee',
      linkBroadcast: 'ff:ff:ff:ff:ff:ff',
      linkNetns: 'cni-5b7bdbb7-7f2b-1d4c-6b4e-2b0c31d2a4c5',
      addresses: [],
    };
    expect(renderIpAddr([cali], { style: 'iproute2' })).toBe(
      lines(
        '8: cali6d8ff9bc555@if4: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1480 qdisc noqueue state UP group default qlen 1000',
        '    link/ether ee:ee:ee:ee:ee:ee brd ff:ff:ff:ff:ff:ff link-netns cni-5b7bdbb7-7f2b-1d4c-6b4e-2b0c31d2a4c5',
      ),
    );

    // A VLAN-style link in the same namespace: iproute2 resolves the parent and checks whether it is up.
    const parent: Link = { ...cali, index: 2, name: 'eth0', parent: undefined, linkNetns: undefined };
    const child: Link = { ...cali, index: 5, name: 'eth0.10', parent: 'eth0', linkNetns: undefined };
    const header = (links: Link[]): string | undefined =>
      renderIpAddr(links, { style: 'iproute2' })
        .split('\n')
        .find((line) => line.startsWith('5:'));
    expect(header([parent, child])).toContain('<BROADCAST,MULTICAST,UP,LOWER_UP> ');
    expect(header([{ ...parent, flags: ['BROADCAST', 'MULTICAST'] }, child])).toContain(',LOWER_UP,M-DOWN> ');
    expect(header([child])).toContain('<BROADCAST,MULTICAST,UP,LOWER_UP> ');
  });
});

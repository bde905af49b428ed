import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Ipv4Address, Ipv4Prefix } from '../../src/routing/address.js';
import { renderIpAddr, renderIpRoute, renderRoute } from '../../src/routing/render.js';
import type { Route } from '../../src/routing/route.js';
import { buildCluster, type ClusterState } from '../../src/calico/cluster.js';
import { nodeDataplane, podDataplane } from '../../src/calico/felix.js';
import { parseSpec, type ClusterSpec } from '../../src/calico/spec.js';
import { busyboxPodLoAndTunl0, loopbackLink, podTunl0Link, tunl0Link } from '../support/routing-fixtures.js';

/** Seed 1's cluster, as the lab ships it in containers/cni-overview. */
function seedSpec(): ClusterSpec {
  const file = path.resolve('containers', 'cni-overview', 'cluster.yaml');
  return parseSpec(readFileSync(file, 'utf8'), {
    source: file,
    readFile: (relative) => readFileSync(path.resolve(path.dirname(file), relative), 'utf8'),
  });
}

const ip = (text: string) => Ipv4Address.parse(text);
const prefix = (text: string) => Ipv4Prefix.parse(text);

function tunnelRoute(destination: string, gateway: string): Route {
  return {
    kind: 'unicast',
    destination: prefix(destination),
    gateway: ip(gateway),
    dev: 'tunl0',
    onlink: true,
    scope: 'global',
    proto: 'bird',
  };
}

function connected(source: string): Route {
  return {
    kind: 'unicast',
    destination: prefix('10.0.0.0/24'),
    dev: 'eth0',
    scope: 'link',
    proto: 'kernel',
    source: ip(source),
  };
}

/** felix's routes for a node, in felix's order. */
/** `ip route` as the kernel sorts it, one trimmed line per route. */
function ipRouteLines(routes: Iterable<Route>): string[] {
  return renderIpRoute(routes)
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
}

function routesOn(cluster: ClusterState, nodeName: string): Route[] {
  return [...nodeDataplane(cluster, nodeName).routes];
}

/** The route the kernel would pick: longest prefix first. */
function lookup(routes: readonly Route[], address: Ipv4Address): Route | undefined {
  return routes
    .filter((route) => route.destination.contains(address))
    .sort((a, b) => b.destination.length - a.destination.length)[0];
}

/** Every pod is reachable from every other node, through the node that runs it. */
function expectFullReachability(cluster: ClusterState): void {
  for (const node of cluster.nodes) {
    const routes = routesOn(cluster, node.name);
    for (const pod of cluster.pods) {
      const route = lookup(routes, pod.ip);
      if (pod.node === node.name) expect(route).toMatchObject({ dev: pod.hostInterface });
      else expect(route).toMatchObject({ gateway: cluster.nodes.find((n) => n.name === pod.node)!.ip });
    }
  }
}

describe('nodeDataplane on seed 1', () => {
  const cluster = buildCluster(seedSpec());
  const podsOn = (name: string) => cluster.pods.filter((p) => p.node === name);

  it("gives master-node the seed's tunnel routes and its own blackhole", () => {
    expect(routesOn(cluster, 'master-node')).toEqual([
      connected('10.0.0.10'),
      tunnelRoute('192.168.87.192/26', '10.0.0.11'),
      tunnelRoute('192.168.158.0/26', '10.0.0.12'),
      { kind: 'blackhole', destination: prefix('192.168.77.128/26'), proto: 'bird' },
    ]);
  });

  it('adds a scope-link route per local pod on a worker', () => {
    const [first, second] = podsOn('worker-node01');
    expect(routesOn(cluster, 'worker-node01')).toEqual([
      connected('10.0.0.11'),
      tunnelRoute('192.168.77.128/26', '10.0.0.10'),
      tunnelRoute('192.168.158.0/26', '10.0.0.12'),
      { kind: 'blackhole', destination: prefix('192.168.87.192/26'), proto: 'bird' },
      { kind: 'unicast', destination: prefix(`${first.ip}/32`), dev: first.hostInterface, scope: 'link' },
      { kind: 'unicast', destination: prefix(`${second.ip}/32`), dev: second.hostInterface, scope: 'link' },
    ]);
    expectFullReachability(cluster);
  });

  it('makes its routes anew on each walk over them, so they can be read twice', () => {
    const { routes } = nodeDataplane(cluster, 'worker-node01');
    const first = [...routes];
    expect(first).toHaveLength(6);
    expect([...routes]).toEqual(first);
  });

  it('lists lo, tunl0, eth0 and one cali veth per local pod, as ip addr shows them', () => {
    const { links } = nodeDataplane(cluster, 'worker-node01');
    const [lo, tunl0, eth0, ...calis] = links;
    expect(lo).toEqual({ ...loopbackLink, group: 'default' });
    expect(tunl0).toEqual({ ...tunl0Link(2, '192.168.87.192'), group: 'default' });
    expect(eth0).toEqual({
      index: 3,
      name: 'eth0',
      parent: 'if4',
      flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
      mtu: 1500,
      qdisc: 'noqueue',
      state: 'UP',
      group: 'default',
      linkType: 'ether',
      linkAddress: '02:42:0a:00:00:0b',
      linkBroadcast: 'ff:ff:ff:ff:ff:ff',
      linkNetns: '0',
      addresses: [
        { address: ip('10.0.0.11'), prefixLength: 24, broadcast: ip('10.0.0.255'), scope: 'global', label: 'eth0' },
      ],
    });
    const pods = podsOn('worker-node01');
    expect(calis).toEqual(
      pods.map((pod) => ({
        index: pod.hostIfIndex,
        name: pod.hostInterface,
        parent: 'if4',
        flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
        mtu: 1480,
        qdisc: 'noqueue',
        state: 'UP',
        group: 'default',
        linkType: 'ether',
        linkAddress: 'ee:ee:ee:ee:ee:ee',
        linkBroadcast: 'ff:ff:ff:ff:ff:ff',
        linkNetns: pod.netns,
        addresses: [],
      })),
    );
    expect(links.map((l) => l.index)).toEqual([1, 2, 3, 4, 5]);
  });

  it("takes eth0 from the live interface when given, but not over another interface's index", () => {
    const live = { index: 9, parent: 'if10', mac: '02:42:0a:00:00:0b' };
    const eth0 = nodeDataplane(cluster, 'worker-node01', { eth0: live }).links.find((l) => l.name === 'eth0');
    expect(eth0).toMatchObject({ index: 9, parent: 'if10', linkAddress: live.mac });
    expect(() => nodeDataplane(cluster, 'worker-node01', { eth0: { ...live, index: 5 } })).toThrow(RangeError);
    expect(() => nodeDataplane(cluster, 'master-node', { eth0: { ...live, index: 2 } })).toThrow(/collides/);
    // master-node runs no pods, so index 4 is free there.
    expect(nodeDataplane(cluster, 'master-node', { eth0: { ...live, index: 4 } }).links.map((l) => l.index)).toEqual([
      1, 2, 4,
    ]);
  });

  it('refuses an unknown node', () => {
    expect(() => nodeDataplane(cluster, 'worker-node09')).toThrow('no node named "worker-node09"');
  });
});

describe('nodeDataplane in other IPIP modes', () => {
  const seed = seedSpec();
  const inMode = (ipipMode: ClusterSpec['pool']['ipipMode']) =>
    buildCluster({ ...seed, pool: { ...seed.pool, ipipMode } });

  it('CrossSubnet routes same-subnet peers over eth0 without the tunnel, and keeps tunl0', () => {
    const cluster = inMode('CrossSubnet');
    const { links } = nodeDataplane(cluster, 'master-node');
    const routes = routesOn(cluster, 'master-node');
    expect(routes[1]).toEqual({
      kind: 'unicast',
      destination: prefix('192.168.87.192/26'),
      gateway: ip('10.0.0.11'),
      dev: 'eth0',
      scope: 'global',
      proto: 'bird',
    });
    expect(routes.some((r) => r.kind === 'unicast' && r.dev === 'tunl0')).toBe(false);
    expect(links.map((l) => l.name)).toContain('tunl0');
  });

  it('CrossSubnet on routed subnets: the own subnet over eth0, the other through tunl0, the router for the underlay', () => {
    const network = {
      ...seed.network,
      cidr: prefix('10.36.0.0/16'),
      subnets: [prefix('10.36.1.0/24'), prefix('10.36.2.0/24')],
    };
    const nodes = seed.nodes.map((node, i) => ({ ...node, ip: ip(`10.36.${i === 2 ? 2 : 1}.${10 + i}`) }));
    const cluster = buildCluster({ ...seed, network, nodes, pool: { ...seed.pool, ipipMode: 'CrossSubnet' } });
    const lines = ipRouteLines(routesOn(cluster, 'worker-node01'));
    expect(lines).toContain('10.36.1.0/24 dev eth0 proto kernel scope link src 10.36.1.11');
    expect(lines).toContain('10.36.2.0/24 via 10.36.1.254 dev eth0');
    expect(cluster.nodes[2].blocks.length).toBeGreaterThan(0);
    for (const block of cluster.nodes[2].blocks)
      expect(lines).toContain(`${block} via 10.36.2.12 dev tunl0 proto bird onlink`);
    for (const block of cluster.nodes[0].blocks) expect(lines).toContain(`${block} via 10.36.1.10 dev eth0 proto bird`);
    const eth0 = nodeDataplane(cluster, 'worker-node02').links.find((link) => link.name === 'eth0');
    expect(eth0?.addresses).toEqual([
      { address: ip('10.36.2.12'), prefixLength: 24, broadcast: ip('10.36.2.255'), scope: 'global', label: 'eth0' },
    ]);
    // master-node shares worker-node01's subnet: plain IP between them.
    expect(ipRouteLines(routesOn(cluster, 'master-node'))).toContain(
      `${cluster.nodes[1].blocks[0]} via 10.36.1.11 dev eth0 proto bird`,
    );
  });

  it('Never has no tunl0 at all and routes every peer over eth0', () => {
    const cluster = inMode('Never');
    const { links } = nodeDataplane(cluster, 'master-node');
    const routes = routesOn(cluster, 'master-node');
    expect(links.map((l) => l.name)).toEqual(['lo', 'eth0']);
    expect(
      routes
        .filter((r) => r.kind === 'unicast' && r.gateway)
        .every((r) => r.kind === 'unicast' && r.dev === 'eth0' && !r.onlink),
    ).toBe(true);
    // No pods and no tunnel address: master-node holds no block, so it has no blackhole either.
    expect(routes.some((r) => r.kind === 'blackhole')).toBe(false);
    expectFullReachability(cluster);
  });
});

describe('nodeDataplane with borrowed addresses', () => {
  // A /26 pool is a single block: master-node claims it for its tunnel, and every other address is borrowed from it.
  const seed = seedSpec();
  const cluster = buildCluster({ ...seed, pool: { ...seed.pool, cidr: prefix('192.168.0.0/26') } });
  const worker = cluster.nodes.find((n) => n.name === 'worker-node01')!;

  it('routes each borrowed address as a /32 via the node using it, beating the owner blackhole', () => {
    const routes = routesOn(cluster, 'master-node');
    expect(routes).toContainEqual(tunnelRoute(`${worker.tunnelAddress}/32`, '10.0.0.11'));
    expect(routes).toContainEqual({ kind: 'blackhole', destination: prefix('192.168.0.0/26'), proto: 'bird' });
    expectFullReachability(cluster);
  });

  it('routes the owner block, and the other borrowers, from a borrowing node', () => {
    const routes = routesOn(cluster, 'worker-node01');
    expect(routes).toContainEqual(tunnelRoute('192.168.0.0/26', '10.0.0.10'));
    expect(routes.some((r) => r.kind === 'blackhole')).toBe(false);
    const other = cluster.nodes.find((n) => n.name === 'worker-node02')!;
    expect(routes).toContainEqual(tunnelRoute(`${other.tunnelAddress}/32`, '10.0.0.12'));
  });
});

describe('podDataplane', () => {
  const cluster = buildCluster(seedSpec());

  it("shows the seed pod's interfaces: lo, a DOWN tunl0 and eth0@if<host veth> with a /32", () => {
    const pod = cluster.pods[1];
    const { links, routes } = podDataplane(cluster, pod.name);
    expect(links).toEqual([
      loopbackLink,
      podTunl0Link,
      {
        index: 4,
        name: 'eth0',
        parent: `if${pod.hostIfIndex}`,
        flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
        mtu: 1480,
        qdisc: 'noqueue',
        state: 'UP',
        linkType: 'ether',
        linkAddress: pod.podMac,
        linkBroadcast: 'ff:ff:ff:ff:ff:ff',
        addresses: [{ address: pod.ip, prefixLength: 32, broadcast: pod.ip, scope: 'global', label: 'eth0' }],
      },
    ]);
    expect(routes).toEqual([
      { kind: 'unicast', destination: prefix('0.0.0.0/0'), gateway: ip('169.254.1.1'), dev: 'eth0', scope: 'global' },
      { kind: 'unicast', destination: prefix('169.254.1.1/32'), dev: 'eth0', scope: 'link' },
    ]);
  });

  it("points each pod's eth0 at its host veth's index", () => {
    for (const pod of cluster.pods) {
      const eth0 = podDataplane(cluster, pod.name).links.find((l) => l.name === 'eth0');
      const cali = nodeDataplane(cluster, pod.node).links.find((l) => l.name === pod.hostInterface);
      expect(eth0?.parent).toBe(`if${cali?.index}`);
      expect(cali?.parent).toBe(`if${eth0?.index}`);
    }
  });

  it('has no tunl0 when the pool never encapsulates, and refuses an unknown pod', () => {
    const seed = seedSpec();
    const never = buildCluster({ ...seed, pool: { ...seed.pool, ipipMode: 'Never' } });
    expect(podDataplane(never, never.pods[0].name).links.map((l) => l.name)).toEqual(['lo', 'eth0']);
    expect(() => podDataplane(cluster, 'hello-world-x-y')).toThrow('no pod named "hello-world-x-y"');
  });
});

describe('rendered as the seed shows it', () => {
  const cluster = buildCluster(seedSpec());

  it("matches the seed pod's ip addr, up to its address, MAC and host veth", () => {
    const pod = cluster.pods[1];
    expect(renderIpAddr(podDataplane(cluster, pod.name).links, { style: 'busybox' })).toBe(
      [
        ...busyboxPodLoAndTunl0,
        `4: eth0@if${pod.hostIfIndex}: <BROADCAST,MULTICAST,UP,LOWER_UP,M-DOWN> mtu 1480 qdisc noqueue state UP `,
        `    link/ether ${pod.podMac} brd ff:ff:ff:ff:ff:ff`,
        `    inet ${pod.ip}/32 brd ${pod.ip} scope global eth0`,
        '       valid_lft forever preferred_lft forever',
        '',
      ].join('\n'),
    );
  });

  it("matches master-node's tunl0 in ip addr, up to its index", () => {
    const tunl0 = nodeDataplane(cluster, 'master-node').links.filter((l) => l.name === 'tunl0');
    expect(renderIpAddr(tunl0, { style: 'iproute2' })).toBe(
      [
        '2: tunl0@NONE: <NOARP,UP,LOWER_UP> mtu 1480 qdisc noqueue state UNKNOWN group default qlen 1000',
        '    link/ipip 0.0.0.0 brd 0.0.0.0',
        '    inet 192.168.77.128/32 scope global tunl0',
        '       valid_lft forever preferred_lft forever',
        '',
      ].join('\n'),
    );
  });

  it("matches the seed's route lines for master-node's Calico routes", () => {
    const names = (address: Ipv4Address) => cluster.nodes.find((n) => n.ip.equals(address))?.name;
    const lines = renderRoute(nodeDataplane(cluster, 'master-node').routes, {
      numeric: false,
      resolveHost: names,
    }).split('\n');
    expect(lines).toContain('192.168.87.192  worker-node01   255.255.255.192 UG    0      0        0 tunl0');
    expect(lines).toContain('192.168.158.0   worker-node02   255.255.255.192 UG    0      0        0 tunl0');
    expect(lines).toContain('192.168.77.128  0.0.0.0         255.255.255.192 U     0      0        0 *');
  });
});

/**
 * syncKernelRoutes over a fake iproute2: what `ip route show table main` prints in a node container (Docker's
 * default route, the connected eth0 route, tunnel routes `linkdown` while the TUN has no reader, the trailing space
 * after each line, a user's own routes) and the exact `ip -batch` lines that converge it to Calico's routes.
 */
import { describe, expect, it } from 'vitest';
import { buildCluster, nodeDataplane } from '../../../src/calico/index.js';
import { isCalicoRoute, syncKernelRoutes, type RouteTools } from '../../../src/node/kernel/kernel-routes.js';
import { Ipv4Address } from '../../../src/routing/address.js';
import type { Route } from '../../../src/routing/route.js';
import { lines, pod } from '../../support/routing-fixtures.js';
import { seedCluster, seedSpec } from '../../support/seed-cluster.js';

const SEED = seedCluster();

/** master-node's routes as Felix and BIRD make them, and a pod on it (the seed schedules none there). */
const POD_ROUTE = pod('192.168.77.144', 'cali4e2a9b5c7d1');
const MASTER_ROUTES: Route[] = [...nodeDataplane(SEED, 'master-node').routes, POD_ROUTE];

interface FakeIp {
  tools: RouteTools;
  ipCalls: string[][];
  batches: string[][];
}

function fakeIp(table: string, failures: { ip?: Error; batch?: Error } = {}): FakeIp {
  const ipCalls: string[][] = [];
  const batches: string[][] = [];
  return {
    ipCalls,
    batches,
    tools: {
      ip: (args) => {
        ipCalls.push([...args]);
        return failures.ip ? Promise.reject(failures.ip) : Promise.resolve(table);
      },
      batch: (batch) => {
        batches.push([...batch]);
        return failures.batch ? Promise.reject(failures.batch) : Promise.resolve();
      },
    },
  };
}

/** What Docker and the kernel put in a node container's table before the agent runs. */
const DOCKER_DEFAULT = 'default via 10.0.0.1 dev eth0 ';
const CONNECTED = '10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.10 ';

/** master-node's table once converged, as `ip route` prints it with tunl0 (a TUN nobody reads yet) down. */
const CONVERGED = lines(
  DOCKER_DEFAULT,
  CONNECTED,
  '192.168.87.192/26 via 10.0.0.11 dev tunl0 proto bird onlink linkdown ',
  '192.168.158.0/26 via 10.0.0.12 dev tunl0 proto bird onlink linkdown ',
  'blackhole 192.168.77.128/26 proto bird ',
  '192.168.77.144 dev cali4e2a9b5c7d1 scope link ',
);

describe('syncKernelRoutes', () => {
  it("adds Calico's routes to a fresh container's table in Calico's exact words, leaving Docker's alone", async () => {
    const fake = fakeIp(lines(DOCKER_DEFAULT, CONNECTED));
    const result = await syncKernelRoutes(MASTER_ROUTES, fake.tools);
    expect(fake.ipCalls).toEqual([['route', 'show', 'table', 'main']]);
    expect(fake.batches).toHaveLength(1);
    expect([...fake.batches[0]].sort()).toEqual(
      [
        'route replace 192.168.87.192/26 via 10.0.0.11 dev tunl0 proto bird onlink',
        'route replace 192.168.158.0/26 via 10.0.0.12 dev tunl0 proto bird onlink',
        'route replace blackhole 192.168.77.128/26 proto bird',
        'route replace 192.168.77.144 dev cali4e2a9b5c7d1 scope link',
      ].sort(),
    );
    expect(result).toEqual({ added: 4, removed: 0 });
  });

  it("deletes stale Calico routes, adds the missing ones, and never touches a route that is not Calico's", async () => {
    const fake = fakeIp(
      lines(
        DOCKER_DEFAULT,
        CONNECTED,
        // a user's routes: via eth0, and into tunl0 without proto bird
        '172.20.0.0/16 via 10.0.0.1 dev eth0 ',
        '10.99.0.0/16 dev tunl0 scope link linkdown ',
        // wanted, printed with linkdown and extra spaces
        '192.168.87.192/26 via 10.0.0.11 dev tunl0 proto bird onlink linkdown   ',
        // a block whose node left
        '192.168.99.0/26 via 10.0.0.13 dev tunl0 proto bird onlink linkdown ',
        'blackhole 192.168.77.128/26 proto bird ',
        // a pod that left
        '192.168.77.150 dev cali0123456789a scope link linkdown ',
        '192.168.77.144  dev cali4e2a9b5c7d1 scope link',
        '',
      ),
    );
    const result = await syncKernelRoutes(MASTER_ROUTES, fake.tools);
    expect(fake.batches).toEqual([
      [
        'route del 192.168.99.0/26 via 10.0.0.13 dev tunl0 proto bird onlink',
        'route del 192.168.77.150 dev cali0123456789a scope link',
        'route replace 192.168.158.0/26 via 10.0.0.12 dev tunl0 proto bird onlink',
      ],
    ]);
    expect(result).toEqual({ added: 1, removed: 2 });
  });

  it('makes no batch call at all for a converged table', async () => {
    const fake = fakeIp(CONVERGED);
    expect(await syncKernelRoutes(MASTER_ROUTES, fake.tools)).toEqual({ added: 0, removed: 0 });
    expect(fake.batches).toEqual([]);
    expect(fake.ipCalls).toHaveLength(1);
  });

  it('moves a block to its new node: the old route is deleted before the new one is written', async () => {
    const spec = seedSpec();
    const moved = buildCluster({
      ...spec,
      nodes: spec.nodes.map((node) =>
        node.name === 'worker-node02' ? { ...node, ip: Ipv4Address.parse('10.0.0.22') } : node,
      ),
    });
    const fake = fakeIp(CONVERGED);
    const result = await syncKernelRoutes([...nodeDataplane(moved, 'master-node').routes, POD_ROUTE], fake.tools);
    expect(fake.batches).toEqual([
      [
        'route del 192.168.158.0/26 via 10.0.0.12 dev tunl0 proto bird onlink',
        'route replace 192.168.158.0/26 via 10.0.0.22 dev tunl0 proto bird onlink',
      ],
    ]);
    expect(result).toEqual({ added: 1, removed: 1 });
  });

  it('with no routes wanted (the node stops) deletes every Calico route and only those', async () => {
    const fake = fakeIp(lines(DOCKER_DEFAULT, CONNECTED, '172.20.0.0/16 via 10.0.0.1 dev eth0 ') + CONVERGED);
    expect(await syncKernelRoutes([], fake.tools)).toEqual({ added: 0, removed: 4 });
    expect(fake.batches).toEqual([
      [
        'route del 192.168.87.192/26 via 10.0.0.11 dev tunl0 proto bird onlink',
        'route del 192.168.158.0/26 via 10.0.0.12 dev tunl0 proto bird onlink',
        'route del blackhole 192.168.77.128/26 proto bird',
        'route del 192.168.77.144 dev cali4e2a9b5c7d1 scope link',
      ],
    ]);
  });

  it("converges a worker's seed table, its pods' routes included", async () => {
    const fake = fakeIp(
      lines('default via 10.0.0.1 dev eth0 ', '10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.11 '),
    );
    await syncKernelRoutes(nodeDataplane(SEED, 'worker-node01').routes, fake.tools);
    const pods = SEED.pods.filter((candidate) => candidate.node === 'worker-node01');
    expect(pods).toHaveLength(2);
    expect([...fake.batches[0]].sort()).toEqual(
      [
        'route replace 192.168.77.128/26 via 10.0.0.10 dev tunl0 proto bird onlink',
        'route replace 192.168.158.0/26 via 10.0.0.12 dev tunl0 proto bird onlink',
        'route replace blackhole 192.168.87.192/26 proto bird',
        ...pods.map((p) => `route replace ${p.ip} dev ${p.hostInterface} scope link`),
      ].sort(),
    );
  });

  it("passes on iproute2's failures", async () => {
    const unreadable = fakeIp('', { ip: new Error('Cannot open netlink socket: Operation not permitted') });
    await expect(syncKernelRoutes(MASTER_ROUTES, unreadable.tools)).rejects.toThrow(/Operation not permitted/);
    expect(unreadable.batches).toEqual([]);
    const refused = fakeIp(CONNECTED, { batch: new Error('RTNETLINK answers: Operation not permitted') });
    await expect(syncKernelRoutes(MASTER_ROUTES, refused.tools)).rejects.toThrow(/RTNETLINK/);
  });
});

describe('isCalicoRoute', () => {
  it('is every route of a node but the connected eth0 route, which the kernel makes itself', () => {
    const routes = [...nodeDataplane(SEED, 'worker-node01').routes];
    const kept = routes.filter(isCalicoRoute);
    expect(routes.filter((route) => !isCalicoRoute(route))).toEqual([
      expect.objectContaining({ dev: 'eth0', proto: 'kernel' }),
    ]);
    expect(kept).toHaveLength(routes.length - 1);
  });
});

import { describe, expect, it } from 'vitest';
import { RouteTable } from '../../src/routing/table.js';
import { addr, direct, ownBlock, pod, prefix, tunnel, via } from '../support/routing-fixtures.js';

function node01(): RouteTable {
  const table = new RouteTable();
  table.add(via('0.0.0.0/0', '10.0.0.1', 'eth0'));
  table.add(direct('10.0.0.0/24', 'eth0', { proto: 'kernel', source: addr('10.0.0.11') }));
  table.add(tunnel('192.168.77.128/26', '10.0.0.10'));
  table.add(ownBlock('192.168.87.192/26'));
  table.add(pod('192.168.87.198/32', 'cali6d8ff9bc555'));
  table.add(tunnel('192.168.158.0/26', '10.0.0.12'));
  return table;
}

describe('RouteTable', () => {
  it('forwards each destination the way worker-node01 would', () => {
    const table = node01();
    const dev = (ip: string): string => {
      const route = table.lookup(addr(ip).value);
      return route?.kind === 'unicast' ? `${route.dev}${route.gateway ? ` via ${route.gateway}` : ''}` : 'blackhole';
    };
    expect(dev('192.168.87.198')).toBe('cali6d8ff9bc555');
    expect(dev('192.168.87.199')).toBe('blackhole');
    expect(dev('192.168.87.192')).toBe('blackhole');
    expect(dev('192.168.77.130')).toBe('tunl0 via 10.0.0.10');
    expect(dev('192.168.158.3')).toBe('tunl0 via 10.0.0.12');
    expect(dev('10.0.0.12')).toBe('eth0');
    expect(dev('8.8.8.8')).toBe('eth0 via 10.0.0.1');
  });

  it('lists routes in kernel order whatever the order they were added in', () => {
    expect(
      node01()
        .routes()
        .map((route) => String(route.destination)),
    ).toEqual([
      '0.0.0.0/0',
      '10.0.0.0/24',
      '192.168.77.128/26',
      '192.168.87.192/26',
      '192.168.87.198/32',
      '192.168.158.0/26',
    ]);
  });

  it('refuses a second route to the same destination, as `ip route add` does, but replaces on request', () => {
    const table = node01();
    expect(() => table.add(tunnel('192.168.158.0/26', '10.0.0.13'))).toThrow(/File exists/);
    table.replace(tunnel('192.168.158.0/26', '10.0.0.13'));
    expect(table.size).toBe(6);
    const route = table.get(prefix('192.168.158.0/26'));
    expect(route?.kind === 'unicast' && String(route.gateway)).toBe('10.0.0.13');
  });

  it('refuses a destination with host bits set, as the kernel does', () => {
    const table = new RouteTable();
    expect(() => table.add(direct('10.0.0.11/24', 'eth0'))).toThrow('Invalid prefix for given prefix length');
    expect(() => table.replace(direct('10.0.0.11/24', 'eth0'))).toThrow(RangeError);
    expect(table.size).toBe(0);
  });

  it('removes by destination, uncovering the shorter route', () => {
    const table = node01();
    expect(table.remove(prefix('192.168.87.198/32'))).toBe(true);
    expect(table.remove(prefix('192.168.87.198/32'))).toBe(false);
    expect(table.lookup(addr('192.168.87.198').value)?.kind).toBe('blackhole');
    expect(table.size).toBe(5);
  });

  it('shares one next hop among the routes that agree on all but the destination, grouped or not', () => {
    const table = new RouteTable();
    table.add(tunnel('192.168.1.0/26', '10.0.0.11'));
    table.add(tunnel('192.168.1.64/26', '10.0.0.11'));
    table.add(tunnel('192.168.2.0/26', '10.0.0.12'));
    table.add(tunnel('192.168.1.128/26', '10.0.0.11'));
    table.add(via('192.168.1.192/26', '10.0.0.11', 'tunl0', { proto: 'bird' })); // no onlink: not the same
    const hop = (ip: string) => table.lookup(addr(ip).value);
    expect(hop('192.168.1.1')).toBe(hop('192.168.1.65'));
    expect(hop('192.168.1.1')).toBe(hop('192.168.1.129'));
    expect(hop('192.168.1.1')).not.toBe(hop('192.168.2.1'));
    expect(hop('192.168.1.1')).not.toBe(hop('192.168.1.193'));
    // Each route came with its own gateway object: addresses are compared by value.
    expect(hop('192.168.1.1')).toEqual({
      kind: 'unicast',
      gateway: addr('10.0.0.11'),
      dev: 'tunl0',
      scope: 'global',
      proto: 'bird',
      onlink: true,
    });
  });

  it('lets go of a next hop once no route uses it', () => {
    const table = node01();
    const shared = () => (table as unknown as { nextHops: { byKey: Map<string, unknown> } }).nextHops.byKey.size;
    expect(shared()).toBe(6);
    table.replace(tunnel('192.168.158.0/26', '10.0.0.10')); // now the same as 192.168.77.128/26's
    expect(shared()).toBe(5);
    table.replace(tunnel('192.168.158.0/26', '10.0.0.10')); // the same again: kept
    expect(shared()).toBe(5);
    table.remove(prefix('192.168.77.128/26'));
    expect(shared()).toBe(5);
    table.remove(prefix('192.168.158.0/26'));
    expect(shared()).toBe(4);
    for (const route of table.routes()) table.remove(route.destination);
    expect(shared()).toBe(0);
    table.add(tunnel('192.168.158.0/26', '10.0.0.12'));
    expect(table.routes()).toEqual([tunnel('192.168.158.0/26', '10.0.0.12')]);
  });

  it('gives back routes equal to those added, keys in their order after kind and destination', () => {
    const table = node01();
    const connected = direct('10.0.0.0/24', 'eth0', { proto: 'kernel', source: addr('10.0.0.11') });
    expect(table.get(prefix('10.0.0.0/24'))).toEqual(connected);
    expect(table.routes()).toContainEqual(tunnel('192.168.77.128/26', '10.0.0.10'));
    expect(JSON.stringify(table.get(prefix('10.0.0.0/24')))).toBe(
      '{"kind":"unicast","destination":"10.0.0.0/24","dev":"eth0","scope":"link",' +
        '"proto":"kernel","source":"10.0.0.11"}',
    );
  });
});

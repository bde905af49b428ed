import { describe, expect, it } from 'vitest';
import { renderIpRoute } from '../../src/routing/render.js';
import type { Route } from '../../src/routing/route.js';
import { RouteTable } from '../../src/routing/table.js';
import { addr, blackhole, direct, lines, ownBlock, pod, tunnel, via } from '../support/routing-fixtures.js';

function inKernelOrder(routes: Route[]): Route[] {
  const table = new RouteTable();
  for (const route of [...routes].reverse()) table.add(route);
  return table.routes();
}

describe('renderIpRoute (iproute2 ip route)', () => {
  // vectors/environment.txt: routes added by hand with `ip route add`, hence no `proto` on Calico's three shapes.
  it('reproduces node 10.0.0.10 of the capture lab', () => {
    const routes = inKernelOrder([
      direct('10.0.0.0/24', 'eth0', { proto: 'kernel', source: addr('10.0.0.10') }),
      direct('169.254.1.1/32', 'lo'),
      blackhole('192.168.77.128/26'),
      pod('192.168.77.130/32', 'cali932a51510af'),
      via('192.168.87.192/26', '10.0.0.11', 'tunl0', { onlink: true }),
    ]);
    expect(renderIpRoute(routes)).toBe(
      lines(
        '10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.10 ',
        '169.254.1.1 dev lo scope link ',
        'blackhole 192.168.77.128/26 ',
        '192.168.77.130 dev cali932a51510af scope link ',
        '192.168.87.192/26 via 10.0.0.11 dev tunl0 onlink ',
      ),
    );
  });

  it('reproduces node 10.0.0.11 of the capture lab, the remote block sorting before its own', () => {
    const routes = inKernelOrder([
      pod('192.168.87.198/32', 'cali6e501784766'),
      blackhole('192.168.87.192/26'),
      via('192.168.77.128/26', '10.0.0.10', 'tunl0', { onlink: true }),
      direct('169.254.1.1/32', 'lo'),
      direct('10.0.0.0/24', 'eth0', { proto: 'kernel', source: addr('10.0.0.11') }),
    ]);
    expect(renderIpRoute(routes)).toBe(
      lines(
        '10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.11 ',
        '169.254.1.1 dev lo scope link ',
        '192.168.77.128/26 via 10.0.0.10 dev tunl0 onlink ',
        'blackhole 192.168.87.192/26 ',
        '192.168.87.198 dev cali6e501784766 scope link ',
      ),
    );
  });

  it('reproduces a pod of the capture lab: default via the link-local gateway', () => {
    const routes = inKernelOrder([direct('169.254.1.1/32', 'eth0'), via('0.0.0.0/0', '169.254.1.1', 'eth0')]);
    expect(renderIpRoute(routes)).toBe(lines('default via 169.254.1.1 dev eth0 ', '169.254.1.1 dev eth0 scope link '));
  });

  it('prints BIRD-programmed Calico routes with proto bird, as CALICO-FACTS shows them', () => {
    const routes = inKernelOrder([
      ownBlock('192.168.77.128/26'),
      pod('192.168.77.144/32', 'cali3695aa26d3f'),
      tunnel('192.168.87.192/26', '10.0.0.11'),
      via('192.168.158.0/26', '10.0.0.12', 'eth0', { proto: 'bird' }),
    ]);
    expect(renderIpRoute(routes)).toBe(
      lines(
        'blackhole 192.168.77.128/26 proto bird ',
        '192.168.77.144 dev cali3695aa26d3f scope link ',
        '192.168.87.192/26 via 10.0.0.11 dev tunl0 proto bird onlink ',
        '192.168.158.0/26 via 10.0.0.12 dev eth0 proto bird ',
      ),
    );
  });

  it('puts proto, scope, src and metric in iproute2 order and prints a numeric proto as a number', () => {
    const routes: Route[] = [
      via('0.0.0.0/0', '10.0.2.2', 'eth0', { proto: 'dhcp', source: addr('10.0.2.15'), metric: 100 }),
      direct('10.0.2.2/32', 'eth0', { proto: 'dhcp', source: addr('10.0.2.15'), metric: 100 }),
      via('192.168.87.192/26', '10.0.0.11', 'tunl0', { proto: 80, onlink: true, metric: 1024 }),
      blackhole('192.168.77.128/26', { proto: 80, metric: 1024 }),
      via('10.96.0.0/12', '10.0.0.1', 'eth0', { proto: 'static', metric: 0 }),
      via('10.244.0.0/16', '10.0.0.1', 'eth0', { proto: 'boot' }),
    ];
    expect(renderIpRoute(routes)).toBe(
      lines(
        'default via 10.0.2.2 dev eth0 proto dhcp src 10.0.2.15 metric 100 ',
        '10.0.2.2 dev eth0 proto dhcp scope link src 10.0.2.15 metric 100 ',
        '192.168.87.192/26 via 10.0.0.11 dev tunl0 proto 80 metric 1024 onlink ',
        'blackhole 192.168.77.128/26 proto 80 metric 1024 ',
        '10.96.0.0/12 via 10.0.0.1 dev eth0 proto static ',
        '10.244.0.0/16 via 10.0.0.1 dev eth0 ',
      ),
    );
  });

  it('keeps the prefix length of a zero network that is not the default route', () => {
    expect(renderIpRoute([blackhole('0.0.0.0/8'), blackhole('0.0.0.0/32')])).toBe(
      lines('blackhole 0.0.0.0/8 ', 'blackhole 0.0.0.0 '),
    );
  });
});

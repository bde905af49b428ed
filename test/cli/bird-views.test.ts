/**
 * BIRD's replies as the node's birdcl prints them, against the outputs quoted in
 * /work/shared/facts/CALICO-CONTROL-PLANE.md §1b and §1c (a fixed clock; every time is UTC).
 */
import { describe, expect, it } from 'vitest';
import {
  BIRD_GREETING,
  birdclText,
  birdFibHash,
  birdProtocols,
  birdRoutes,
  birdSocketText,
  birdTime,
  showProtocols,
  showRoute,
  type BirdRoute,
} from '../../src/cli/bird-views.js';
import { expandCommand } from '../../src/cli/birdcl.js';
import type { NeighbourStatus, SpeakerStatus } from '../../src/node/bgp/index.js';
import { Ipv4Address, Ipv4Prefix } from '../../src/routing/address.js';

const DAY = '2024-05-01';
const at = (time: string): string => `${DAY}T${time}.000Z`;
const NOW = Date.parse(at('16:30:00'));

function neighbour(name: string, state: NeighbourStatus['state'], since: string, lastError?: string): NeighbourStatus {
  const [kind, ...octets] = name.split('_');
  const type = kind === 'Mesh' ? 'node-to-node mesh' : kind === 'Global' ? 'global' : 'node specific';
  return {
    name,
    address: octets.join('.'),
    type,
    state,
    since: at(since),
    ...(lastError !== undefined && { lastError }),
    routesReceived: 0,
  };
}

function speaker(neighbours: NeighbourStatus[], startedAt = at('16:01:01')): SpeakerStatus {
  return { routerId: '172.19.0.3', as: 64512, startedAt, neighbours, exported: [], routes: [] };
}

describe('show protocols', () => {
  it("prints the calico-node write-up's table, padded as BIRD's printf pads it", () => {
    const status = speaker([
      neighbour('Mesh_172_19_0_4', 'Established', '16:01:02'),
      neighbour('Mesh_172_19_0_2', 'Established', '16:01:03'),
      neighbour('Global_192_20_30_40', 'Connect', '16:17:38'),
    ]);
    const text = birdclText([BIRD_GREETING, ...showProtocols(birdProtocols(status), NOW)]);
    // Facts §1b, with the trailing spaces BIRD's `%-10s  %s` and `%-14s` leave (the write-up lost them).
    expect(text).toBe(
      [
        'BIRD v0.3.3+birdv1.6.8 ready.',
        'name     proto    table    state  since       info',
        'static1  Static   master   up     16:01:01    ',
        'kernel1  Kernel   master   up     16:01:01    ',
        'device1  Device   master   up     16:01:01    ',
        'direct1  Direct   master   up     16:01:01    ',
        'Mesh_172_19_0_4 BGP      master   up     16:01:02    Established   ',
        'Mesh_172_19_0_2 BGP      master   up     16:01:03    Established   ',
        'Global_192_20_30_40 BGP      master   start  16:17:38    Connect       ',
        '',
      ].join('\n'),
    );
    expect(text.split('\n').map((line) => line.trimEnd())).toEqual([
      'BIRD v0.3.3+birdv1.6.8 ready.',
      'name     proto    table    state  since       info',
      'static1  Static   master   up     16:01:01',
      'kernel1  Kernel   master   up     16:01:01',
      'device1  Device   master   up     16:01:01',
      'direct1  Direct   master   up     16:01:01',
      'Mesh_172_19_0_4 BGP      master   up     16:01:02    Established',
      'Mesh_172_19_0_2 BGP      master   up     16:01:03    Established',
      'Global_192_20_30_40 BGP      master   start  16:17:38    Connect',
      '',
    ]);
  });

  it('frames the reply on the socket as BIRD does: 2002- then 1002- then continuations, 0000 last', () => {
    const status = speaker([neighbour('Node_10_161_1_1', 'Established', '05:21:27')], at('16:36:22'));
    const protocols = birdProtocols(status).filter((p) => p.name !== 'static1');
    const raw = birdSocketText([
      { code: 1, text: 'BIRD 1.5.0 ready.' },
      ...showProtocols(protocols, Date.parse(at('17:00:00'))),
    ]);
    // Facts §1b's raw sample (calicoctl#1281), trailing spaces restored.
    expect(raw).toBe(
      [
        '0001 BIRD 1.5.0 ready.',
        '2002-name     proto    table    state  since       info',
        '1002-kernel1  Kernel   master   up     16:36:22    ',
        ' device1  Device   master   up     16:36:22    ',
        ' direct1  Direct   master   up     16:36:22    ',
        ' Node_10_161_1_1 BGP      master   up     05:21:27    Established   ',
        '0000 ',
        '',
      ].join('\n'),
    );
  });

  it("prints a session that is not up as BIRD's bgp_get_status does: state padded to 14, then the last error", () => {
    const status = speaker([
      neighbour('Mesh_10_2_147_44', 'Active', '00:21:18', 'Socket: Connection refused'),
      neighbour('Mesh_10_2_167_162', 'Passive', '00:21:18'),
      neighbour('Mesh_10_2_1_1', 'Idle', '00:21:18', 'BGP Error: Hold timer expired'),
      neighbour('Mesh_10_2_1_2', 'Down', '00:21:18', 'Received: Administrative shutdown'),
    ]);
    const rows = showProtocols(birdProtocols(status), Date.parse(at('01:00:00')))
      .slice(5, -1)
      .map((m) => m.text);
    expect(rows).toEqual([
      'Mesh_10_2_147_44 BGP      master   start  00:21:18    Active        Socket: Connection refused',
      'Mesh_10_2_167_162 BGP      master   start  00:21:18    Passive       ',
      'Mesh_10_2_1_1 BGP      master   start  00:21:18    Idle          BGP Error: Hold timer expired',
      'Mesh_10_2_1_2 BGP      master   down   00:21:18    Received: Administrative shutdown',
    ]);
  });

  it('prints -v replies with their codes, as birdcl -v does', () => {
    const text = birdclText(
      [BIRD_GREETING, ...showProtocols(birdProtocols(speaker([])), NOW).slice(0, 3), { code: 0, text: '' }],
      true,
    );
    expect(text).toBe(
      [
        '0001 BIRD v0.3.3+birdv1.6.8 ready.',
        '2002-name     proto    table    state  since       info',
        '1002-static1  Static   master   up     16:01:01    ',
        '     kernel1  Kernel   master   up     16:01:01    ',
        '',
      ].join('\n'),
    );
  });
});

describe("BIRD's time format", () => {
  it('prints HH:MM:SS under 20 hours ago, then the date (UTC)', () => {
    const now = Date.parse('2024-05-02T12:00:00Z');
    expect(birdTime('2024-05-01T16:00:01.900Z', now)).toBe('16:00:01');
    expect(birdTime('2024-05-01T16:00:00Z', now)).toBe('2024-05-01');
    expect(birdTime('2024-05-01T16:00:01Z', now)).toBe('16:00:01');
  });
});

describe('show route', () => {
  // Facts §1c: calico's route_test.go sample, a node whose block is 192.168.162.128/26 with one pod.
  const status: SpeakerStatus = {
    routerId: '172.17.0.3',
    as: 64512,
    startedAt: at('20:10:56'),
    neighbours: [
      neighbour('Mesh_172_17_0_5', 'Established', '20:10:57'),
      neighbour('Mesh_172_17_0_4', 'Established', '20:10:59'),
    ],
    exported: ['192.168.162.128/26'],
    routes: [
      // What the wire gives: addresses and prefixes as text.
      { destination: '192.168.82.0/26', nextHop: '172.17.0.4', from: 'Mesh_172_17_0_4', since: at('20:11:00') },
      { destination: '192.168.110.128/26', nextHop: '172.17.0.5', from: 'Mesh_172_17_0_5', since: at('20:10:57') },
    ] as unknown as SpeakerStatus['routes'],
  };
  const links = [
    { name: 'lo', addresses: [{ address: '127.0.0.1', prefixLength: 8, scope: 'host' }] },
    { name: 'tunl0', addresses: [{ address: '192.168.162.128', prefixLength: 32, scope: 'global' }] },
    { name: 'eth0', addresses: [{ address: '172.17.0.3', prefixLength: 16, scope: 'global' }] },
    { name: 'calie58e37f9a7f', addresses: [] },
  ] as any;
  const routes = [
    { kind: 'unicast', destination: '0.0.0.0/0', gateway: '172.17.0.1', dev: 'eth0', scope: 'global' },
    { kind: 'unicast', destination: '172.17.0.0/16', dev: 'eth0', scope: 'link', proto: 'kernel' },
    {
      kind: 'unicast',
      destination: '192.168.82.0/26',
      gateway: '172.17.0.4',
      dev: 'tunl0',
      onlink: true,
      scope: 'global',
      proto: 'bird',
    },
    { kind: 'blackhole', destination: '192.168.162.128/26', proto: 'bird' },
    { kind: 'unicast', destination: '192.168.162.129/32', dev: 'calie58e37f9a7f', scope: 'link' },
  ] as any;

  it("orders the networks as BIRD's FIB hash does, and reads every route as BIRD's table holds it", () => {
    const table = birdRoutes({ status, links, routes });
    expect(table.map((r) => r.network)).toEqual([
      '0.0.0.0/0',
      '192.168.110.128/26',
      '192.168.82.0/26',
      '192.168.162.128/26',
      '192.168.162.128/32',
      '192.168.162.129/32',
      '172.17.0.0/16',
    ]);
    expect([0, 3624, 12968, 49704, 50729, 59409]).toEqual(
      ['0.0.0.0', '192.168.110.128', '192.168.82.0', '192.168.162.128', '192.168.162.129', '172.17.0.0'].map((a) =>
        birdFibHash(Ipv4Address.parse(a)),
      ),
    );
    // The sample's kernel1 times are when BIRD's scan found those routes, which the agent does not report: give them.
    const learnedAt: Record<string, string> = { '0.0.0.0/0': at('20:10:57'), '192.168.162.129/32': at('20:11:10') };
    const timed = table.map((r): BirdRoute => ({ ...r, since: learnedAt[r.network] ?? r.since }));
    expect(birdSocketText([{ code: 1, text: 'BIRD v0.3.3+birdv1.6.8 ready.' }, ...showRoute(timed, NOW)])).toBe(
      [
        '0001 BIRD v0.3.3+birdv1.6.8 ready.',
        '1007-0.0.0.0/0          via 172.17.0.1 on eth0 [kernel1 20:10:57] * (10)',
        ' 192.168.110.128/26 via 172.17.0.5 on eth0 [Mesh_172_17_0_5 20:10:57] * (100/0) [i]',
        ' 192.168.82.0/26    via 172.17.0.4 on eth0 [Mesh_172_17_0_4 20:11:00] * (100/0) [i]',
        ' 192.168.162.128/26 blackhole [static1 20:10:56] * (200)',
        ' 192.168.162.128/32 dev tunl0 [direct1 20:10:56] * (240)',
        ' 192.168.162.129/32 dev calie58e37f9a7f [kernel1 20:11:10] * (10)',
        ' 172.17.0.0/16      dev eth0 [direct1 20:10:56] * (240)',
        '0000 ',
        '',
      ].join('\n'),
    );
  });

  it('prints a second route of a network without its prefix, and `from` a neighbour that is not the next hop', () => {
    // Facts §1c, Calico's troubleshooting page: node 10.0.0.11 with block 10.48.231.0/26.
    const docs: SpeakerStatus = {
      ...speaker([neighbour('Mesh_10_0_0_12', 'Established', '18:13:40')], at('18:13:32')),
      routes: [
        { destination: '10.48.231.0/26', nextHop: '10.0.0.10', from: 'Mesh_10_0_0_12', since: at('18:13:41') },
      ] as unknown as SpeakerStatus['routes'],
    };
    const table = birdRoutes({
      status: docs,
      links: [{ name: 'eth0', addresses: [{ address: '10.0.0.11', prefixLength: 24, scope: 'global' }] }] as any,
      routes: [{ kind: 'blackhole', destination: '10.48.231.0/26', proto: 'bird' }] as any,
    });
    const lines = birdclText(showRoute(table, Date.parse(at('18:20:00')))).split('\n');
    const block = lines.findIndex((line) => line.startsWith('10.48.231.0/26'));
    expect(lines.slice(block, block + 2)).toEqual([
      '10.48.231.0/26     blackhole [static1 18:13:32] * (200)',
      '                   via 10.0.0.10 on eth0 [Mesh_10_0_0_12 18:13:41 from 10.0.0.12] (100/0) [i]',
    ]);
  });

  it('narrows to a network, a protocol or a count as BIRD does', () => {
    const table = birdRoutes({ status, links, routes });
    const text = (options: Parameters<typeof showRoute>[2]): string => birdclText(showRoute(table, NOW, options));
    const prefix = (p: string): { prefix: Ipv4Prefix; longestMatch: boolean } => ({
      prefix: Ipv4Prefix.parse(p),
      longestMatch: true,
    });
    expect(text({ network: prefix('192.168.82.7/32') })).toBe(
      '192.168.82.0/26    via 172.17.0.4 on eth0 [Mesh_172_17_0_4 20:11:00] * (100/0) [i]\n',
    );
    expect(text({ network: prefix('10.9.9.9/32') })).toBe(
      '0.0.0.0/0          via 172.17.0.1 on eth0 [kernel1 20:10:56] * (10)\n',
    );
    expect(text({ protocol: 'Mesh_172_17_0_5' })).toBe(
      '192.168.110.128/26 via 172.17.0.5 on eth0 [Mesh_172_17_0_5 20:10:57] * (100/0) [i]\n',
    );
    expect(text({ count: true })).toBe('7 of 7 routes for 7 networks\n');
    expect(text({ protocol: 'direct1', count: true })).toBe('2 of 7 routes for 7 networks\n');
  });

  it('says an unresolvable next hop as BIRD does: unreachable, from the neighbour, (100/-)', () => {
    const far: SpeakerStatus = {
      ...speaker([neighbour('Mesh_10_128_0_244', 'Established', '09:23:20')]),
      routes: [
        { destination: '10.1.0.0/26', nextHop: '10.128.0.244', from: 'Mesh_10_128_0_244', since: at('09:23:24') },
      ] as unknown as SpeakerStatus['routes'],
    };
    const [route] = birdRoutes({ status: far, links: [], routes: [] });
    expect(birdclText(showRoute([{ ...route, primary: false }], Date.parse(at('10:00:00'))))).toBe(
      '10.1.0.0/26        unreachable [Mesh_10_128_0_244 09:23:24 from 10.128.0.244] (100/-) [i]\n',
    );
  });
});

describe("birdcl's command expansion", () => {
  it('expands unique abbreviations and keeps the arguments', () => {
    expect(expandCommand('show protocols')).toBe('show protocols');
    expect(expandCommand('sh pro')).toBe('show protocols');
    expect(expandCommand('sh pro al')).toBe('show protocols all');
    expect(expandCommand('sh ro for 10.0.0.1')).toBe('show route for 10.0.0.1');
    // `roa` loses ties (client/commands.c's hack), so `show r` is show route.
    expect(expandCommand('show r')).toBe('show route');
  });

  it("refuses what birdcl refuses, in birdcl's words", () => {
    expect(() => expandCommand('show')).toThrow("No such command. Press `?' for help.");
    expect(() => expandCommand('foo')).toThrow("No such command. Press `?' for help.");
    expect(() => expandCommand('show s')).toThrow(
      [
        'Ambiguous command, possible expansions are:',
        'show static [<name>]                           Show details of static protocol',
        'show status                                    Show router status',
        'show symbols ...                               Show all known symbolic names',
        '',
      ].join('\n'),
    );
  });
});

/**
 * calicoctl's views against the outputs quoted in /work/shared/facts/CALICO-CONTROL-PLANE.md §1a and §4b: the
 * tablewriter and tabwriter layouts byte for byte, from speaker states made to match each example (a fixed clock).
 */
import { describe, expect, it } from 'vitest';
import type { ClusterState } from '../../src/calico/index.js';
import { loadCluster } from '../../src/cli/cluster-source.js';
import {
  calicoctlPeers,
  nodeStatusJson,
  renderGetIpPools,
  renderGetNodes,
  renderIpamShow,
  renderNodeStatus,
} from '../../src/cli/calicoctl-views.js';
import { goFormatF0, goFormatG, renderTablewriter } from '../../src/cli/go-tables.js';
import type { NeighbourStatus, SpeakerStatus } from '../../src/node/bgp/index.js';
import { Ipv4Address, Ipv4Prefix } from '../../src/routing/address.js';
import { SEED_CNI_OVERVIEW } from '../support/cli.js';

function mesh(address: string, state: NeighbourStatus['state'], since: string, lastError?: string): NeighbourStatus {
  return {
    name: `Mesh_${address.replace(/\./g, '_')}`,
    address,
    type: 'node-to-node mesh',
    state,
    since,
    ...(lastError !== undefined && { lastError }),
    routesReceived: 1,
  };
}

function speaker(neighbours: NeighbourStatus[], startedAt: string): SpeakerStatus {
  return { routerId: '172.17.8.101', as: 64512, startedAt, neighbours, exported: [], routes: [] };
}

describe('calicoctl node status', () => {
  it("prints the official docs' example byte for byte", () => {
    const status = speaker([mesh('172.17.8.102', 'Established', '2016-11-21T23:30:04Z')], '2016-11-21T23:29:58Z');
    expect(renderNodeStatus(status, Date.parse('2016-11-21T23:45:00Z'))).toBe(
      [
        'Calico process is running.',
        '',
        'IPv4 BGP status',
        '+--------------+-------------------+-------+----------+-------------+',
        '| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |',
        '+--------------+-------------------+-------+----------+-------------+',
        '| 172.17.8.102 | node-to-node mesh | up    | 23:30:04 | Established |',
        '+--------------+-------------------+-------+----------+-------------+',
        '',
        'IPv6 BGP status',
        'No IPv6 peers found.',
        // calicoctl's closing fmt.Println().
        '',
        '',
      ].join('\n'),
    );
  });

  it("wraps INFO at 30 columns as the kops report shows, with BIRD's error after the state", () => {
    const status = speaker(
      [
        mesh('10.2.147.44', 'Active', '2020-12-28T00:21:18Z', 'Socket: Connection refused'),
        mesh('10.2.167.162', 'Passive', '2020-12-28T00:21:18Z'),
      ],
      '2020-12-28T00:21:16Z',
    );
    const lines = renderNodeStatus(status, Date.parse('2020-12-28T00:30:00Z')).split('\n');
    expect(lines.slice(3, 9)).toEqual([
      '+--------------+-------------------+-------+----------+--------------------------------+',
      '| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |              INFO              |',
      '+--------------+-------------------+-------+----------+--------------------------------+',
      '| 10.2.147.44  | node-to-node mesh | start | 00:21:18 | Active Socket: Connection      |',
      '|              |                   |       |          | refused                        |',
      '| 10.2.167.162 | node-to-node mesh | start | 00:21:18 | Passive                        |',
    ]);
  });

  it('widens SINCE for a date, as in felix#1942 (a session up for over 20 hours)', () => {
    const status = speaker(
      [
        mesh('25.25.25.120', 'Established', '2019-01-12T08:00:00Z'),
        mesh('35.35.35.122', 'Established', '2019-01-13T18:24:27Z'),
      ],
      '2019-01-12T07:59:00Z',
    );
    const lines = renderNodeStatus(status, Date.parse('2019-01-13T19:00:00Z')).split('\n');
    expect(lines.slice(6, 8)).toEqual([
      '| 25.25.25.120 | node-to-node mesh | up    | 2019-01-12 | Established |',
      '| 35.35.35.122 | node-to-node mesh | up    | 18:24:27   | Established |',
    ]);
  });

  it('prints what calicoctl prints without BIRD, and without peers', () => {
    expect(renderNodeStatus(undefined, 0)).toBe(
      'Calico process is running.\n\nThe BGP backend process (BIRD) is not running.\n\n',
    );
    expect(renderNodeStatus(speaker([], '2024-01-01T00:00:00Z'), Date.parse('2024-01-01T01:00:00Z'))).toBe(
      'Calico process is running.\n\nIPv4 BGP status\nNo IPv4 peers found.\n\n' +
        'IPv6 BGP status\nNo IPv6 peers found.\n\n',
    );
  });

  it("reads the peers out of BIRD's text as calicoctl does: a down protocol with no error has too few fields", () => {
    const status = speaker(
      [
        mesh('10.0.0.11', 'Established', '2024-01-01T00:00:05Z'),
        mesh('10.0.0.12', 'Down', '2024-01-01T00:00:06Z'),
        mesh('10.0.0.13', 'Down', '2024-01-01T00:00:07Z', 'Received: Administrative shutdown'),
      ],
      '2024-01-01T00:00:00Z',
    );
    const now = Date.parse('2024-01-01T00:10:00Z');
    expect(calicoctlPeers(status, now)).toEqual([
      {
        peerAddress: '10.0.0.11',
        peerType: 'node-to-node mesh',
        state: 'up',
        since: '00:00:05',
        bgpState: 'Established',
        info: '',
      },
      {
        peerAddress: '10.0.0.13',
        peerType: 'node-to-node mesh',
        state: 'down',
        since: '00:00:07',
        bgpState: 'Received:',
        info: 'Administrative shutdown',
      },
    ]);
    expect(nodeStatusJson(status, now)).toMatchObject({
      bgpBackend: 'BIRD',
      routerId: '172.17.8.101',
      ipv4Peers: [{ peerAddress: '10.0.0.11', changedAt: '2024-01-01T00:00:05Z' }, { peerAddress: '10.0.0.13' }],
      ipv6Peers: [],
    });
    expect(nodeStatusJson(undefined, now)).toMatchObject({ bgpBackend: null, ipv4Peers: [] });
  });
});

describe('tablewriter', () => {
  it("right-aligns numbers, centres headers with the odd space on the right, and fills a short cell's lines", () => {
    expect(renderTablewriter(['a_b', 'Num'], [['x', '12345']])).toBe(
      ['+-----+-------+', '| A B |  NUM  |', '+-----+-------+', '| x   | 12345 |', '+-----+-------+', ''].join('\n'),
    );
  });
});

describe('calicoctl get', () => {
  it('get nodes -o wide: the real output byte for byte, trailing padding included, then the gap', () => {
    const cluster = {
      spec: { network: { cidr: Ipv4Prefix.parse('192.168.57.0/24'), subnets: [] } },
      nodes: [{ name: 'k8s.node1', ip: Ipv4Address.parse('192.168.57.31') }],
    } as unknown as ClusterState;
    expect(renderGetNodes(cluster, true)).toBe(
      'NAME        ASN       IPV4               IPV6   \n' + 'k8s.node1   (64512)   192.168.57.31/24          \n\n',
    );
    expect(renderGetNodes(cluster, false)).toBe('NAME        \nk8s.node1   \n\n');
  });

  it("get ippool -o wide: calicoctl#8435's header byte for byte, and the row in the same columns", () => {
    const text = renderGetIpPools(loadCluster(SEED_CNI_OVERVIEW), true);
    const [header, row, gap, end] = text.split('\n');
    expect(header).toBe(
      'NAME                  CIDR             NAT    IPIPMODE   VXLANMODE   DISABLED   DISABLEBGPEXPORT   SELECTOR   ',
    );
    expect(row).toBe(
      'default-ipv4-ippool   192.168.0.0/16   true   Always     Never       false      false              all()      ',
    );
    // The row (a VXLAN pool, whose CIDR is as wide as ours): every column starts where ours does.
    const real =
      'default-ipv4-ippool   10.42.0.0/16     true   Never      Always      false      false              all()';
    const starts = (line: string): number[] => [...line.matchAll(/(?<=^| {3})\S/g)].map((m) => m.index);
    expect(starts(row)).toEqual(starts(real));
    expect([gap, end]).toEqual(['', '']);
    expect(renderGetIpPools(loadCluster(SEED_CNI_OVERVIEW), false)).toBe(
      'NAME                  CIDR             SELECTOR   \ndefault-ipv4-ippool   192.168.0.0/16   all()      \n\n',
    );
  });
});

describe('calicoctl ipam show', () => {
  it('prints the real IPv4 rows byte for byte (pool 10.244.0.0/24, a /26 block with 8 addresses in use)', () => {
    const prefix = (text: string): Ipv4Prefix => Ipv4Prefix.parse(text);
    const ip = (text: string): Ipv4Address => Ipv4Address.parse(text);
    const cluster = {
      pool: { name: 'default-ipv4-ippool', cidr: prefix('10.244.0.0/24'), blockSize: 26, ipipMode: 'Always' },
      nodes: [
        { name: 'a', blocks: [prefix('10.244.0.128/26')], tunnelAddress: ip('10.244.0.128') },
        { name: 'b', blocks: [prefix('10.244.0.0/26')], tunnelAddress: ip('10.244.0.0') },
      ],
      pods: [
        ...['129', '130', '131', '132', '133', '134', '135'].map((last) => ({ ip: ip(`10.244.0.${last}`) })),
        { ip: ip('10.244.0.1') },
        { ip: ip('10.244.0.2') },
      ],
    } as unknown as ClusterState;
    expect(renderIpamShow(cluster, true)).toBe(
      [
        '+----------+-----------------+-----------+------------+-----------+',
        '| GROUPING |      CIDR       | IPS TOTAL | IPS IN USE | IPS FREE  |',
        '+----------+-----------------+-----------+------------+-----------+',
        '| IP Pool  | 10.244.0.0/24   |       256 | 11 (4%)    | 245 (96%) |',
        '| Block    | 10.244.0.0/26   |        64 | 3 (5%)     | 61 (95%)  |',
        '| Block    | 10.244.0.128/26 |        64 | 8 (12%)    | 56 (88%)  |',
        '+----------+-----------------+-----------+------------+-----------+',
        '',
      ].join('\n'),
    );
    expect(renderIpamShow(cluster, false).split('\n')).toHaveLength(6);
  });

  it("counts the seed's tunnel addresses and pods in their nodes' blocks", () => {
    const lines = renderIpamShow(loadCluster(SEED_CNI_OVERVIEW), true).split('\n');
    expect(lines[3]).toMatch(/^\| IP Pool {2}\| 192\.168\.0\.0\/16 +\| +65536 \| 6 \(0%\) +\| 65530 \(100%\) +\|$/);
    expect(
      lines.slice(4, 7).every((line) => /^\| Block {4}\| 192\.168\.\d+\.\d+\/26 +\| +64 \| \d \(/.test(line)),
    ).toBe(true);
  });

  it("formats numbers as Go's %.5g and %.f do", () => {
    expect([65536, 64, 0, 1048576, 16777216, 4294967296, 123465, 100000].map((n) => goFormatG(n))).toEqual([
      '65536',
      '64',
      '0',
      '1.0486e+06',
      '1.6777e+07',
      '4.295e+09',
      '1.2346e+05',
      '1e+05',
    ]);
    expect([12.5, 87.5, 0.5, 1.5, 99.99, (100 * 5) / 65536].map(goFormatF0)).toEqual([
      '12',
      '88',
      '0',
      '2',
      '100',
      '0',
    ]);
  });
});

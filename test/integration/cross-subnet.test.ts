/**
 * ipipMode CrossSubnet on two routed subnets, proven on the wire: tshark on both Docker bridges, from the host. Pods on
 * worker-node01 and worker-node02 (one subnet) talk plain IP; to worker-node03, across the router, they tunnel. The
 * routes are BIRD's for such a pool: `via PEER dev eth0 proto bird` inside the subnet, `dev tunl0 … onlink` beyond.
 * Kernel-backed nodes only: the userspace node receives nothing but IPIP, and refuses such a pool.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startLab, type Lab, type LabNodeHandle } from '../../src/testing/index.js';
import { captureBridge } from '../support/bridge-capture.js';
import { REPO_ROOT } from '../support/cli.js';
import { tsharkFields } from '../support/wire-tshark.js';

const SPEC = `${REPO_ROOT}test/fixtures/cross-subnet.yaml`;
const ROUTER_SUBNET1 = '10.36.1.254';

/** One row per frame: every ip.src and ip.dst on it (outer first), the IP protocols, the ICMP type. */
interface WireRow {
  sources: string[];
  destinations: string[];
  protocols: string[];
  ttls: string[];
  icmpType: string;
}

async function wireRows(file: string): Promise<WireRow[]> {
  const rows = await tsharkFields(file, ['ip.src', 'ip.dst', 'ip.proto', 'ip.ttl', 'icmp.type']);
  return rows.map(([sources, destinations, protocols, ttls, icmpType]) => ({
    sources: sources.split(';'),
    destinations: destinations.split(';'),
    protocols: protocols.split(';'),
    ttls: ttls.split(';'),
    icmpType,
  }));
}

describe('a CrossSubnet pool on two routed subnets (kernel-backed nodes)', () => {
  let lab: Lab;
  let worker01: LabNodeHandle;
  let podOn: (node: string) => { name: string; ip: string };

  beforeAll(async () => {
    lab = await startLab({ spec: SPEC, dataplane: 'kernel' });
    worker01 = lab.node('worker-node01');
    podOn = (node) => {
      const [pod] = lab.podsOn(node);
      if (!pod) throw new Error(`the spec schedules no pod on ${node}`);
      return { name: pod.name, ip: pod.ip.toString() };
    };
  });

  afterAll(async () => {
    await lab?.stop();
  });

  test('BGP routes: same subnet via eth0 with no tunnel, the other subnet through tunl0, the router for the underlay', async () => {
    const lines = (await worker01.exec(['ip', 'route'])).stdout.split('\n').map((line) => line.trim());
    const blocksOf = (node: string) => lab.node(node).state.blocks.map(String);
    for (const block of blocksOf('worker-node02'))
      expect(lines).toContain(`${block} via 10.36.1.12 dev eth0 proto bird`);
    for (const block of blocksOf('worker-node03')) {
      expect(lines).toContain(`${block} via 10.36.2.13 dev tunl0 proto bird onlink`);
    }
    expect(lines).toContain(`10.36.2.0/24 via ${ROUTER_SUBNET1} dev eth0`);
    expect(lines).toContain('10.36.1.0/24 dev eth0 proto kernel scope link src 10.36.1.11');
    // The agent's own view (`ipip-lab ip route`) says the same as the kernel.
    const view = (await worker01.ipipLab(['ip', 'route'])).stdout.split('\n').map((line) => line.trim());
    for (const block of blocksOf('worker-node02'))
      expect(view).toContain(`${block} via 10.36.1.12 dev eth0 proto bird`);
  });

  describe('on the wire (tshark on the lab bridge, from the host)', () => {
    let rows: WireRow[];
    const from = () => podOn('worker-node01');

    beforeAll(async () => {
      const capture = await captureBridge(await lab.underlay.bridge(), 'icmp or ip proto 4');
      for (const node of ['worker-node02', 'worker-node03']) {
        const report = await worker01.ping({ from: from().name, to: podOn(node).ip, count: 3, intervalMs: 200 });
        expect(report.received, `pod on worker-node01 to the pod on ${node}`).toBe(3);
      }
      rows = await wireRows(await capture.stop());
    });

    test('inside one subnet the pods talk plain IP: ICMP from pod to pod, once each way, no protocol 4', () => {
      const pod1 = from().ip;
      const pod2 = podOn('worker-node02').ip;
      const theirs = rows.filter((row) => row.sources.includes(pod2) || row.destinations.includes(pod2));
      expect(theirs.map((row) => [row.sources, row.destinations, row.protocols, row.ttls, row.icmpType])).toEqual(
        [0, 1, 2].flatMap(() => [
          [[pod1], [pod2], ['1'], ['63'], '8'],
          [[pod2], [pod1], ['1'], ['63'], '0'],
        ]),
      );
    });

    test('across the router they tunnel: IPIP between the node addresses, into the router and out of it', () => {
      const pod1 = from().ip;
      const pod3 = podOn('worker-node03').ip;
      const theirs = rows.filter((row) => row.sources.includes(pod3) || row.destinations.includes(pod3));
      const request = (outerTtl: string) => [
        ['10.36.1.11', pod1],
        ['10.36.2.13', pod3],
        ['4', '1'],
        [outerTtl, '63'],
        '8',
      ];
      const reply = (outerTtl: string) => [
        ['10.36.2.13', pod3],
        ['10.36.1.11', pod1],
        ['4', '1'],
        [outerTtl, '63'],
        '0',
      ];
      // Each packet twice: from its node to the router (outer TTL 63, copied from the inner), then on (62).
      expect(theirs.map((row) => [row.sources, row.destinations, row.protocols, row.ttls, row.icmpType])).toEqual(
        [0, 1, 2].flatMap(() => [request('63'), request('62'), reply('63'), reply('62')]),
      );
    });
  });
});

/**
 * Issue 3's acceptance on real containers and real packets: the seed's three nodes on an internal Docker network,
 * IPIP over raw sockets between them, checked against the kernel captures in test/fixtures/vectors.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { PodState } from '../../src/calico/index.js';
import type { NodeStatsResponse } from '../../src/node/api.js';
import { startLab, type Lab, type LabNodeHandle } from '../../src/testing/index.js';
import { ECN, ipv4ToString } from '../../src/wire/index.js';
import { SEED_CNI_OVERVIEW } from '../support/cli.js';
import { captureRows, echoRequest, icmpTypeOf, ipipPacket } from '../support/lab-packets.js';

let lab: Lab;
let node01: LabNodeHandle;
let node02: LabNodeHandle;
/** Two pods on worker-node01, one on worker-node02 (the seed's scheduling). */
let podA: PodState;
let podA2: PodState;
let podB: PodState;

/** Polls a node's counters until `done` holds (packets from another container arrive asynchronously). */
async function statsWhen(node: LabNodeHandle, done: (stats: NodeStatsResponse) => boolean): Promise<NodeStatsResponse> {
  const deadline = Date.now() + 5_000;
  let stats = await node.stats();
  while (!done(stats) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    stats = await node.stats();
  }
  return stats;
}

/**
 * Both dataplanes put the same packets on the wire: every test below runs on the userspace node and on the
 * kernel-backed one (the containers' kernels forwarding, the agents driving tunl0).
 */
describe.each(['userspace', 'kernel'] as const)('the %s dataplane', (dataplane) => {
  beforeAll(async () => {
    lab = await startLab({ spec: SEED_CNI_OVERVIEW, name: `datapath-${dataplane}`, dataplane });
    node01 = lab.node('worker-node01');
    node02 = lab.node('worker-node02');
    [podA, podA2] = lab.podsOn('worker-node01');
    [podB] = lab.podsOn('worker-node02');
  });

  afterAll(async () => {
    await lab?.stop();
  });

  describe('pod to pod across nodes', () => {
    test('a ping gets replies, carried as IPIP 10.0.0.11 → 10.0.0.12 with TTL 63 on the wire and 62 at the pods', async () => {
      const wire = await node01.tcpdump({ filter: 'ip proto 4' });
      const atPodB = await node02.capture({ interfaces: [podB.hostInterface] });
      const report = await node01.ping({ from: podA.name, to: podB.name, count: 2, intervalMs: 200 });
      const { packets: delivered } = await atPodB.stop();
      const rows = await captureRows(await wire.stop(), ['ip.src', 'ip.dst', 'ip.proto', 'ip.ttl', 'icmp.type']);

      expect(report.received).toBe(2);
      // The replies reach pod A after two forwarding hops too.
      expect(report.results.map((result) => (result.kind === 'reply' ? result.ttl : result.kind))).toEqual([62, 62]);
      const request = [`10.0.0.11;${podA.ip}`, `10.0.0.12;${podB.ip}`, '4;1', '63;63', '8'];
      const reply = [`10.0.0.12;${podB.ip}`, `10.0.0.11;${podA.ip}`, '4;1', '63;63', '0'];
      expect(rows).toEqual([request, reply, request, reply]);
      const requestsAtB = delivered.filter((p) => p.direction === 'tx' && icmpTypeOf(p.packet)?.type === 8);
      expect(requestsAtB.map((p) => p.packet[8])).toEqual([62, 62]);
    });

    test("curl reaches hello-app on the other node and shows that pod's hostname", async () => {
      const report = await node01.curl(`http://${podB.ip}:8080/`, { from: podA.name, maxTimeMs: 5_000 });
      expect(report.exitCode).toBe(0);
      expect(report.body).toBe(`Hello, world!\nVersion: 1.0.0\nHostname: ${podB.name}\n`);
    });

    test('a 1501-byte ping without DF crosses as inner fragments, each its own IPIP packet, and is answered', async () => {
      const wire = await node01.tcpdump({ filter: 'ip proto 4' });
      const report = await node01.ping({
        from: podA.name,
        to: podB.name,
        count: 1,
        size: 1473,
        df: false,
        timeoutMs: 3_000,
      });
      const rows = await captureRows(await wire.stop(), ['ip.src', 'ip.len', 'ip.flags.mf', 'ip.frag_offset', 'ip.id']);

      expect(report.received).toBe(1);
      const requests = rows.filter(([src]) => src.startsWith('10.0.0.11;'));
      expect(requests.length).toBeGreaterThanOrEqual(2);
      for (const [, length, moreFragments, offset] of requests) {
        // The outer header is never fragmented and never over eth0's 1500.
        expect(Number(length.split(';')[0])).toBeLessThanOrEqual(1500);
        expect(moreFragments.split(';')[0]).toBe('0');
        expect(offset.split(';')[0]).toBe('0');
      }
      // Every piece keeps the inner ID; the last one has MF clear.
      const innerIds = new Set(requests.map(([, , , , id]) => id.split(';')[1]));
      expect(innerIds.size).toBe(1);
      expect(requests.map(([, , mf]) => mf.split(';')[1]).at(-1)).toBe('0');
      const innerBytes = requests.reduce((sum, [, length]) => sum + Number(length.split(';')[1]) - 20, 0);
      expect(innerBytes).toBe(1501 - 20);
    });

    test('ECN is copied to the outer header (CE as ECT(0)), DSCP never', async () => {
      const wire = await node01.tcpdump({ filter: 'ip proto 4 and src host 10.0.0.11' });
      for (const tos of [0x01, 0x02, 0x03, 0xb8]) {
        const report = await node01.ping({ from: podA.name, to: podB.name, count: 1, tos, timeoutMs: 2_000 });
        expect(report.received).toBe(1);
      }
      const rows = await captureRows(await wire.stop(), ['ip.dsfield']);
      expect(rows.map(([tos]) => tos)).toEqual(['0x01;0x01', '0x02;0x02', '0x02;0x03', '0x00;0xb8']);
    });

    test('decapsulation applies RFC 6040: outer CE marks an ECT inner packet, and drops a Not-ECT one', async () => {
      const before = await node02.stats();
      const atPodB = await node02.capture({ interfaces: [podB.hostInterface] });
      const ect = echoRequest({ src: podA.ip.toString(), dst: podB.ip.toString(), tos: ECN.ECT0, ttl: 63 });
      const notEct = echoRequest({ src: podA.ip.toString(), dst: podB.ip.toString(), tos: ECN.NOT_ECT, ttl: 63 });
      await node02.inject('eth0', ipipPacket(ect, { src: '10.0.0.11', dst: '10.0.0.12', ecn: ECN.CE }));
      await node02.inject('eth0', ipipPacket(notEct, { src: '10.0.0.11', dst: '10.0.0.12', ecn: ECN.CE }));
      const delivered = (await atPodB.stop()).packets.filter((p) => p.direction === 'tx');
      const after = await node02.stats();

      expect(delivered.map((p) => p.packet[1] & 3)).toEqual([ECN.CE]);
      expect(after.drops['ecn-non-ect-ce'] - before.drops['ecn-non-ect-ce']).toBe(1);
    });
  });

  describe('on one node', () => {
    test('pod to pod on the same node works and never touches eth0', async () => {
      const before = await node01.stats();
      const atPodA2 = await node01.capture({ interfaces: [podA2.hostInterface] });
      const report = await node01.ping({ from: podA.name, to: podA2.name, count: 2, intervalMs: 200 });
      const { packets } = await atPodA2.stop();
      const after = await node01.stats();

      expect(report.received).toBe(2);
      // Only one forwarding hop: the pod sees TTL 63.
      expect(report.results.map((result) => (result.kind === 'reply' ? result.ttl : result.kind))).toEqual([63, 63]);
      expect(after.interfaces.eth0).toEqual(before.interfaces.eth0);
      expect(after.interfaces.tunl0).toEqual(before.interfaces.tunl0);
      // The two echo requests left through pod A2's cali veth (its counters also hold the kernel's ARP).
      expect(packets.filter((p) => p.direction === 'tx' && icmpTypeOf(p.packet)?.type === 8)).toHaveLength(2);
    });
  });

  describe('what is dropped', () => {
    test('IPIP from a container that is not a node is dropped and counted as an unknown source', async () => {
      const stranger = await lab.startStranger('10.0.0.99');
      const before = await node02.stats();
      const inner = echoRequest({ src: podA.ip.toString(), dst: podB.ip.toString(), ttl: 63 });
      await stranger.send(ipipPacket(inner, { src: '10.0.0.99', dst: '10.0.0.12' }));
      const after = await statsWhen(
        node02,
        (s) => s.drops['unknown-ipip-source'] > before.drops['unknown-ipip-source'],
      );

      expect(after.drops['unknown-ipip-source'] - before.drops['unknown-ipip-source']).toBe(1);
      expect(after.interfaces.eth0.rxDropped - before.interfaces.eth0.rxDropped).toBe(1);
      expect(after.interfaces[podB.hostInterface]).toEqual(before.interfaces[podB.hostInterface]);
    });

    test("a ping to an unallocated address of another node's block is silent, and the blackhole drop is counted", async () => {
      const unallocated = '192.168.158.50';
      const before = await node02.stats();
      const report = await node01.ping({
        from: podA.name,
        to: unallocated,
        count: 2,
        intervalMs: 200,
        timeoutMs: 1_000,
      });
      const after =
        dataplane === 'userspace'
          ? await statsWhen(node02, (s) => s.drops.blackhole >= before.drops.blackhole + 2)
          : await node02.stats();

      expect(report.received).toBe(0);
      expect(report.errors).toBe(0);
      expect(report.results).toEqual([]);
      // The userspace node counts its blackhole drops; a kernel's blackhole route drops without a per-node counter.
      if (dataplane === 'userspace') expect(after.drops.blackhole - before.drops.blackhole).toBe(2);
    });
  });

  describe('TTL expiry', () => {
    test('time exceeded comes from the node IP at the first hop and from the tunl0 address, tunnelled, at the second', async () => {
      const wire = await node01.tcpdump({ filter: 'ip proto 4' });
      const first = await node01.ping({ from: podA.name, to: podB.name, count: 1, ttl: 1, timeoutMs: 2_000 });
      const second = await node01.ping({ from: podA.name, to: podB.name, count: 1, ttl: 2, timeoutMs: 2_000 });
      const rows = await captureRows(await wire.stop(), ['ip.src', 'ip.dst', 'icmp.type']);

      const errors = (report: typeof first) =>
        report.results.map((r) => (r.kind === 'icmp-error' ? `type ${r.type} from ${ipv4ToString(r.from)}` : r.kind));
      expect(errors(first)).toEqual(['type 11 from 10.0.0.11']);
      expect(errors(second)).toEqual(['type 11 from 192.168.158.0']);
      // TTL 1 never reached the wire; TTL 2 crossed once and its error came back through the tunnel.
      expect(rows).toEqual([
        [`10.0.0.11;${podA.ip}`, `10.0.0.12;${podB.ip}`, '8'],
        [`10.0.0.12;192.168.158.0;${podA.ip}`, `10.0.0.11;${podA.ip};${podB.ip}`, '11;8'],
      ]);
    });

    test('traceroute lists node01, node02 by its tunl0 address, then the pod', async () => {
      const report = await node01.traceroute(podB.ip.toString(), { from: podA.name, maxHops: 5 });
      expect(report.reached).toBe(true);
      expect(
        report.hops.map((hop) => [
          ...new Set(hop.probes.map((probe) => (probe.from === undefined ? '*' : ipv4ToString(probe.from)))),
        ]),
      ).toEqual([['10.0.0.11'], ['192.168.158.0'], [podB.ip.toString()]]);
    });
  });

  // Felix's anti-spoofing in the kernel: rp_filter on the cali veth, its drops read back as `spoofed-source`.
  if (dataplane === 'kernel') {
    test('a pod that sends from an address not its own is dropped at its cali veth and counted as spoofed', async () => {
      const spoofed = '192.168.87.250';
      const inPod = (...argv: string[]) => node01.exec(['ip', 'netns', 'exec', podA.netns, ...argv]);
      expect((await inPod('ip', 'addr', 'add', `${spoofed}/32`, 'dev', 'eth0')).exitCode).toBe(0);
      try {
        const before = await node01.stats();
        const wire = await node01.tcpdump({ filter: 'ip proto 4' });
        const ping = await inPod('ping', '-c', '2', '-i', '0.2', '-W', '1', '-I', spoofed, podB.ip.toString());
        const rows = await captureRows(await wire.stop(), ['ip.src']);
        const after = await node01.stats();

        expect(ping.stdout).toContain('2 packets transmitted, 0 received');
        expect(rows).toEqual([]);
        expect(after.drops['spoofed-source'] - before.drops['spoofed-source']).toBe(2);
      } finally {
        await inPod('ip', 'addr', 'del', `${spoofed}/32`, 'dev', 'eth0');
      }
    });
  }

  // The userspace node can take a packet at a cali interface as if its pod sent it; a kernel's pod sends its own.
  if (dataplane === 'userspace') {
    describe('a packet injected at a cali interface', () => {
      test('a DF packet over 1480 bytes injected at a cali interface gets fragmentation needed, MTU 1480, from the node IP', async () => {
        const before = await node01.stats();
        const atPodA = await node01.capture({ interfaces: [podA.hostInterface] });
        const big = echoRequest({ src: podA.ip.toString(), dst: podB.ip.toString(), size: 1460, df: true });
        expect(big.length).toBe(1488);
        await node01.inject(podA.hostInterface, big);
        const answers = (await atPodA.stop()).packets
          .filter((p) => p.direction === 'tx')
          .map((p) => icmpTypeOf(p.packet));
        const after = await node01.stats();

        expect(answers).toEqual([{ type: 3, code: 4, src: '10.0.0.11', dst: podA.ip.toString(), nextHopMtu: 1480 }]);
        expect(after.drops['frag-needed'] - before.drops['frag-needed']).toBe(1);
        expect(after.interfaces.eth0.txPackets).toBe(before.interfaces.eth0.txPackets);
      });
    });
  }
});

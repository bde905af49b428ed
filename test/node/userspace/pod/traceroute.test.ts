import { describe, expect, it } from 'vitest';
import { IP_PROTOCOL } from '../../../../src/wire/ipv4.js';
import { udp } from '../../../../src/wire/udp.js';
import { formatTraceroute } from '../../../../src/node/userspace/pod/report-text.js';
import { POD_A, POD_B, ip, twoPods } from './harness.js';

describe('traceroute from a pod', () => {
  it('lists each router then the destination, and stops at its port unreachable', async () => {
    const { clock, a } = twoPods({ routers: [ip('10.0.0.11'), ip('10.0.0.12')] });
    const report = await clock.settle(a.traceroute(POD_B));
    expect(formatTraceroute(report)).toBe(
      [
        'traceroute to 192.168.87.198 (192.168.87.198), 30 hops max, 60 byte packets',
        ' 1  10.0.0.11 (10.0.0.11)  2.000 ms  2.000 ms  2.000 ms',
        ' 2  10.0.0.12 (10.0.0.12)  4.000 ms  4.000 ms  4.000 ms',
        ' 3  192.168.87.198 (192.168.87.198)  6.000 ms  6.000 ms  6.000 ms',
        '',
      ].join('\n'),
    );
    expect(report.reached).toBe(true);
  });

  it('sends 60-byte UDP probes without DF to 33434, 33435, … from a fresh source port each, 16 at a time', async () => {
    const { clock, host, a } = twoPods({ routers: [ip('10.0.0.11'), ip('10.0.0.12')] });
    const running = a.traceroute(POD_B);
    expect(host.sentBy('client-7d9f8')).toHaveLength(16);
    await clock.settle(running);
    // Each answered hop frees room for three more probes until the destination answers: 16 + 3 + 3.
    const probes = host.sentBy('client-7d9f8').filter((view) => view.protocol === IP_PROTOCOL.UDP);
    expect(probes).toHaveLength(22);
    const decoded = probes.map((view) => {
      const datagram = udp.decode(view.payload, { src: POD_A, dst: POD_B });
      if (!datagram.ok) throw new Error(datagram.reason);
      return { ...datagram.value, ttl: view.ttl, df: view.dontFragment, totalLength: view.totalLength };
    });
    expect(decoded.map((probe) => probe.dstPort)).toEqual(Array.from({ length: 22 }, (_, i) => 33434 + i));
    expect(decoded.map((probe) => probe.ttl)).toEqual(Array.from({ length: 22 }, (_, i) => Math.floor(i / 3) + 1));
    expect(new Set(decoded.map((probe) => probe.srcPort)).size).toBe(22);
    for (const probe of decoded) {
      expect(probe).toMatchObject({ df: false, totalLength: 60, length: 40 });
      expect(probe.payload.toString('latin1')).toBe('@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_');
    }
  });

  it("prints stars for a hop that never answers, timing out by the later hops' RTT", async () => {
    const { clock, a } = twoPods({ routers: [ip('10.0.0.11'), ip('10.0.0.12')], silentRouters: [ip('10.0.0.12')] });
    const started = clock.now();
    const report = await clock.settle(a.traceroute(POD_B));
    expect(formatTraceroute(report).split('\n')[2]).toBe(' 2  * * *');
    // near_factor: 10 × (6 ms + 1 ms) after the hop-2 probes went out, far below the 5 s maximum.
    expect(clock.now() - started).toBe(70);
  });

  it('gives up after max hops when the destination stays silent, waiting 5 s for the unanswered', async () => {
    const { clock, a } = twoPods();
    const started = clock.now();
    const report = await clock.settle(a.traceroute(ip('192.168.87.250'), { maxHops: 3 }));
    expect(formatTraceroute(report)).toBe(
      [
        'traceroute to 192.168.87.250 (192.168.87.250), 3 hops max, 60 byte packets',
        ' 1  10.0.0.11 (10.0.0.11)  2.000 ms  2.000 ms  2.000 ms',
        ' 2  * * *',
        ' 3  * * *',
        '',
      ].join('\n'),
    );
    expect(report.reached).toBe(false);
    expect(clock.now() - started).toBe(5000);
  });

  it('uses the probe count and timeout it is given', async () => {
    const { clock, a } = twoPods();
    const report = await clock.settle(a.traceroute(ip('192.168.87.250'), { maxHops: 2, probes: 1, timeoutMs: 300 }));
    expect(formatTraceroute(report).split('\n').slice(1)).toEqual([' 1  10.0.0.11 (10.0.0.11)  2.000 ms', ' 2  *', '']);
  });
});

import { describe, expect, it } from 'vitest';
import { icmp } from '../../../../src/wire/icmp.js';
import { IP_PROTOCOL, ipv4 } from '../../../../src/wire/ipv4.js';
import { formatPing } from '../../../../src/node/userspace/pod/report-text.js';
import { POD_A, POD_B, ip, oneFailedProbeText, twoPods } from './harness.js';

describe('ping between two pods', () => {
  it('prints iputils output with the TTL after one hop and a 4 ms RTT', async () => {
    const { clock, a } = twoPods();
    const report = await clock.settle(a.ping(POD_B, { count: 2 }));
    expect(formatPing(report)).toBe(
      [
        'PING 192.168.87.198 (192.168.87.198) 56(84) bytes of data.',
        '64 bytes from 192.168.87.198: icmp_seq=1 ttl=63 time=4.00 ms',
        '64 bytes from 192.168.87.198: icmp_seq=2 ttl=63 time=4.00 ms',
        '',
        '--- 192.168.87.198 ping statistics ---',
        '2 packets transmitted, 2 received, 0% packet loss, time 1000ms',
        'rtt min/avg/max/mdev = 4.000/4.000/4.000/0.000 ms',
        '',
      ].join('\n'),
    );
    expect(report.exitCode).toBe(0);
  });

  it('sends requests like Linux ping: DF with a nonzero counter ID, TTL 64, timeval then 0x10.. pattern', async () => {
    const { clock, host, a } = twoPods();
    await clock.settle(a.ping(POD_B, { count: 2 }));
    const requests = host.sentBy('client-7d9f8');
    expect(requests).toHaveLength(2);
    for (const request of requests) {
      expect(request).toMatchObject({
        ttl: 64,
        dontFragment: true,
        protocol: IP_PROTOCOL.ICMP,
        src: POD_A,
        dst: POD_B,
      });
      expect(request.buffer[1]).toBe(0);
      const message = icmp.decode(request.payload);
      if (!message.ok || message.value.kind !== 'echo-request') throw new Error('not an echo request');
      expect(message.value.data).toHaveLength(56);
      expect([...message.value.data.subarray(16)]).toEqual(Array.from({ length: 40 }, (_, i) => i + 16));
      // The embedded timeval is the send time: 2024-01-15T12:00:00Z plus the ping interval.
      expect(Number(message.value.data.readBigInt64LE(0))).toBeGreaterThanOrEqual(Date.UTC(2024, 0, 15, 12) / 1000);
    }
    expect(requests[1].identification).toBe((requests[0].identification + 1) & 0xffff);
  });

  it('answers with TTL 64, DF clear and the request TOS copied (CE included)', async () => {
    for (const tos of [0x00, 0x01, 0x03, 0xb8]) {
      const { clock, host, a } = twoPods();
      const report = await clock.settle(a.ping(POD_B, { count: 1, tos }));
      expect(report.received).toBe(1);
      const [reply] = host.sentBy('hello-world-54575d5b77-rz8vs');
      expect(reply).toMatchObject({ ttl: 64, dontFragment: false, src: POD_B, dst: POD_A });
      expect(reply.buffer[1]).toBe(tos);
    }
  });

  it('crosses 1501 bytes without DF as fragments and reassembles the 1481-byte reply', async () => {
    const { clock, host, a, b } = twoPods();
    const report = await clock.settle(a.ping(POD_B, { count: 1, size: 1473, df: false }));
    expect(report.results[0]).toMatchObject({ kind: 'reply', bytes: 1481, ttl: 63 });
    const shape = (name: string) =>
      host.sentBy(name).map((v) => [v.totalLength, v.moreFragments, v.fragmentByteOffset, v.dontFragment]);
    expect(shape('client-7d9f8')).toEqual([
      [1476, true, 0, false],
      [45, false, 1456, false],
    ]);
    expect(shape('hello-world-54575d5b77-rz8vs')).toEqual(shape('client-7d9f8'));
    expect(a.counters).toMatchObject({ fragmented: 1, reassembled: 1 });
    expect(b.counters).toMatchObject({ fragmented: 1, reassembled: 1 });
    expect(formatPing(report)).toContain(
      'PING 192.168.87.198 (192.168.87.198) 1473(1501) bytes of data.\n1481 bytes from',
    );
  });

  it('fragments an oversized default (PMTU "want") ping instead of refusing it, as Linux does', async () => {
    const { clock, host, a } = twoPods();
    const report = await clock.settle(a.ping(POD_B, { count: 1, size: 1473 }));
    expect(report.received).toBe(1);
    expect(host.sentBy('client-7d9f8').map((v) => v.dontFragment)).toEqual([false, false]);
  });

  it('refuses a 1481-byte DF ping locally with the exact iputils text and sends nothing', async () => {
    const { clock, host, a } = twoPods();
    const report = await clock.settle(a.ping(POD_B, { count: 1, size: 1453, df: true }));
    expect(host.captured).toHaveLength(0);
    expect(report).toMatchObject({ transmitted: 1, received: 0, errors: 1, exitCode: 1 });
    expect(formatPing(report)).toBe(oneFailedProbeText('1453(1481)', 'ping: local error: message too long, mtu=1480'));
  });

  it('sends exactly the MTU with `-M do` using IP ID 0 (vectors 5c)', async () => {
    const { clock, host, a } = twoPods();
    const report = await clock.settle(a.ping(POD_B, { count: 1, size: 1452, df: true }));
    expect(report.results[0]).toMatchObject({ kind: 'reply', bytes: 1460 });
    const [request] = host.sentBy('client-7d9f8');
    expect(request).toMatchObject({ totalLength: 1480, dontFragment: true, identification: 0 });
  });

  it('reports Time to live exceeded from the router that dropped the probe (vectors 6a)', async () => {
    const { clock, a } = twoPods({ routers: [ip('10.0.0.10'), ip('192.168.87.192')] });
    const report = await clock.settle(a.ping(POD_B, { count: 1, ttl: 2 }));
    expect(formatPing(report)).toBe(
      oneFailedProbeText('56(84)', 'From 192.168.87.192 icmp_seq=1 Time to live exceeded'),
    );
  });

  it('reports Frag needed, learns the path MTU and fails the next DF probe locally (vectors 5b)', async () => {
    const { clock, a } = twoPods({ routers: [ip('10.0.0.10'), ip('10.0.0.11')], linkMtu: 1400 });
    const report = await clock.settle(a.ping(POD_B, { count: 2, size: 1452, df: true }));
    expect(formatPing(report)).toBe(
      [
        'PING 192.168.87.198 (192.168.87.198) 1452(1480) bytes of data.',
        'From 10.0.0.10 icmp_seq=1 Frag needed and DF set (mtu = 1400)',
        'ping: local error: message too long, mtu=1400',
        '',
        '--- 192.168.87.198 ping statistics ---',
        '2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 1000ms',
        '',
        '',
      ].join('\n'),
    );
  });

  it('after a Frag needed, a default ping fragments at the learned MTU and gets through', async () => {
    const { clock, host, a } = twoPods({ routers: [ip('10.0.0.10'), ip('10.0.0.11')], linkMtu: 1400 });
    const report = await clock.settle(a.ping(POD_B, { count: 2, size: 1452 }));
    expect(report.results.map((r) => r.kind)).toEqual(['icmp-error', 'reply']);
    const second = host.sentBy('client-7d9f8').slice(1);
    expect(second.map((v) => [v.totalLength, v.dontFragment])).toEqual([
      [1396, false],
      [104, false],
    ]);
  });

  it('counts lost packets and waits the linger time when nothing answers', async () => {
    const { clock, a } = twoPods();
    const started = clock.now();
    const report = await clock.settle(a.ping(ip('192.168.87.250'), { count: 2 }));
    expect(clock.now() - started).toBe(1000 + 10_000);
    expect(report).toMatchObject({ transmitted: 2, received: 0, errors: 0, lossPercent: 100, exitCode: 1 });
    expect(formatPing(report).endsWith('2 packets transmitted, 0 received, 100% packet loss, time 1000ms\n\n')).toBe(
      true,
    );
  });

  it('prints no time and no rtt line when the data cannot hold a timeval', async () => {
    const { clock, a } = twoPods();
    const report = await clock.settle(a.ping(POD_B, { count: 1, size: 8 }));
    expect(formatPing(report)).toContain('16 bytes from 192.168.87.198: icmp_seq=1 ttl=63\n');
    expect(report.rtt).toBeUndefined();
  });

  it('ignores echo replies for identifiers nobody pings with, counting them', () => {
    const { a } = twoPods();
    const reply = icmp.encode({ kind: 'echo-reply', identifier: 999, sequence: 1, data: Buffer.alloc(8) });
    a.receive(
      ipv4.encode({ identification: 1, ttl: 64, protocol: IP_PROTOCOL.ICMP, src: POD_B, dst: POD_A, payload: reply }),
    );
    expect(a.counters.drops['icmp-unmatched']).toBe(1);
  });

  it('resolves a running ping with what it has when the pod is closed, and leaves no timer behind', async () => {
    const { clock, a } = twoPods();
    const running = a.ping(ip('192.168.87.250'), { count: 5 });
    await clock.advance(2500);
    a.close();
    const report = await running;
    expect(report).toMatchObject({ transmitted: 3, received: 0 });
    expect(clock.pendingTimers).toBe(0);
    await expect(a.ping(POD_B)).rejects.toThrow(/closed/);
  });

  it('rejects impossible options', async () => {
    const { a } = twoPods();
    await expect(a.ping(POD_B, { size: 70_000 })).rejects.toThrow(RangeError);
    await expect(a.ping(POD_B, { ttl: 0 })).rejects.toThrow(RangeError);
  });
});

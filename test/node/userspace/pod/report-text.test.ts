import { describe, expect, it } from 'vitest';
import {
  formatCurl,
  formatG,
  formatPing,
  formatPingTime,
  formatTraceroute,
  icmpErrorText,
} from '../../../../src/node/userspace/pod/report-text.js';
import { POD_B, ip, twoPods } from './harness.js';

describe('ping statistics and text', () => {
  it('reproduces the vectors output from the same RTTs (16.884 ms and 3.307 ms)', async () => {
    // 0.5 ms per link: a 2 ms base RTT, plus a per-request delay.
    const extra = [14.884, 1.307];
    const { clock, a } = twoPods({
      latencyMs: 0.5,
      extraDelayMs: (entry) => (entry.from === 'client-7d9f8' ? (extra.shift() ?? 0) : 0),
    });
    const report = await clock.settle(a.ping(POD_B, { count: 2 }));
    expect(report.rtt).toEqual({ minMs: 3.307, avgMs: 10.095, maxMs: 16.884, mdevMs: 6.788 });
    expect(
      formatPing(report)
        .replace(/ttl=63/g, 'ttl=62')
        .replace('time 1000ms', 'time 1003ms'),
    ).toBe(
      [
        'PING 192.168.87.198 (192.168.87.198) 56(84) bytes of data.',
        '64 bytes from 192.168.87.198: icmp_seq=1 ttl=62 time=16.9 ms',
        '64 bytes from 192.168.87.198: icmp_seq=2 ttl=62 time=3.31 ms',
        '',
        '--- 192.168.87.198 ping statistics ---',
        '2 packets transmitted, 2 received, 0% packet loss, time 1003ms',
        'rtt min/avg/max/mdev = 3.307/10.095/16.884/6.788 ms',
        '',
      ].join('\n'),
    );
  });

  it('formats times as ping_common.c does', () => {
    expect([999, 1000, 3307, 9994, 9995, 16_884, 38_146, 99_949, 99_950, 123_456].map(formatPingTime)).toEqual([
      '0.999',
      '1.00',
      '3.31',
      '9.99',
      '10.0',
      '16.9',
      '38.1',
      '99.9',
      '100',
      '123',
    ]);
  });

  it("formats loss with C's %g", () => {
    expect([0, 100, 50, 100 / 3, 200 / 3, 0.0001, 0.00001, 1234567].map((x) => formatG(Math.fround(x)))).toEqual([
      '0',
      '100',
      '50',
      '33.3333',
      '66.6667',
      '0.0001',
      '1e-05',
      '1.23457e+06',
    ]);
  });

  it('names ICMP errors as pr_icmph() does', () => {
    expect(icmpErrorText(3, 1, 0)).toBe('Destination Host Unreachable');
    expect(icmpErrorText(3, 4, 1480)).toBe('Frag needed and DF set (mtu = 1480)');
    expect(icmpErrorText(3, 42, 0)).toBe('Dest Unreachable, Bad Code: 42');
    expect(icmpErrorText(11, 1, 0)).toBe('Frag reassembly time exceeded');
  });

  it('shows duplicates and a loss percentage with decimals', () => {
    const text = formatPing({
      destination: ip('10.0.0.1'),
      size: 56,
      transmitted: 3,
      received: 1,
      duplicates: 1,
      errors: 0,
      results: [
        {
          kind: 'reply',
          seq: 1,
          from: ip('10.0.0.1'),
          bytes: 64,
          ttl: 64,
          timeMs: 0.5,
          duplicate: false,
          differentAddress: false,
        },
        {
          kind: 'reply',
          seq: 1,
          from: ip('10.0.0.2'),
          bytes: 64,
          ttl: 64,
          timeMs: 0.6,
          duplicate: true,
          differentAddress: true,
        },
      ],
      lossPercent: 200 / 3,
      rtt: { minMs: 0.5, avgMs: 0.55, maxMs: 0.6, mdevMs: 0.05 },
      totalTimeMs: 2001,
      exitCode: 0,
    });
    expect(text).toContain('64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.600 ms (DUP!) (DIFFERENT ADDRESS!)\n');
    expect(text).toContain('3 packets transmitted, 1 received, +1 duplicates, 66.6667% packet loss, time 2001ms\n');
  });
});

describe('traceroute text', () => {
  it('prints an address only when it changes within a hop, and annotations after the time', () => {
    const text = formatTraceroute({
      destination: ip('192.168.158.2'),
      maxHops: 30,
      packetSize: 60,
      reached: false,
      hops: [
        { ttl: 9, probes: [{ from: ip('10.0.0.11'), rttMs: 0.123 }, {}, { from: ip('10.0.0.11'), rttMs: 0.09 }] },
        {
          ttl: 10,
          probes: [{ from: ip('10.0.0.12'), rttMs: 1 }, { from: ip('10.0.0.13'), rttMs: 2, annotation: '!H' }, {}],
        },
      ],
    });
    expect(text).toBe(
      [
        'traceroute to 192.168.158.2 (192.168.158.2), 30 hops max, 60 byte packets',
        ' 9  10.0.0.11 (10.0.0.11)  0.123 ms *  0.090 ms',
        '10  10.0.0.12 (10.0.0.12)  1.000 ms 10.0.0.13 (10.0.0.13)  2.000 ms !H *',
        '',
      ].join('\n'),
    );
  });
});

describe('curl text', () => {
  it('is the body, then the error line if any', () => {
    const base = { url: 'x', headers: [], timeMs: 0 };
    expect(formatCurl({ ...base, exitCode: 0, body: 'hi\n' })).toBe('hi\n');
    expect(
      formatCurl({
        ...base,
        exitCode: 18,
        body: 'par',
        error: 'curl: (18) transfer closed with 3 bytes remaining to read',
      }),
    ).toBe('parcurl: (18) transfer closed with 3 bytes remaining to read\n');
  });
});

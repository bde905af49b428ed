import { describe, expect, it } from 'vitest';
import { icmp } from '../../../../src/wire/icmp.js';
import { IP_PROTOCOL, Ipv4View, ipv4 } from '../../../../src/wire/ipv4.js';
import { TCP_FLAG, tcp, tcpMss, type DecodedTcpSegment } from '../../../../src/wire/tcp.js';
import { formatCurl } from '../../../../src/node/userspace/pod/report-text.js';
import { POD_A, POD_B, ip, twoPods } from './harness.js';

const CLIENT = 'client-7d9f8';
const SERVER = 'hello-world-54575d5b77-rz8vs';
const BODY = `Hello, world!\nVersion: 1.0.0\nHostname: ${SERVER}\n`;

function segments(views: Ipv4View[]): Array<DecodedTcpSegment & { ip: Ipv4View }> {
  return views
    .filter((view) => view.protocol === IP_PROTOCOL.TCP)
    .map((view) => {
      const decoded = tcp.decode(view.payload, { src: view.src, dst: view.dst });
      if (!decoded.ok) throw new Error(decoded.reason);
      return { ...decoded.value, ip: view };
    });
}

const flagsOf = (segment: DecodedTcpSegment) =>
  (['FIN', 'SYN', 'RST', 'PSH', 'ACK'] as const).filter((name) => segment.flags & TCP_FLAG[name]).join('|');

/** An ICMP host unreachable from 10.0.0.11 to pod A, quoting `quoted` (the start of one of pod A's packets). */
const hostUnreachable = (quoted: Buffer): Buffer =>
  ipv4.encode({
    identification: 9,
    ttl: 63,
    protocol: IP_PROTOCOL.ICMP,
    src: ip('10.0.0.11'),
    dst: POD_A,
    payload: icmp.encode({ kind: 'destination-unreachable', code: 1, nextHopMtu: 0, quoted }),
  });

describe('curl to hello-app across the fake host', () => {
  it('returns the hello-app body with the server pod name and Go net/http headers', async () => {
    const { clock, a } = twoPods();
    const report = await clock.settle(a.curl('http://192.168.87.198:8080/'));
    expect(report).toMatchObject({ exitCode: 0, status: 200, statusText: 'OK', httpVersion: '1.1', body: BODY });
    expect(report.headers).toEqual([
      ['Date', 'Mon, 15 Jan 2024 12:00:00 GMT'],
      ['Content-Length', String(BODY.length)],
      ['Content-Type', 'text/plain; charset=utf-8'],
    ]);
    expect(formatCurl(report)).toBe(BODY);
  });

  it('puts Linux-shaped segments on the wire: DF everywhere, MSS 1440, SYN-ACK with IP ID 0, then FIN both ways', async () => {
    const { clock, host, a } = twoPods();
    await clock.settle(a.curl('http://192.168.87.198:8080/'));
    await clock.advance(1000);
    const client = segments(host.sentBy(CLIENT));
    const server = segments(host.sentBy(SERVER));
    for (const segment of [...client, ...server]) expect(segment.ip.dontFragment).toBe(true);

    const [syn] = client;
    expect(flagsOf(syn)).toBe('SYN');
    expect(syn.window).toBe(64240);
    expect(tcpMss(syn.options)).toBe(1440);
    expect(syn.srcPort).toBeGreaterThanOrEqual(32768);
    expect(syn.srcPort).toBeLessThanOrEqual(60999);
    // MSS, NOP NOP timestamps, NOP window scale 7: Linux's layout without SACK.
    expect([...syn.options.subarray(0, 4)]).toEqual([2, 4, 0x05, 0xa0]);
    expect([...syn.options.subarray(4, 8)]).toEqual([1, 1, 8, 10]);
    expect([...syn.options.subarray(16)]).toEqual([1, 3, 3, 7]);

    const [synAck] = server;
    expect(flagsOf(synAck)).toBe('SYN|ACK');
    expect(synAck.ip.identification).toBe(0);
    expect(synAck.acknowledgment).toBe((syn.sequence + 1) >>> 0);
    expect(tcpMss(synAck.options)).toBe(1440);
    // The timestamp option echoes the client's TSval.
    expect(synAck.options.readUInt32BE(12)).toBe(syn.options.readUInt32BE(8));

    // Every ACK owed rides on data or FIN when there is some: the response acknowledges the request, curl's FIN
    // (sent as soon as the body is complete) the response.
    expect(client.map(flagsOf)).toEqual(['SYN', 'ACK', 'PSH|ACK', 'FIN|ACK', 'ACK']);
    expect(server.map(flagsOf)).toEqual(['SYN|ACK', 'PSH|ACK', 'FIN|ACK']);
    // A connected socket numbers its packets from one counter.
    const ids = client.map((segment) => segment.ip.identification);
    expect(ids.slice(1)).toEqual(ids.slice(1).map((_, i) => (ids[1] + i) & 0xffff));
    expect(ids[1]).toBe((ids[0] + 1) & 0xffff);
  });

  it('forgets both ends of the connection after TIME-WAIT, leaving no timer behind', async () => {
    const { clock, a } = twoPods();
    await clock.settle(a.curl('http://192.168.87.198:8080/'));
    await clock.advance(61_000);
    expect(clock.pendingTimers).toBe(0);
  });

  it('reports Connection refused on a closed port, after the pod answered the SYN with RST|ACK', async () => {
    const { clock, host, a } = twoPods();
    const report = await clock.settle(a.curl('http://192.168.87.198:8081/'));
    expect(report.exitCode).toBe(7);
    expect(formatCurl(report)).toBe('curl: (7) Failed to connect to 192.168.87.198 port 8081: Connection refused\n');
    const [syn] = segments(host.sentBy(CLIENT));
    const [reset] = segments(host.sentBy(SERVER));
    expect(flagsOf(reset)).toBe('RST|ACK');
    expect(reset).toMatchObject({
      sequence: 0,
      acknowledgment: (syn.sequence + 1) >>> 0,
      window: 0,
      srcPort: 8081,
      dstPort: syn.srcPort,
    });
    expect(reset.ip).toMatchObject({ identification: 0, dontFragment: true, ttl: 64 });
  });

  it('reassembles a response split over several segments when the client MSS is small', async () => {
    const { clock, host, a } = twoPods({}, { a: 100, b: 1480 });
    const report = await clock.settle(a.curl('http://192.168.87.198:8080/'));
    expect(report.body).toBe(BODY);
    const data = segments(host.sentBy(SERVER)).filter((segment) => segment.payload.length > 0);
    expect(data.length).toBeGreaterThanOrEqual(3);
    for (const segment of data) expect(segment.payload.length).toBeLessThanOrEqual(100 - 40 - 12);
  });

  it('recovers a lost SYN-ACK by retransmission', async () => {
    let dropped = 0;
    const { clock, a } = twoPods({ keep: (entry) => !(entry.from === SERVER && dropped++ === 0) });
    const report = await clock.settle(a.curl('http://192.168.87.198:8080/'));
    expect(report.body).toBe(BODY);
    expect(report.timeMs).toBeGreaterThanOrEqual(1000);
  });

  it('recovers lost response data by retransmission', async () => {
    const { clock, a } = twoPods({
      keep: (entry) => {
        if (entry.from !== SERVER || entry.view.protocol !== IP_PROTOCOL.TCP) return true;
        const decoded = tcp.decode(entry.view.payload, { src: POD_B, dst: POD_A });
        return !(
          decoded.ok &&
          decoded.value.payload.length > 0 &&
          !lost.has(decoded.value.sequence) &&
          lost.add(decoded.value.sequence)
        );
      },
    });
    const lost = new Set<number>();
    const report = await clock.settle(a.curl('http://192.168.87.198:8080/'));
    expect(lost.size).toBe(1);
    expect(report).toMatchObject({ exitCode: 0, body: BODY });
  });

  it('gives up after the SYN retries like Linux (127 s) when nothing answers', async () => {
    const { clock, host, a } = twoPods();
    const report = await clock.settle(a.curl('http://192.168.87.250:8080/'));
    expect(formatCurl(report)).toBe('curl: (7) Failed to connect to 192.168.87.250 port 8080: Connection timed out\n');
    expect(report.timeMs).toBe(127_000);
    expect(segments(host.sentBy(CLIENT)).map(flagsOf)).toEqual(Array(7).fill('SYN'));
  });

  it('honours --max-time while connecting', async () => {
    const { clock, a } = twoPods();
    const report = await clock.settle(a.curl('192.168.87.250:8080', { timeoutMs: 2000 }));
    expect(report.error).toBe('curl: (28) Connection timed out after 2000 milliseconds');
  });

  it('fails the connect on an ICMP host unreachable that quotes its SYN', async () => {
    const { clock, host, a } = twoPods();
    const running = a.curl('http://192.168.87.250:8080/');
    await clock.advance(5);
    const [syn] = host.sentBy(CLIENT);
    a.receive(hostUnreachable(syn.packet.subarray(0, 28)));
    const report = await clock.settle(running);
    expect(report.error).toBe('curl: (7) Failed to connect to 192.168.87.250 port 8080: No route to host');
  });

  it('ignores an ICMP error whose quoted sequence number is not in flight (RFC 5927)', async () => {
    const { clock, host, a } = twoPods();
    const running = a.curl('http://192.168.87.250:8080/', { timeoutMs: 3000 });
    await clock.advance(5);
    const syn = Buffer.from(host.sentBy(CLIENT)[0].packet.subarray(0, 28));
    syn.writeUInt32BE((syn.readUInt32BE(24) + 1000) >>> 0, 24);
    a.receive(hostUnreachable(syn));
    const report = await clock.settle(running);
    expect(report.exitCode).toBe(28);
    expect(a.counters.drops['icmp-unmatched']).toBe(1);
  });

  it('rejects URLs curl could not use', async () => {
    const { clock, a } = twoPods();
    expect((await clock.settle(a.curl('https://192.168.87.198/'))).error).toBe(
      'curl: (1) Protocol "https" not supported or disabled in libcurl',
    );
    expect((await clock.settle(a.curl('http://hello-world/'))).error).toBe(
      'curl: (6) Could not resolve host: hello-world',
    );
  });
});

describe('TCP segments that belong to no connection', () => {
  function segmentTo(
    port: number,
    flags: number,
    sequence: number,
    acknowledgment: number,
    payload = Buffer.alloc(0),
  ): Buffer {
    return ipv4.encode({
      identification: 5,
      dscp: 0x2e,
      ecn: 1,
      dontFragment: true,
      ttl: 63,
      protocol: IP_PROTOCOL.TCP,
      src: POD_A,
      dst: POD_B,
      payload: tcp.encode(
        { srcPort: 40000, dstPort: port, sequence, acknowledgment, flags, window: 1000, payload },
        { src: POD_A, dst: POD_B },
      ),
    });
  }

  it('answers an ACK to the listener with <SEQ=SEG.ACK><CTL=RST>, keeping the TOS without its ECN bits', async () => {
    const { clock, host, b } = twoPods();
    b.receive(segmentTo(8080, TCP_FLAG.ACK, 1000, 123456));
    await clock.advance(5);
    const [reset] = segments(host.sentBy(SERVER));
    expect(flagsOf(reset)).toBe('RST');
    expect(reset.sequence).toBe(123456);
    expect(reset.ip.buffer[1]).toBe(0x2e << 2);
    expect(b.counters.drops['tcp-unacceptable']).toBe(1);
  });

  it('answers data to a closed port with RST|ACK acknowledging SEG.SEQ+SEG.LEN, and never answers a RST', async () => {
    const { clock, host, b } = twoPods();
    b.receive(segmentTo(9000, TCP_FLAG.PSH, 5000, 0, Buffer.from('hello')));
    b.receive(segmentTo(9000, TCP_FLAG.RST, 5000, 0));
    await clock.advance(5);
    const resets = segments(host.sentBy(SERVER));
    expect(resets).toHaveLength(1);
    expect(flagsOf(resets[0])).toBe('RST|ACK');
    expect(resets[0].acknowledgment).toBe(5005);
    expect(b.counters.drops['tcp-no-socket']).toBe(2);
  });

  it('bounds half-open connections so a SYN flood cannot grow memory', async () => {
    const { clock, host, b } = twoPods();
    for (let i = 0; i < 300; i++) {
      const syn = ipv4.encode({
        identification: i,
        ttl: 63,
        protocol: IP_PROTOCOL.TCP,
        src: POD_A,
        dst: POD_B,
        payload: tcp.encode(
          {
            srcPort: 1000 + i,
            dstPort: 8080,
            sequence: i,
            acknowledgment: 0,
            flags: TCP_FLAG.SYN,
            window: 1000,
            payload: Buffer.alloc(0),
          },
          { src: POD_A, dst: POD_B },
        ),
      });
      b.receive(syn);
    }
    await clock.advance(5);
    expect(segments(host.sentBy(SERVER))).toHaveLength(256);
    // Unanswered SYN-ACKs are retried 5 times, then the half-open connections are dropped.
    await clock.advance(200_000);
    expect(clock.pendingTimers).toBe(0);
  });
});

/** TCP corner cases, against a scripted peer whose every segment the test writes by hand. */
import { describe, expect, it } from 'vitest';
import { IP_PROTOCOL, Ipv4View, ipv4 } from '../../../../src/wire/ipv4.js';
import { TCP_FLAG, tcp, type DecodedTcpSegment } from '../../../../src/wire/tcp.js';
import { POD_A, POD_B, ip, twoPods, type FakeHost } from './harness.js';

const PEER = ip('10.1.1.1');
const RESPONSE = 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789';

/** A TCP endpoint at PEER:80 (or talking to a pod's port) that records what it gets and sends what it is told. */
class ScriptedPeer {
  readonly received: DecodedTcpSegment[] = [];
  readonly iss = 5000;
  onSegment: (segment: DecodedTcpSegment) => void = () => undefined;

  constructor(
    private readonly host: FakeHost,
    private readonly address: number,
    private readonly podAddress: number,
  ) {
    host.addEndpoint(address, (view: Ipv4View) => {
      const decoded = tcp.decode(view.payload, { src: view.src, dst: view.dst });
      if (!decoded.ok) throw new Error(decoded.reason);
      this.received.push(decoded.value);
      this.onSegment(decoded.value);
    });
  }

  send(
    to: DecodedTcpSegment | { srcPort: number; dstPort: number },
    fields: { flags: number; sequence: number; acknowledgment: number; window?: number; payload?: string },
  ): void {
    const segment = tcp.encode(
      {
        srcPort: to.dstPort,
        dstPort: to.srcPort,
        sequence: fields.sequence >>> 0,
        acknowledgment: fields.acknowledgment >>> 0,
        flags: fields.flags,
        window: fields.window ?? 65535,
        payload: Buffer.from(fields.payload ?? '', 'latin1'),
      },
      { src: this.address, dst: this.podAddress },
    );
    this.host.inject(
      ipv4.encode({
        identification: 1,
        dontFragment: true,
        ttl: 64,
        protocol: IP_PROTOCOL.TCP,
        src: this.address,
        dst: this.podAddress,
        payload: segment,
      }),
    );
  }
}

const flags = (segment: DecodedTcpSegment) =>
  (['FIN', 'SYN', 'RST', 'PSH', 'ACK'] as const).filter((name) => segment.flags & TCP_FLAG[name]).join('|');

/** A server that answers a SYN with a SYN-ACK offering `window`, and hands every segment carrying data to `onData`. */
function serve(peer: ScriptedPeer, onData: (segment: DecodedTcpSegment) => void, window = 65535) {
  peer.onSegment = (segment) => {
    if (segment.flags & TCP_FLAG.SYN) {
      peer.send(segment, {
        flags: TCP_FLAG.SYN | TCP_FLAG.ACK,
        sequence: peer.iss,
        acknowledgment: segment.sequence + 1,
        window,
      });
    } else if (segment.payload.length > 0) {
      onData(segment);
    }
  };
}

/** A server that completes the handshake and acknowledges whatever arrives, and nothing else. */
function silentServer(peer: ScriptedPeer) {
  serve(peer, (segment) =>
    peer.send(segment, {
      flags: TCP_FLAG.ACK,
      sequence: peer.iss + 1,
      acknowledgment: segment.sequence + segment.payload.length,
    }),
  );
}

describe('TCP against a scripted peer', () => {
  it('stays silent on an idle established connection (server side)', async () => {
    const { clock, host } = twoPods();
    const peer = new ScriptedPeer(host, PEER, POD_B);
    const client = { srcPort: 8080, dstPort: 40000 };
    peer.send(client, { flags: TCP_FLAG.SYN, sequence: 100, acknowledgment: 0 });
    await clock.advance(10);
    const [synAck] = peer.received;
    peer.send(client, { flags: TCP_FLAG.ACK, sequence: 101, acknowledgment: synAck.sequence + 1 });
    await clock.advance(30_000);
    expect(peer.received.map(flags)).toEqual(['SYN|ACK']);
  });

  it('ignores everything once closed, even closed before it ever saw a packet', async () => {
    const { clock, host, b } = twoPods();
    const peer = new ScriptedPeer(host, PEER, POD_B);
    b.close();
    peer.send({ srcPort: 8080, dstPort: 40000 }, { flags: TCP_FLAG.SYN, sequence: 100, acknowledgment: 0 });
    await clock.advance(10);
    expect(peer.received).toEqual([]);
    expect(b.counters.rxPackets).toBe(0);
    expect(clock.pendingTimers).toBe(0);
    await expect(b.ping(PEER)).rejects.toThrow(/closed/);
  });

  it('stays silent once its request is acknowledged, until curl gives up (client side)', async () => {
    const { clock, host, a } = twoPods();
    const peer = new ScriptedPeer(host, PEER, POD_A);
    silentServer(peer);
    const report = await clock.settle(a.curl('http://10.1.1.1/', { timeoutMs: 10_000 }));
    await clock.advance(10);
    expect(report.error).toBe('curl: (28) Operation timed out after 10000 milliseconds with 0 bytes received');
    expect(peer.received.map(flags)).toEqual(['SYN', 'ACK', 'PSH|ACK', 'FIN|ACK']);
  });

  it('drops an out-of-order segment with a duplicate ACK and takes it once it is in order', async () => {
    const { clock, host, a } = twoPods();
    const peer = new ScriptedPeer(host, PEER, POD_A);
    const first = RESPONSE.slice(0, 20);
    const second = RESPONSE.slice(20);
    serve(peer, (segment) => {
      const ack = segment.sequence + segment.payload.length;
      peer.send(segment, { flags: TCP_FLAG.ACK, sequence: peer.iss + 21, acknowledgment: ack, payload: second });
      peer.send(segment, { flags: TCP_FLAG.ACK, sequence: peer.iss + 1, acknowledgment: ack, payload: first });
      peer.send(segment, {
        flags: TCP_FLAG.ACK | TCP_FLAG.PSH,
        sequence: peer.iss + 21,
        acknowledgment: ack,
        payload: second,
      });
    });
    const report = await clock.settle(a.curl('http://10.1.1.1/'));
    await clock.advance(10);
    expect(report).toMatchObject({ exitCode: 0, body: '0123456789' });
    const acks = peer.received.slice(3).map((segment) => segment.acknowledgment - peer.iss);
    expect(acks.slice(0, 2)).toEqual([1, 21]);
  });

  it('answers an in-window RST that misses RCV.NXT with a challenge ACK, and resets on an exact one', async () => {
    const { clock, host, a } = twoPods();
    const peer = new ScriptedPeer(host, PEER, POD_A);
    serve(peer, (segment) => {
      peer.send(segment, { flags: TCP_FLAG.RST, sequence: peer.iss + 100, acknowledgment: 0 });
      peer.send(segment, { flags: TCP_FLAG.RST, sequence: peer.iss + 1, acknowledgment: 0 });
    });
    const report = await clock.settle(a.curl('http://10.1.1.1/'));
    await clock.advance(10);
    expect(report.error).toBe('curl: (56) Recv failure: Connection reset by peer');
    const afterRequest = peer.received.slice(3);
    expect(afterRequest.map(flags)).toEqual(['ACK']);
    expect(afterRequest[0].acknowledgment).toBe(peer.iss + 1);
  });

  it('probes a zero window with one byte, then sends the rest when the window opens', async () => {
    const { clock, host, a } = twoPods();
    const peer = new ScriptedPeer(host, PEER, POD_A);
    serve(
      peer,
      (segment) => {
        const ack = segment.sequence + segment.payload.length;
        peer.send(segment, { flags: TCP_FLAG.ACK, sequence: peer.iss + 1, acknowledgment: ack });
        if (segment.payload.length > 1)
          peer.send(segment, {
            flags: TCP_FLAG.ACK | TCP_FLAG.PSH,
            sequence: peer.iss + 1,
            acknowledgment: ack,
            payload: RESPONSE,
          });
      },
      0,
    );
    const report = await clock.settle(a.curl('http://10.1.1.1/'));
    expect(report.body).toBe('0123456789');
    const data = peer.received.filter((segment) => segment.payload.length > 0);
    expect(data[0].payload.length).toBe(1);
    expect(report.timeMs).toBeGreaterThanOrEqual(1000);
  });

  it('survives a spurious timeout: a late ACK for data sent before the go-back-N is accepted', async () => {
    // The client's bare ACKs are lost and its FIN, which acknowledges the whole response, takes 1.5 s: longer than
    // the server's 1 s RTO, so it arrives acknowledging more than the server has resent since.
    const clientSegment = (entry: { from: string; view: Ipv4View }) => {
      if (entry.from !== 'client-7d9f8') return undefined;
      const decoded = tcp.decode(entry.view.payload, { src: POD_A, dst: POD_B });
      return decoded.ok ? decoded.value : undefined;
    };
    const { clock, host, a } = twoPods(
      {
        keep: (entry) => {
          const segment = clientSegment(entry);
          return !(segment !== undefined && segment.flags === TCP_FLAG.ACK && segment.payload.length === 0);
        },
        extraDelayMs: (entry) => ((clientSegment(entry)?.flags ?? 0) & TCP_FLAG.FIN ? 1500 : 0),
      },
      { a: 100, b: 1480 },
    );
    const report = await clock.settle(a.curl('http://192.168.87.198:8080/'));
    expect(report).toMatchObject({
      exitCode: 0,
      body: expect.stringContaining('Hostname: hello-world-54575d5b77-rz8vs'),
    });
    // curl is done at once; the server, hearing nothing for 1 s, goes back to its first unacknowledged segment.
    await clock.advance(3000);
    const server = host
      .sentBy('hello-world-54575d5b77-rz8vs')
      .map((view) => tcp.decode(view.payload, { src: POD_B, dst: POD_A }))
      .flatMap((decoded) => (decoded.ok ? [decoded.value] : []));
    const sequences = server.filter((segment) => segment.payload.length > 0).map((segment) => segment.sequence);
    expect(new Set(sequences).size).toBeLessThan(sequences.length);
    // The late ACKs and curl's FIN were taken, although they acknowledge beyond what was resent: the server closed.
    expect(server.some((segment) => segment.flags & TCP_FLAG.FIN)).toBe(true);
    await clock.advance(61_000);
    expect(clock.pendingTimers).toBe(0);
  });
});

/**
 * The pod against real Linux pods captured in test/fixtures/vectors: fed the packets a real pod received, it must
 * answer with the same ICMP bytes and the same IP header rules.
 */
import { describe, expect, it } from 'vitest';
import { joinFragments } from '../../../../src/wire/fragment.js';
import { decapsulate } from '../../../../src/wire/ipip.js';
import { IP_PROTOCOL, Ipv4View } from '../../../../src/wire/ipv4.js';
import { pcapng } from '../../../../src/wire/pcapng.js';
import { TCP_FLAG, tcp, tcpMss } from '../../../../src/wire/tcp.js';
import { SimulatedPod } from '../../../../src/node/userspace/pod/pod.js';
import { formatPing } from '../../../../src/node/userspace/pod/report-text.js';
import { mulberry32 } from '../../../support/random.js';
import { readVector } from '../../../support/wire-vectors.js';
import { FakeClock, ip, oneFailedProbeText } from './harness.js';

const ETHERNET_HEADER = 14;

/** The inner packets of a capture, by frame number (1-based, as in the README tables). */
function innerFrames(file: string): Buffer[] {
  const capture = pcapng.decode(readVector(file));
  if (!capture.ok) throw new Error(capture.reason);
  return capture.value.packets.map(({ data }) => {
    const decapsulated = decapsulate(Buffer.from(data.subarray(ETHERNET_HEADER)));
    if (!decapsulated.ok) throw new Error(decapsulated.reason);
    return Buffer.from(decapsulated.value.inner.packet);
  });
}

const frame = (frames: Buffer[], number: number) => frames[number - 1];

/** What the pod receives: the captured inner packet after the destination node's forwarding decrement. */
function afterNode(packet: Buffer): Buffer {
  const copy = Buffer.from(packet);
  new Ipv4View(copy).decrementTtl();
  return copy;
}

function capturePod(address: string, mtu = 1480) {
  const clock = new FakeClock();
  const sent: Ipv4View[] = [];
  const pod = new SimulatedPod({
    name: 'hello-world-54575d5b77-rz8vs',
    ip: ip(address),
    mtu,
    now: clock.now,
    setTimer: clock.setTimer,
    random: mulberry32(3),
    httpApp: 'hello-app',
    transmit: (packet) => sent.push(new Ipv4View(Buffer.from(packet))),
  });
  return { clock, pod, sent };
}

describe('a pod answering the packets real pods received', () => {
  it('echo replies carry the captured ICMP bytes, TTL 64, DF 0 and TOS 0 (ping-df frames 1-4)', () => {
    const frames = innerFrames('ping-df.pcapng');
    for (const [request, captured] of [
      [1, 2],
      [3, 4],
    ]) {
      const { pod, sent } = capturePod('192.168.87.198');
      pod.receive(afterNode(frame(frames, request)));
      const expected = new Ipv4View(frame(frames, captured));
      expect(sent).toHaveLength(1);
      expect(sent[0].payload.equals(expected.payload)).toBe(true);
      expect(sent[0]).toMatchObject({
        ttl: 64,
        dontFragment: false,
        totalLength: 84,
        src: expected.src,
        dst: expected.dst,
      });
      expect(sent[0].buffer[1]).toBe(0);
      // The captured reply left the pod with TTL 64 too: 63 is after its node's decrement.
      expect(expected.ttl).toBe(63);
    }
  });

  it('echo replies copy the request TOS byte, ECN bits included (ecn frames 1-8)', () => {
    const frames = innerFrames('ecn.pcapng');
    for (const request of [1, 3, 5, 7]) {
      const { pod, sent } = capturePod('192.168.87.198');
      pod.receive(afterNode(frame(frames, request)));
      const expected = new Ipv4View(frame(frames, request + 1));
      expect(sent[0].buffer[1]).toBe(expected.buffer[1]);
      expect(sent[0].payload.equals(expected.payload)).toBe(true);
    }
  });

  it('a closed UDP port earns the captured ICMP 3/3, byte for byte, with TOS 0xc0 and DF 0 (udp-tcp frames 1-2)', () => {
    const frames = innerFrames('udp-tcp.pcapng');
    const { pod, sent } = capturePod('192.168.87.198');
    pod.receive(afterNode(frame(frames, 1)));
    const expected = new Ipv4View(frame(frames, 2));
    expect(sent).toHaveLength(1);
    expect(sent[0].payload.equals(expected.payload)).toBe(true);
    expect(sent[0]).toMatchObject({ ttl: 64, dontFragment: false, totalLength: 77, protocol: IP_PROTOCOL.ICMP });
    expect(sent[0].buffer[1]).toBe(0xc0);
    expect(expected.buffer[1]).toBe(0xc0);
  });

  it('reassembles the three-piece 1501-byte request and sends the captured 1481-byte reply (big-nodf frames 1-6)', () => {
    const frames = innerFrames('big-nodf.pcapng');
    // The captured pod had eth0 MTU 1500: it cut its reply into 1500 + 21 bytes before its node re-cut it.
    const { pod, sent } = capturePod('192.168.87.198', 1500);
    for (const number of [1, 2, 3]) pod.receive(afterNode(frame(frames, number)));
    expect(sent.map((view) => [view.totalLength, view.moreFragments, view.fragmentByteOffset])).toEqual([
      [1500, true, 0],
      [21, false, 1480],
    ]);
    const ours = joinFragments(sent.map((view) => view.packet));
    const theirs = joinFragments([4, 5, 6].map((number) => frame(frames, number)));
    if (!ours.ok || !theirs.ok) throw new Error('join failed');
    expect(new Ipv4View(ours.value).payload.equals(new Ipv4View(theirs.value).payload)).toBe(true);
  });

  it('answers a DF request of exactly 1480 bytes and IP ID 0 with the captured reply (big-df frames 1-2)', () => {
    const frames = innerFrames('big-df.pcapng');
    const request = new Ipv4View(frame(frames, 1));
    expect(request).toMatchObject({ identification: 0, dontFragment: true, totalLength: 1480 });
    const { pod, sent } = capturePod('192.168.87.198');
    pod.receive(afterNode(frame(frames, 1)));
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ totalLength: 1480, dontFragment: false });
    expect(sent[0].payload.equals(new Ipv4View(frame(frames, 2)).payload)).toBe(true);
  });

  it('answers the captured SYN like the captured SYN-ACK: DF, IP ID 0, MSS 1460 at MTU 1500, TSecr = TSval (udp-tcp frames 3-4)', () => {
    const frames = innerFrames('udp-tcp.pcapng');
    const { pod, sent } = capturePod('192.168.87.198', 1500);
    // The capture's listener was nc; the pod's is hello-app on the same port.
    pod.receive(afterNode(frame(frames, 3)));
    const syn = tcpOf(new Ipv4View(frame(frames, 3)));
    const captured = new Ipv4View(frame(frames, 4));
    const synAck = tcpOf(sent[0]);
    expect(synAck.flags).toBe(TCP_FLAG.SYN | TCP_FLAG.ACK);
    expect(sent[0]).toMatchObject({
      identification: captured.identification,
      dontFragment: captured.dontFragment,
      ttl: 64,
    });
    expect(tcpMss(synAck.options)).toBe(tcpMss(tcpOf(captured).options));
    expect(synAck.acknowledgment).toBe(tcpOf(captured).acknowledgment);
    expect(synAck.srcPort).toBe(syn.dstPort);
    expect(synAck.options.readUInt32BE(12)).toBe(syn.options.readUInt32BE(8));
  });

  it("reports the captured Time exceeded in ping's words (ttl2 frames 1-2, vectors 6a)", async () => {
    const frames = innerFrames('ttl2.pcapng');
    const { clock, pod } = capturePod('192.168.77.130');
    const running = pod.ping(ip('192.168.87.198'), { count: 1, ttl: 2, ident: 437 });
    // The error as the pod's node delivers it (decapsulated, then forwarded to the pod).
    pod.receive(afterNode(frame(frames, 2)));
    const report = await clock.settle(running);
    expect(formatPing(report)).toBe(
      oneFailedProbeText('56(84)', 'From 192.168.87.192 icmp_seq=1 Time to live exceeded'),
    );
  });
});

function tcpOf(view: Ipv4View) {
  const decoded = tcp.decode(view.payload, { src: view.src, dst: view.dst });
  if (!decoded.ok) throw new Error(decoded.reason);
  return decoded.value;
}

/**
 * The kernel captures replayed through two dataplanes wired like the vectors' VMs: what the pods sent goes in, and
 * what our nodes put on the wire must be what the kernels put there, field by field, apart from IP IDs.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { joinFragments } from '../../../../src/wire/fragment.js';
import { Ipv4View } from '../../../../src/wire/ipv4.js';
import { loadVector } from '../../../support/wire-vectors.js';
import {
  NODE_A,
  NODE_B,
  POD_A,
  POD_B,
  asSentByPod,
  checkCountersAfterEachTest,
  decoded,
  echo,
  expectSameApartFromIds,
  icmpOf,
  idOf,
  innerOf,
  ipv4ToString,
  makeNode,
  takeDelivered,
  takeSent,
  withTtl,
  type TestNode,
} from './harness.js';

checkCountersAfterEachTest();

const frames = (file: string): Buffer[] => loadVector(file).map((frame) => frame.ip);

let a: TestNode;
let b: TestNode;

beforeEach(() => {
  a = makeNode(NODE_A);
  b = makeNode(NODE_B);
});

/** Which side of the vectors a frame's outer source is: the node that sent it, and the pod of the other node. */
function sides(frame: Buffer): { from: TestNode; fromPod: string; to: TestNode; toPod: string } {
  return ipv4ToString(frame.readUInt32BE(12)) === NODE_A.nodeIp
    ? { from: a, fromPod: POD_A.name, to: b, toPod: POD_B.name }
    : { from: b, fromPod: POD_B.name, to: a, toPod: POD_A.name };
}

/**
 * A frame that is a pod's packet forwarded by its node: fed in as the pod sent it (one hop earlier), our node must
 * emit the frame; fed to the other node, its pod must get the inner packet one hop later.
 */
function replayPodFrame(frame: Buffer): void {
  const { from, fromPod, to, toPod } = sides(frame);
  from.dp.fromPod(fromPod, asSentByPod(innerOf(frame)));
  const [sent, ...more] = takeSent(from);
  expect(more).toEqual([]);
  expectSameApartFromIds(sent.packet, frame);
  expect(sent.destination).toBe(ipv4ToString(frame.readUInt32BE(16)));

  to.dp.fromUnderlay(frame);
  expect(takeDelivered(to, toPod)).toEqual([withTtl(innerOf(frame), -1)]);
  expect(takeSent(to)).toEqual([]);
}

describe('case 1 ping-df and case 2 ping-nodf', () => {
  it.each(['ping-df.pcapng', 'ping-nodf.pcapng'])('%s: requests and replies as the kernel sent them', (file) => {
    for (const frame of frames(file)) replayPodFrame(frame);
    // Each node took two packets from its pod and two from the wire.
    expect(a.dp.stats()).toMatchObject({ received: 4, delivered: 2, forwarded: 2, dropped: 0 });
    expect(b.dp.stats()).toMatchObject({ received: 4, delivered: 2, forwarded: 2, dropped: 0 });
  });

  it('copies DF into the outer header and never sets it on its own (rule 3)', () => {
    const [df] = frames('ping-df.pcapng');
    const [nodf] = frames('ping-nodf.pcapng');
    a.dp.fromPod(POD_A.name, asSentByPod(innerOf(df)));
    a.dp.fromPod(POD_A.name, asSentByPod(innerOf(nodf)));
    const [withDf, withoutDf] = takeSent(a).map((sent) => decoded(sent.packet));
    expect([withDf.dontFragment, withoutDf.dontFragment]).toEqual([true, false]);
    expect([withDf.ttl, withoutDf.ttl]).toEqual([63, 63]);
    expect(withDf.identification).not.toBe(decoded(innerOf(df)).identification);
  });
});

describe('case 3 ecn', () => {
  it('copies ECN outwards except CE → ECT(0), DSCP 0, and decapsulates the inner TOS unchanged', () => {
    const all = frames('ecn.pcapng');
    for (const frame of all) replayPodFrame(frame);
    expect(all.map((frame) => frame[1])).toEqual([0x01, 0x01, 0x02, 0x02, 0x02, 0x02, 0x00, 0x00]);
  });
});

describe('case 4 big-nodf', () => {
  it("4a: re-fragments the pod's 1500-byte first fragment to 1480 before encapsulating, consecutive outer IDs", () => {
    const [f1, f2, f3, f4, f5, f6] = frames('big-nodf.pcapng');
    for (const [first, second, last, from, pod] of [
      [f1, f2, f3, a, POD_A.name],
      [f4, f5, f6, b, POD_B.name],
    ] as const) {
      // The pod split its 1501-byte datagram at its own MTU 1500: a 1500-byte first fragment and a 21-byte rest.
      const podFirstFragment = joinFragments([innerOf(first), innerOf(second)]);
      if (!podFirstFragment.ok) throw new Error(podFirstFragment.reason);
      expect(podFirstFragment.value.length).toBe(1500);
      from.dp.fromPod(pod, asSentByPod(podFirstFragment.value));
      from.dp.fromPod(pod, asSentByPod(innerOf(last)));
      const sent = takeSent(from).map((s) => s.packet);
      expect(sent).toHaveLength(3);
      sent.forEach((packet, index) => expectSameApartFromIds(packet, [first, second, last][index]));
      expect(idOf(sent[1])).toBe((idOf(sent[0]) + 1) & 0xffff);
      expect(idOf(sent[2])).toBe((idOf(sent[1]) + 1) & 0xffff);
    }

    // Nothing is reassembled on the way: the pod gets three pieces, one hop later.
    for (const frame of [f1, f2, f3]) b.dp.fromUnderlay(frame);
    expect(takeDelivered(b, POD_B.name)).toEqual([f1, f2, f3].map((frame) => withTtl(innerOf(frame), -1)));
    expect(b.dp.stats().interfaces.tunl0.rxPackets).toBe(3);
  });

  it('4b: splits a 1488-byte DF=0 packet into 1476 (MF) + 32 at offset 1456', () => {
    const all = frames('big-nodf.pcapng');
    for (const [first, second, from, pod] of [
      [all[6], all[7], a, POD_A.name],
      [all[8], all[9], b, POD_B.name],
    ] as const) {
      const whole = joinFragments([innerOf(first), innerOf(second)]);
      if (!whole.ok) throw new Error(whole.reason);
      expect(decoded(whole.value)).toMatchObject({ totalLength: 1488, moreFragments: false, fragmentOffset: 0 });
      from.dp.fromPod(pod, asSentByPod(whole.value));
      const sent = takeSent(from);
      expect(sent).toHaveLength(2);
      expectSameApartFromIds(sent[0].packet, first);
      expectSameApartFromIds(sent[1].packet, second);
    }
    expect(a.dp.stats()).toMatchObject({ received: 1, forwarded: 1 });
    expect(a.dp.stats().interfaces.tunl0.txPackets).toBe(2);
  });
});

describe('case 5 big-df', () => {
  it('5b: a 1488-byte DF packet earns ICMP 3/4 mtu 1480 from the node IP, nothing on the wire (rule 8)', () => {
    const big = echo({ src: POD_A.ip, dst: POD_B.ip, df: true, id: 0, identifier: 404, dataLength: 1460 });
    expect(big.length).toBe(1488);
    a.dp.fromPod(POD_A.name, big);
    expect(takeSent(a)).toEqual([]);
    const [error] = takeDelivered(a, POD_A.name);
    expect(decoded(error)).toMatchObject({
      src: a.dp.config.nodeIp.value,
      dst: decoded(big).src,
      ttl: 64,
      dscp: 0xc0 >> 2,
      ecn: 0,
      dontFragment: false,
      totalLength: 576,
    });
    expect(icmpOf(error)).toEqual({
      kind: 'destination-unreachable',
      code: 4,
      nextHopMtu: 1480,
      quoted: big.subarray(0, 548),
    });
    expect(a.dp.stats().drops['frag-needed']).toBe(1);
  });

  it('5c: exactly 1480 inner bytes with DF pass as a 1500-byte outer packet', () => {
    const all = frames('big-df.pcapng');
    for (const frame of all) replayPodFrame(frame);
    expect(all.map((frame) => frame.length)).toEqual([1500, 1500]);
  });

  it('one byte more with DF does not', () => {
    const big = echo({ src: POD_A.ip, dst: POD_B.ip, df: true, dataLength: 1453 });
    a.dp.fromPod(POD_A.name, big);
    expect(takeSent(a)).toEqual([]);
    expect(icmpOf(takeDelivered(a, POD_A.name)[0])).toMatchObject({ code: 4, nextHopMtu: 1480 });
  });
});

describe('case 6 ttl2', () => {
  it('6a: the remote node answers Time exceeded from its tunl0 address, IPIP-encapsulated, byte for byte', () => {
    const [f1, f2] = frames('ttl2.pcapng');
    a.dp.fromPod(POD_A.name, asSentByPod(innerOf(f1)));
    const [sent] = takeSent(a);
    expectSameApartFromIds(sent.packet, f1);
    expect(sent.packet[8]).toBe(1);

    b.dp.fromUnderlay(f1);
    expect(takeDelivered(b, POD_B.name)).toEqual([]);
    const [error, ...more] = takeSent(b);
    expect(more).toEqual([]);
    expect(error.destination).toBe(NODE_A.nodeIp);
    // Outer and inner headers apart from their IDs; the ICMP message, quote included, exactly.
    expectSameApartFromIds(error.packet, f2, [0, 20]);
    expect(b.dp.stats().drops['ttl-expired']).toBe(1);

    a.dp.fromUnderlay(f2);
    const [toPod] = takeDelivered(a, POD_A.name);
    expect(toPod).toEqual(withTtl(innerOf(f2), -1));
    expect(decoded(toPod).src).toBe(b.dp.config.tunnelAddress!.value);
    expect(a.dp.stats().events['asymmetric-inner-source']).toBe(0);
  });

  it('6b: TTL 1 from the pod: the first hop answers from its node IP, nothing on the wire', () => {
    const [f1] = frames('ttl2.pcapng');
    const ttl1 = withTtl(innerOf(f1), 0);
    a.dp.fromPod(POD_A.name, ttl1);
    expect(takeSent(a)).toEqual([]);
    const [error] = takeDelivered(a, POD_A.name);
    expect(decoded(error)).toMatchObject({ src: a.dp.config.nodeIp.value, ttl: 64, dscp: 0x30, dontFragment: false });
    expect(icmpOf(error)).toEqual({ kind: 'time-exceeded', code: 0, quoted: ttl1 });
  });

  it('6c: TTL 3 arrives at the remote pod with TTL 1', () => {
    const all = frames('ttl2.pcapng');
    replayPodFrame(all[2]);
    replayPodFrame(all[3]);
    expect(all[2][8]).toBe(2);
  });
});

describe('case 7 blackhole', () => {
  it('7a: the remote node drops addresses in its blackholed block silently, after counting them on tunl0', () => {
    const all = frames('blackhole.pcapng');
    for (const frame of all) {
      a.dp.fromPod(POD_A.name, asSentByPod(innerOf(frame)));
      expectSameApartFromIds(takeSent(a)[0].packet, frame);
      b.dp.fromUnderlay(frame);
    }
    expect(takeSent(b)).toEqual([]);
    expect(takeDelivered(b, POD_B.name)).toEqual([]);
    const stats = b.dp.stats();
    expect(stats.drops.blackhole).toBe(2);
    expect(stats.interfaces.tunl0.rxPackets).toBe(2);
    expect(stats.originated).toBe(0);
  });

  it('7b: the local block drops before any encapsulation, no ICMP to the pod', () => {
    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: '192.168.77.150' }));
    expect(takeSent(a)).toEqual([]);
    expect(takeDelivered(a, POD_A.name)).toEqual([]);
    expect(a.dp.stats()).toMatchObject({ received: 1, originated: 0, dropped: 1 });
    expect(a.dp.stats().drops.blackhole).toBe(1);
  });
});

describe('case 8 udp-tcp', () => {
  it("carries UDP, a pod's ICMP port unreachable and a TCP exchange untouched (rules 16, 17)", () => {
    for (const frame of frames('udp-tcp.pcapng')) replayPodFrame(frame);
    expect(a.dp.stats().forwarded + b.dp.stats().forwarded).toBe(12);
  });
});

describe('case 9 node-to-pod', () => {
  it("9a: the node's own ping leaves with the tunl0 address as source, TTL 64 inside and out (rule 14)", () => {
    const [f1, f2, f3, f4] = frames('node-to-pod.pcapng');
    for (const [request, reply] of [
      [f1, f2],
      [f3, f4],
    ]) {
      // Sent from an unbound socket: the dataplane picks the source.
      const unbound = Buffer.from(innerOf(request));
      const view = new Ipv4View(unbound);
      view.src = 0;
      view.fillChecksum();
      a.dp.sendFromNode(unbound);
      const [sent] = takeSent(a);
      expectSameApartFromIds(sent.packet, request);
      expect(sent.packet.subarray(20)).toEqual(innerOf(request));

      b.dp.fromUnderlay(request);
      expect(takeDelivered(b, POD_B.name)).toEqual([withTtl(innerOf(request), -1)]);
      b.dp.fromPod(POD_B.name, asSentByPod(innerOf(reply)));
      expectSameApartFromIds(takeSent(b)[0].packet, reply);

      // The reply ends in the node's own stack.
      a.dp.fromUnderlay(reply);
      expect(a.local.splice(0)).toEqual([innerOf(reply)]);
    }
    expect(a.dp.stats()).toMatchObject({ originated: 2, forwarded: 2, received: 2, consumed: 2 });
  });

  it('9b: the remote tunl0 address answers from inside its blackholed block', () => {
    const all = frames('node-to-pod.pcapng');
    const [request, reply] = [all[4], all[5]];
    a.dp.sendFromNode(innerOf(request));
    expectSameApartFromIds(takeSent(a)[0].packet, request);
    b.dp.fromUnderlay(request);
    const [sent] = takeSent(b);
    expectSameApartFromIds(sent.packet, reply, [0, 20]);
    expect(b.dp.stats()).toMatchObject({ received: 1, consumed: 1, originated: 1, forwarded: 1 });
  });

  it("9c: a remote pod's ping to this node's tunl0 address is answered from it", () => {
    const all = frames('node-to-pod.pcapng');
    const [request, reply] = [all[6], all[7]];
    b.dp.fromPod(POD_B.name, asSentByPod(innerOf(request)));
    expectSameApartFromIds(takeSent(b)[0].packet, request);
    a.dp.fromUnderlay(request);
    const [sent] = takeSent(a);
    expectSameApartFromIds(sent.packet, reply, [0, 20]);
  });
});

describe('case 10 non-node', () => {
  const requests = () => frames('non-node.pcapng').filter((frame) => frame[12] === 10 && frame[15] === 1);

  it("with Felix's allow-list, IPIP from a host that is not a node is dropped and counted", () => {
    for (const frame of requests()) b.dp.fromUnderlay(frame);
    expect(takeDelivered(b, POD_B.name)).toEqual([]);
    expect(b.dp.stats().drops['unknown-ipip-source']).toBe(6);
  });

  it('as the bare kernel: decapsulated from anyone, RFC 6040 ECN, replies follow the inner route (rules 9-11)', () => {
    const kernel = makeNode({ ...NODE_B, enforceIpipSourceAllowList: false });
    const [r10a, r10b, r10c, r10d, r10e, r10f] = requests();
    for (const frame of [r10a, r10b, r10c, r10d, r10e, r10f]) kernel.dp.fromUnderlay(frame);

    const tosSeen = takeDelivered(kernel, POD_B.name).map((packet) => packet[1]);
    // 10c (outer CE over Not-ECT) is dropped; CE is set on ECT inner packets; the outer DSCP never comes in.
    expect(tosSeen).toEqual([0x00, 0x03, 0x00, 0x00, 0x03]);
    expect(kernel.logs).toEqual([
      'ip_tunnel: non-ECT from 10.0.0.1 with TOS=0x3',
      'ip_tunnel: non-ECT from 10.0.0.1 with TOS=0x2',
    ]);
    const stats = kernel.dp.stats();
    expect(stats.drops['ecn-non-ect-ce']).toBe(1);
    expect(stats.events['asymmetric-inner-source']).toBe(5);
    expect(stats.events['non-ect-logged']).toBe(1);
    expect(stats.interfaces.tunl0).toMatchObject({ rxPackets: 5, rxDropped: 1 });
  });

  it("the pod's replies are tunnelled to the node owning the inner source, as captured", () => {
    const kernel = makeNode({ ...NODE_B, enforceIpipSourceAllowList: false });
    kernel.dp.fromUnderlay(requests()[0]);
    takeDelivered(kernel, POD_B.name);
    const replies = frames('non-node.pcapng').filter((frame) => frame[12] === 10 && frame[15] === 11);
    expect(replies).toHaveLength(5);
    for (const reply of replies) {
      kernel.dp.fromPod(POD_B.name, asSentByPod(innerOf(reply)));
      const [sent] = takeSent(kernel);
      expectSameApartFromIds(sent.packet, reply);
      expect(sent.destination).toBe('10.0.0.10');
    }
  });
});

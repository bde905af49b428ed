/** Packets from a pod's cali interface: Felix's anti-spoofing, then the kernel's forwarding decisions. */
import { describe, expect, it } from 'vitest';
import { Ipv4Prefix } from '../../../../src/routing/address.js';
import type { Route } from '../../../../src/routing/route.js';
import { Ipv4View, IP_PROTOCOL } from '../../../../src/wire/ipv4.js';
import {
  NODE_A,
  NODE_B,
  POD_A,
  POD_B,
  address,
  checkCountersAfterEachTest,
  decoded,
  echo,
  icmpOf,
  ip,
  ipPacket,
  makeNode,
  takeDelivered,
  takeSent,
  withTtl,
  type NodeSpec,
} from './harness.js';

checkCountersAfterEachTest();

const POD_A2 = { name: 'pod-a2', ip: '192.168.77.131', hostInterface: 'calia2a2a2a2a2a' };
const TWO_PODS: NodeSpec = { ...NODE_A, pods: [POD_A, POD_A2] };

const via = (prefix: string, dev: string, gateway?: string): Route => ({
  kind: 'unicast',
  destination: Ipv4Prefix.parse(prefix),
  dev,
  gateway: gateway === undefined ? undefined : address(gateway),
  onlink: dev === 'tunl0' ? true : undefined,
  scope: gateway === undefined ? 'link' : 'global',
});

describe('to a pod on the same node', () => {
  it('is delivered over its cali interface with TTL decremented and never touches eth0', () => {
    const a = makeNode(TWO_PODS);
    const packet = echo({ src: POD_A.ip, dst: POD_A2.ip });
    a.dp.fromPod(POD_A.name, packet);
    expect(takeDelivered(a, POD_A2.name)).toEqual([withTtl(packet, -1)]);
    expect(takeSent(a)).toEqual([]);
    const stats = a.dp.stats();
    expect(Object.values(stats.interfaces.eth0)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(stats.interfaces[POD_A.hostInterface]).toMatchObject({ rxPackets: 1, rxBytes: 84 });
    expect(stats.interfaces[POD_A2.hostInterface]).toMatchObject({ txPackets: 1, txBytes: 84 });
    expect(stats).toMatchObject({ received: 1, delivered: 1, forwarded: 0 });
  });

  it('TTL 1 earns Time exceeded from the node IP (the source out of an address-less cali veth)', () => {
    const a = makeNode(TWO_PODS);
    const packet = echo({ src: POD_A.ip, dst: POD_A2.ip, ttl: 1 });
    a.dp.fromPod(POD_A.name, packet);
    expect(takeDelivered(a, POD_A2.name)).toEqual([]);
    const [error] = takeDelivered(a, POD_A.name);
    expect(decoded(error)).toMatchObject({ src: ip(NODE_A.nodeIp), dst: ip(POD_A.ip), ttl: 64 });
    expect(icmpOf(error)).toEqual({ kind: 'time-exceeded', code: 0, quoted: packet });
  });

  it("leaves the pod's own buffer as it was", () => {
    const a = makeNode(TWO_PODS);
    const packet = echo({ src: POD_A.ip, dst: POD_A2.ip });
    const before = Buffer.from(packet);
    a.dp.fromPod(POD_A.name, packet);
    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: POD_B.ip }));
    expect(packet).toEqual(before);
  });
});

describe('Felix anti-spoofing and parsing', () => {
  it("drops a source other than the pod's own address", () => {
    const a = makeNode(TWO_PODS);
    a.dp.fromPod(POD_A.name, echo({ src: POD_A2.ip, dst: POD_B.ip }));
    expect(takeSent(a)).toEqual([]);
    expect(a.dp.stats().drops['spoofed-source']).toBe(1);
    expect(a.dp.stats().interfaces[POD_A.hostInterface].rxDropped).toBe(1);
  });

  it("drops what does not parse, by the wire layer's reason", () => {
    const a = makeNode(NODE_A);
    const good = echo({ src: POD_A.ip, dst: POD_B.ip });
    const badChecksum = Buffer.from(good);
    badChecksum[10] ^= 0xff;
    a.dp.fromPod(POD_A.name, badChecksum);
    a.dp.fromPod(POD_A.name, good.subarray(0, 10));
    a.dp.fromPod(POD_A.name, Buffer.from([0x60, 0, 0, 0]));
    a.dp.fromPod(POD_A.name, good.subarray(0, 40));
    a.dp.fromPod(POD_A.name, Buffer.alloc(0));
    expect(a.dp.stats().drops).toMatchObject({
      'bad-checksum': 1,
      truncated: 2,
      'not-ipv4': 1,
      'total-length-mismatch': 1,
    });
    expect(takeSent(a)).toEqual([]);
  });

  it('counts a packet from a pod it does not know', () => {
    const a = makeNode(NODE_A);
    a.dp.fromPod('nobody', echo({ src: POD_A.ip, dst: POD_B.ip }));
    expect(a.dp.stats()).toMatchObject({ received: 1, dropped: 1 });
    expect(a.dp.stats().drops['unknown-pod']).toBe(1);
  });
});

describe('routes', () => {
  it('no route at all: ICMP 3/0 net unreachable from the node IP, quoting the packet whole', () => {
    const a = makeNode(NODE_A);
    const packet = echo({ src: POD_A.ip, dst: '8.8.8.8' });
    a.dp.fromPod(POD_A.name, packet);
    expect(takeSent(a)).toEqual([]);
    const [error] = takeDelivered(a, POD_A.name);
    expect(decoded(error)).toMatchObject({ src: ip(NODE_A.nodeIp), ttl: 64, dscp: 0x30, dontFragment: false });
    expect(icmpOf(error)).toEqual({ kind: 'destination-unreachable', code: 0, nextHopMtu: 0, quoted: packet });
    expect(a.dp.stats().drops['no-route']).toBe(1);
  });

  it('quotes at most 548 bytes, so the error stays within 576', () => {
    const a = makeNode(NODE_A);
    const packet = echo({ src: POD_A.ip, dst: '8.8.8.8', dataLength: 1000, df: false });
    a.dp.fromPod(POD_A.name, packet);
    const [error] = takeDelivered(a, POD_A.name);
    expect(error.length).toBe(576);
    expect(icmpOf(error)).toMatchObject({ quoted: packet.subarray(0, 548) });
  });

  it('a connected eth0 route: out of eth0 without a tunnel, TTL decremented', () => {
    const a = makeNode({ ...NODE_A, extraRoutes: [via('0.0.0.0/0', 'eth0', '10.0.0.1')] });
    const toNode = echo({ src: POD_A.ip, dst: NODE_B.nodeIp });
    const toInternet = echo({ src: POD_A.ip, dst: '8.8.8.8' });
    a.dp.fromPod(POD_A.name, toNode);
    a.dp.fromPod(POD_A.name, toInternet);
    expect(takeSent(a)).toEqual([
      { packet: withTtl(toNode, -1), destination: NODE_B.nodeIp },
      { packet: withTtl(toInternet, -1), destination: '10.0.0.1' },
    ]);
    expect(a.dp.stats().interfaces.tunl0.txPackets).toBe(0);
  });

  it("eth0 has the underlay MTU: 1500, fragmented or refused like tunl0's", () => {
    const a = makeNode(NODE_A);
    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: NODE_B.nodeIp, dataLength: 1473, df: true }));
    expect(icmpOf(takeDelivered(a, POD_A.name)[0])).toMatchObject({ code: 4, nextHopMtu: 1500 });
    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: NODE_B.nodeIp, dataLength: 1473, df: false }));
    const pieces = takeSent(a).map((sent) => decoded(sent.packet));
    expect(pieces.map((piece) => [piece.totalLength, piece.moreFragments, piece.fragmentOffset, piece.ttl])).toEqual([
      [1500, true, 0, 63],
      [21, false, 1480, 63],
    ]);
  });

  it('the whole tunnel MTU passes, DF or not; one byte more without DF is two pieces of one datagram', () => {
    const a = makeNode(NODE_A);
    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: POD_B.ip, dataLength: 1452, df: true }));
    expect(takeSent(a).map((sent) => sent.packet.length)).toEqual([1500]);
    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: POD_B.ip, dataLength: 1453, df: false, id: 0x7777 }));
    const inner = takeSent(a).map((sent) => decoded(decoded(sent.packet).payload));
    const layout = inner.map((p) => [p.totalLength, p.moreFragments, p.fragmentOffset, p.identification]);
    expect(layout).toEqual([
      [1476, true, 0, 0x7777],
      [25, false, 1456, 0x7777],
    ]);
  });

  it("broadcasts end in the node's stack, unanswered", () => {
    const a = makeNode(NODE_A);
    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: '10.0.0.255' }));
    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: '255.255.255.255' }));
    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: '224.0.0.1' }));
    expect(takeSent(a)).toEqual([]);
    expect(takeDelivered(a, POD_A.name)).toEqual([]);
    expect(a.dp.stats()).toMatchObject({ received: 3, consumed: 3, originated: 0 });
  });

  it('drops martian destinations', () => {
    const a = makeNode(NODE_A);
    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: '127.0.0.1' }));
    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: '0.1.2.3' }));
    expect(a.dp.stats().drops['martian-destination']).toBe(2);
  });

  it('a tunnel route whose gateway is this node is a routing loop', () => {
    const a = makeNode({ ...NODE_A, extraRoutes: [via('192.168.99.0/26', 'tunl0', NODE_A.nodeIp)] });
    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: '192.168.99.1' }));
    expect(takeSent(a)).toEqual([]);
    expect(a.dp.stats().drops['routing-loop']).toBe(1);
  });

  it('a route through a device the node does not have', () => {
    const a = makeNode({ ...NODE_A, extraRoutes: [via('192.168.99.0/26', 'cali-gone')] });
    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: '192.168.99.1' }));
    expect(a.dp.stats().drops['unknown-interface']).toBe(1);
  });
});

describe('ICMP errors the node never sends (RFC 1122 §3.2.2, icmp_send)', () => {
  it('about an ICMP error, an unknown ICMP type, or a fragment other than the first', () => {
    const a = makeNode(NODE_A);
    const expiring = { src: POD_A.ip, dst: POD_B.ip, ttl: 1, df: false };
    const unreachable = ipPacket(expiring, IP_PROTOCOL.ICMP, Buffer.from('0303fcfc00000000', 'hex'));
    const unknownType = ipPacket(expiring, IP_PROTOCOL.ICMP, Buffer.from('2a00d5ff00000000', 'hex'));
    const laterPiece = ipPacket(expiring, IP_PROTOCOL.UDP, Buffer.alloc(16), { fragmentOffset: 1480 });
    const firstPiece = ipPacket(expiring, IP_PROTOCOL.UDP, Buffer.alloc(16), { moreFragments: true });
    for (const packet of [unreachable, unknownType, laterPiece, firstPiece]) a.dp.fromPod(POD_A.name, packet);
    expect(a.dp.stats().drops['ttl-expired']).toBe(4);
    expect(takeDelivered(a, POD_A.name).map((error) => icmpOf(error).kind)).toEqual(['time-exceeded']);
  });
});

describe('delivery and transmission failures', () => {
  it('a pod that is not attached is a veth whose peer is down', () => {
    const b = makeNode({ ...NODE_B, attach: false });
    const a = makeNode(NODE_A);
    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: POD_B.ip }));
    b.dp.fromUnderlay(takeSent(a)[0].packet);
    expect(b.dp.stats().drops['pod-not-attached']).toBe(1);
    expect(b.dp.stats().interfaces[POD_B.hostInterface].txDropped).toBe(1);
  });

  it('a throwing pod or underlay is counted, logged, and does not escape', () => {
    const a = makeNode(TWO_PODS);
    a.dp.attachPod(POD_A2.name, () => {
      throw new Error('pod crashed');
    });
    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: POD_A2.ip }));
    expect(a.dp.stats().drops['tx-error']).toBe(1);
    expect(a.logs).toEqual(['node-a: delivery to pod-a2 failed: Error: pod crashed']);
  });

  it('an underlay that throws on one fragment fails the packet but still sends the rest', () => {
    const attempts: number[] = [];
    const failing = makeNode(NODE_A, {
      underlay: {
        send(packet) {
          attempts.push(packet.length);
          if (attempts.length === 1) throw new Error('ENOBUFS');
        },
      },
    }).dp;
    failing.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: POD_B.ip, dataLength: 2000, df: false }));
    expect(attempts).toHaveLength(2);
    const stats = failing.stats();
    expect(stats.drops['tx-error']).toBe(1);
    expect(stats.forwarded).toBe(0);
    expect(stats.interfaces.eth0).toMatchObject({ txPackets: 1, txDropped: 1 });
  });
});

describe('inject', () => {
  it('on a cali interface or by pod name is a packet from that pod; an unknown name is counted', () => {
    const a = makeNode(NODE_A);
    a.dp.inject(POD_A.hostInterface, echo({ src: POD_A.ip, dst: POD_B.ip }));
    a.dp.inject(POD_A.name, echo({ src: POD_A.ip, dst: POD_B.ip }));
    a.dp.inject(POD_A.name, echo({ src: '192.168.77.140', dst: POD_B.ip }));
    a.dp.inject('wlan0', echo({ src: POD_A.ip, dst: POD_B.ip }));
    expect(takeSent(a)).toHaveLength(2);
    expect(a.dp.stats().drops).toMatchObject({ 'spoofed-source': 1, 'unknown-interface': 1 });
    expect(a.dp.stats().interfaces[POD_A.hostInterface].rxPackets).toBe(3);
  });
});

describe('TTL decrement', () => {
  it('is incremental and leaves a valid checksum for every TTL and TOS', () => {
    const a = makeNode(NODE_A);
    for (let ttl = 2; ttl <= 255; ttl += 7) {
      for (const tos of [0x00, 0x03, 0xb8, 0xff]) {
        a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: POD_B.ip, ttl, tos }));
        const [sent] = takeSent(a);
        const inner = new Ipv4View(sent.packet, 20);
        expect(inner.verifyChecksum()).toBe(true);
        expect(new Ipv4View(sent.packet).verifyChecksum()).toBe(true);
        expect([inner.ttl, sent.packet[8]]).toEqual([ttl - 1, ttl - 1]);
      }
    }
  });
});

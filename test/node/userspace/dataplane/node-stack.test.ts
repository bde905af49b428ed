/** The node's own addresses: what its stack answers, and what it sends itself (`sendFromNode`). */
import { describe, expect, it } from 'vitest';
import { internetChecksum, pseudoHeaderSum } from '../../../../src/wire/checksum.js';
import { IP_PROTOCOL, Ipv4View } from '../../../../src/wire/ipv4.js';
import { tcp } from '../../../../src/wire/tcp.js';
import { udp } from '../../../../src/wire/udp.js';
import {
  NODE_A,
  NODE_B,
  POD_A,
  POD_B,
  checkCountersAfterEachTest,
  decoded,
  echo,
  icmpOf,
  innerOf,
  ip,
  ipPacket,
  makeNode,
  takeDelivered,
  takeSent,
} from './harness.js';

checkCountersAfterEachTest();

/** ICMP 3/3 with a valid checksum and nothing quoted. */
const PORT_UNREACHABLE_MESSAGE = Buffer.from('0303fcfc00000000', 'hex');

const EMPTY = Buffer.alloc(0);

const syn = (src: string, dst: string) =>
  tcp.encode(
    { srcPort: 34786, dstPort: 8080, sequence: 1, acknowledgment: 0, flags: 0x02, window: 64240, payload: EMPTY },
    { src: ip(src), dst: ip(dst) },
  );

const udpTo = (src: string, dst: string, port = 9999, options: { ttl?: number; df?: boolean } = {}) =>
  ipPacket(
    { src, dst, ...options },
    IP_PROTOCOL.UDP,
    udp.encode({ srcPort: 40829, dstPort: port, payload: Buffer.from('hello-udp') }, { src: ip(src), dst: ip(dst) }),
  );

describe('answering pods', () => {
  it.each([
    ['node IP', NODE_A.nodeIp],
    ['tunl0 address', NODE_A.tunnelAddress!],
  ])("echo to the %s: reply from that address, TTL 64, DF 0, the request's TOS and data", (_, target) => {
    const a = makeNode(NODE_A);
    const request = echo({ src: POD_A.ip, dst: target, tos: 0xb9, identifier: 77, sequence: 3, ttl: 1 });
    a.dp.fromPod(POD_A.name, request);
    const [reply] = takeDelivered(a, POD_A.name);
    expect(decoded(reply)).toMatchObject({
      src: ip(target),
      dst: ip(POD_A.ip),
      ttl: 64,
      dontFragment: false,
      dscp: 0xb8 >> 2,
      ecn: 1,
    });
    expect(icmpOf(reply)).toEqual({ ...icmpOf(request), kind: 'echo-reply' });
    expect(a.local).toEqual([request]);
    expect(takeSent(a)).toEqual([]);
    expect(a.dp.stats()).toMatchObject({ received: 1, consumed: 1, originated: 1, delivered: 1 });
  });

  it('UDP: port unreachable from the address it was sent to, quoting the datagram', () => {
    const a = makeNode(NODE_A);
    const datagram = udpTo(POD_A.ip, NODE_A.tunnelAddress!);
    a.dp.fromPod(POD_A.name, datagram);
    const [error] = takeDelivered(a, POD_A.name);
    expect(decoded(error)).toMatchObject({ src: ip(NODE_A.tunnelAddress!), ttl: 64, dscp: 0x30 });
    expect(icmpOf(error)).toEqual({ kind: 'destination-unreachable', code: 3, nextHopMtu: 0, quoted: datagram });
  });

  it('UDP with a bad checksum is dropped unanswered, as the kernel checks before it looks for a socket', () => {
    const a = makeNode(NODE_A);
    const datagram = udpTo(POD_A.ip, NODE_A.nodeIp);
    datagram[datagram.length - 1] ^= 1;
    a.dp.fromPod(POD_A.name, datagram);
    expect(takeDelivered(a, POD_A.name)).toEqual([]);
    expect(a.dp.stats().drops['bad-udp-checksum']).toBe(1);
  });

  it('TCP is counted and dropped; other protocols get protocol unreachable', () => {
    const a = makeNode(NODE_A);
    const connect = ipPacket({ src: POD_A.ip, dst: NODE_A.nodeIp }, IP_PROTOCOL.TCP, syn(POD_A.ip, NODE_A.nodeIp));
    a.dp.fromPod(POD_A.name, connect);
    const gre = ipPacket({ src: POD_A.ip, dst: NODE_A.nodeIp }, 47, Buffer.alloc(8));
    a.dp.fromPod(POD_A.name, gre);
    expect(a.dp.stats().drops['tcp-to-node']).toBe(1);
    const [error] = takeDelivered(a, POD_A.name);
    expect(icmpOf(error)).toMatchObject({ kind: 'destination-unreachable', code: 2, quoted: gre });
  });

  it('drops fragments and bad ICMP; takes in echo replies and errors without answering', () => {
    const a = makeNode(NODE_A);
    const toNode = { src: POD_A.ip, dst: NODE_A.nodeIp, df: false };
    a.dp.fromPod(POD_A.name, ipPacket(toNode, IP_PROTOCOL.ICMP, Buffer.alloc(16), { moreFragments: true }));
    const corrupt = echo({ src: POD_A.ip, dst: NODE_A.nodeIp });
    corrupt[30] ^= 0xff;
    a.dp.fromPod(POD_A.name, corrupt);
    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: NODE_A.nodeIp, kind: 'echo-reply' }));
    a.dp.fromPod(POD_A.name, ipPacket(toNode, IP_PROTOCOL.ICMP, PORT_UNREACHABLE_MESSAGE));
    expect(a.dp.stats().drops).toMatchObject({ 'fragment-to-node': 1, 'bad-icmp-checksum': 1 });
    expect(a.dp.stats().consumed).toBe(2);
    expect(a.local).toHaveLength(2);
    expect(takeDelivered(a, POD_A.name)).toEqual([]);
  });
});

describe('sendFromNode', () => {
  it("fills an unspecified source with the route's: tunl0 address to a remote pod, keeping UDP valid", () => {
    const a = makeNode(NODE_A);
    const datagram = udpTo('0.0.0.0', POD_B.ip, 53, { ttl: 64 });
    a.dp.sendFromNode(datagram);
    const [sent] = takeSent(a);
    const outer = decoded(sent.packet);
    const inner = decoded(outer.payload);
    expect([outer.ttl, inner.ttl, inner.src]).toEqual([64, 64, ip(NODE_A.tunnelAddress!)]);
    expect(udp.decode(inner.payload, inner).ok).toBe(true);
    expect(datagram.readUInt32BE(12)).toBe(0);
  });

  it('fills the source of TCP too, and keeps a given source', () => {
    const a = makeNode(NODE_A);
    for (const src of ['0.0.0.0', NODE_A.nodeIp]) {
      a.dp.sendFromNode(ipPacket({ src, dst: POD_B.ip }, IP_PROTOCOL.TCP, syn(src, POD_B.ip)));
    }
    const inner = takeSent(a).map((sent) => decoded(innerOf(sent.packet)));
    expect(inner.map((packet) => packet.src)).toEqual([ip(NODE_A.tunnelAddress!), ip(NODE_A.nodeIp)]);
    for (const packet of inner) {
      const sum = pseudoHeaderSum(packet.src, packet.dst, IP_PROTOCOL.TCP, packet.payload.length);
      expect(internetChecksum(packet.payload, 0, packet.payload.length, sum)).toBe(0);
    }
  });

  it('to a local pod: from the node IP, TTL not decremented', () => {
    const a = makeNode(NODE_A);
    a.dp.sendFromNode(echo({ src: '0.0.0.0', dst: POD_A.ip }));
    const [packet] = takeDelivered(a, POD_A.name);
    expect(decoded(packet)).toMatchObject({ src: ip(NODE_A.nodeIp), ttl: 64 });
    expect(new Ipv4View(packet).verifyChecksum()).toBe(true);
  });

  it('to itself: the stack answers itself', () => {
    const a = makeNode(NODE_A);
    a.dp.sendFromNode(echo({ src: '0.0.0.0', dst: NODE_A.tunnelAddress! }));
    expect(a.local.map((packet) => [icmpOf(packet).kind, decoded(packet).src])).toEqual([
      ['echo-request', ip(NODE_A.tunnelAddress!)],
      ['echo-reply', ip(NODE_A.tunnelAddress!)],
    ]);
    expect(a.dp.stats()).toMatchObject({ originated: 2, consumed: 2 });
  });

  it('blackhole, no route, too big with DF: dropped without ICMP (the kernel tells the socket instead)', () => {
    const a = makeNode(NODE_A);
    a.dp.sendFromNode(echo({ src: '0.0.0.0', dst: '192.168.77.150' }));
    a.dp.sendFromNode(echo({ src: NODE_A.nodeIp, dst: '8.8.8.8' }));
    a.dp.sendFromNode(echo({ src: '0.0.0.0', dst: POD_B.ip, dataLength: 2000, df: true }));
    a.dp.sendFromNode(Buffer.from('not a packet'));
    expect(a.dp.stats().drops).toMatchObject({ blackhole: 1, 'no-route': 1, 'frag-needed': 1, 'not-ipv4': 1 });
    expect(a.dp.stats()).toMatchObject({ originated: 4, dropped: 4 });
    expect(takeSent(a)).toEqual([]);
    expect(takeDelivered(a, POD_A.name)).toEqual([]);
  });

  it('without DF, fragments to the tunnel MTU with consecutive outer IDs', () => {
    const a = makeNode(NODE_A);
    a.dp.sendFromNode(echo({ src: '0.0.0.0', dst: POD_B.ip, dataLength: 3000, df: false }));
    const sent = takeSent(a).map((s) => decoded(s.packet));
    expect(sent.map((outer) => [outer.totalLength, outer.ttl, decoded(outer.payload).ttl])).toEqual([
      [1496, 64, 64],
      [1496, 64, 64],
      [136, 64, 64],
    ]);
    expect(sent[1].identification).toBe((sent[0].identification + 1) & 0xffff);
  });

  it('a node without a tunl0 address uses its node IP, for its own packets and its errors', () => {
    const plain = makeNode({ ...NODE_B, tunnelAddress: undefined });
    plain.dp.sendFromNode(echo({ src: '0.0.0.0', dst: POD_A.ip }));
    expect(decoded(innerOf(takeSent(plain)[0].packet)).src).toBe(ip(NODE_B.nodeIp));
    const a = makeNode(NODE_A);
    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: POD_B.ip, ttl: 2 }));
    plain.dp.fromUnderlay(takeSent(a)[0].packet);
    expect(decoded(innerOf(takeSent(plain)[0].packet)).src).toBe(ip(NODE_B.nodeIp));
  });
});

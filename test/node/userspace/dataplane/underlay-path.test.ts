/** Packets from eth0's raw socket: outer checks, Felix's allow-list, decapsulation, then routing as tunl0 input. */
import { describe, expect, it } from 'vitest';
import { Ipv4Prefix } from '../../../../src/routing/address.js';
import type { Route } from '../../../../src/routing/route.js';
import { decapsulateEcn } from '../../../../src/wire/ipip.js';
import { IP_PROTOCOL, Ipv4View } from '../../../../src/wire/ipv4.js';
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
  innerOf,
  ip,
  ipip,
  ipPacket,
  makeNode,
  takeDelivered,
  takeSent,
  withTtl,
} from './harness.js';

checkCountersAfterEachTest();

const request = (options: { ttl?: number; tos?: number; src?: string; dst?: string } = {}) =>
  echo({ src: options.src ?? POD_A.ip, dst: options.dst ?? POD_B.ip, ttl: options.ttl ?? 63, tos: options.tos });

const fromA = (inner: Buffer, tos?: number) => ipip(NODE_A.nodeIp, NODE_B.nodeIp, inner, { tos });

const tunnelRoute = (prefix: string, gateway: string): Route => ({
  kind: 'unicast',
  destination: Ipv4Prefix.parse(prefix),
  gateway: address(gateway),
  dev: 'tunl0',
  onlink: true,
  scope: 'global',
});

describe('outer checks', () => {
  it("drops what is not a valid IPv4 packet for this node's tunnel, by reason, on eth0", () => {
    const b = makeNode(NODE_B);
    const good = fromA(request());
    const badChecksum = Buffer.from(good);
    badChecksum[11] ^= 1;
    const fragmentPiece = Buffer.from(good);
    new Ipv4View(fragmentPiece).moreFragments = true;
    new Ipv4View(fragmentPiece).fillChecksum();
    b.dp.fromUnderlay(badChecksum);
    b.dp.fromUnderlay(good.subarray(0, 19));
    b.dp.fromUnderlay(ipip(NODE_A.nodeIp, '10.0.0.12', request()));
    b.dp.fromUnderlay(ipPacket({ src: NODE_A.nodeIp, dst: NODE_B.nodeIp }, IP_PROTOCOL.ICMP, Buffer.alloc(8)));
    b.dp.fromUnderlay(fragmentPiece);
    expect(b.dp.stats().drops).toMatchObject({
      'bad-checksum': 1,
      truncated: 1,
      'not-for-this-node': 1,
      'not-ipip': 1,
      'outer-fragment': 1,
    });
    expect(b.dp.stats().interfaces.eth0).toMatchObject({ rxPackets: 5, rxDropped: 5 });
    expect(b.dp.stats().interfaces.tunl0.rxPackets).toBe(0);
  });

  it("Felix's allow-list refuses unknown and martian sources; without it only martians go", () => {
    const b = makeNode(NODE_B);
    const kernel = makeNode({ ...NODE_B, enforceIpipSourceAllowList: false });
    for (const node of [b, kernel]) {
      node.dp.fromUnderlay(ipip('10.0.0.99', NODE_B.nodeIp, request()));
      node.dp.fromUnderlay(ipip('127.0.0.1', NODE_B.nodeIp, request()));
    }
    expect(b.dp.stats().drops).toMatchObject({ 'unknown-ipip-source': 1, 'martian-source': 1 });
    expect(kernel.dp.stats().drops).toMatchObject({ 'unknown-ipip-source': 0, 'martian-source': 1 });
    expect(takeDelivered(kernel, POD_B.name)).toHaveLength(1);
  });

  it('ignores link padding after the outer packet and refuses an inner packet longer than the outer one', () => {
    const b = makeNode(NODE_B);
    const inner = request();
    b.dp.fromUnderlay(Buffer.concat([fromA(inner), Buffer.alloc(6, 0xee)]));
    expect(takeDelivered(b, POD_B.name)).toEqual([withTtl(inner, -1)]);

    const longer = fromA(inner);
    longer.writeUInt16BE(longer.length - 4, 2);
    new Ipv4View(longer).fillChecksum();
    b.dp.fromUnderlay(longer);
    expect(b.dp.stats().drops['total-length-mismatch']).toBe(1);
  });
});

describe('decapsulation', () => {
  it('drops nested IPIP and invalid inner packets on tunl0', () => {
    const b = makeNode(NODE_B);
    b.dp.fromUnderlay(fromA(ipip(NODE_A.nodeIp, NODE_B.nodeIp, request())));
    const corrupt = request();
    corrupt[10] ^= 0xff;
    b.dp.fromUnderlay(fromA(corrupt));
    expect(b.dp.stats().drops).toMatchObject({ 'nested-ipip': 1, 'bad-checksum': 1 });
    expect(b.dp.stats().interfaces.tunl0).toMatchObject({ rxPackets: 0, rxDropped: 2 });
  });

  it("applies the RFC 6040 table (Linux's variant) to all 16 outer/inner ECN pairs", () => {
    const b = makeNode(NODE_B);
    for (let outerEcn = 0; outerEcn < 4; outerEcn++) {
      for (let innerEcn = 0; innerEcn < 4; innerEcn++) {
        b.dp.fromUnderlay(fromA(request({ tos: 0xa0 | innerEcn }), 0x48 | outerEcn));
        const delivered = takeDelivered(b, POD_B.name);
        const cell = decapsulateEcn(outerEcn, innerEcn);
        if (cell.kind === 'drop') {
          expect(delivered).toEqual([]);
        } else {
          expect(delivered).toHaveLength(1);
          expect(delivered[0][1]).toBe(0xa0 | cell.innerEcn);
          expect(new Ipv4View(delivered[0]).verifyChecksum()).toBe(true);
        }
      }
    }
    expect(b.dp.stats().drops['ecn-non-ect-ce']).toBe(1);
    expect(b.dp.stats().events['non-ect-logged']).toBe(2);
  });

  it('leaves the received buffer as it was, CE marking and TTL decrement included', () => {
    const b = makeNode(NODE_B);
    const packet = fromA(request({ tos: 0x02 }), 0x03);
    const before = Buffer.from(packet);
    b.dp.fromUnderlay(packet);
    expect(takeDelivered(b, POD_B.name)[0][1]).toBe(0x03);
    expect(packet).toEqual(before);
  });
});

describe('after decapsulation', () => {
  it('counts (and still delivers) an inner source that routes back through another node', () => {
    const b = makeNode(NODE_B);
    b.dp.fromUnderlay(ipip('10.0.0.12', NODE_B.nodeIp, request()));
    b.dp.fromUnderlay(fromA(request()));
    b.dp.fromUnderlay(fromA(request({ src: '172.16.0.1' })));
    expect(takeDelivered(b, POD_B.name)).toHaveLength(3);
    expect(b.dp.stats().events['asymmetric-inner-source']).toBe(2);
  });

  it("drops martian inner sources, this node's own addresses included", () => {
    const b = makeNode(NODE_B);
    for (const src of ['127.0.0.1', '0.0.0.0', '224.0.0.5', '255.255.255.255', NODE_B.tunnelAddress!, NODE_B.nodeIp]) {
      b.dp.fromUnderlay(fromA(request({ src })));
    }
    expect(b.dp.stats().drops['martian-source']).toBe(6);
    expect(takeSent(b)).toEqual([]);
  });

  it("no route: ICMP 3/0 from the tunl0 address, tunnelled back to the sender's node", () => {
    const b = makeNode(NODE_B);
    const lost = request({ dst: '8.8.8.8' });
    b.dp.fromUnderlay(fromA(lost));
    const [sent] = takeSent(b);
    expect(sent.destination).toBe(NODE_A.nodeIp);
    const error = innerOf(sent.packet);
    expect(decoded(error)).toMatchObject({ src: ip(NODE_B.tunnelAddress!), dst: ip(POD_A.ip), ttl: 64 });
    expect(icmpOf(error)).toMatchObject({ kind: 'destination-unreachable', code: 0, quoted: lost });
  });

  it('transit to a third node: forwarded into the tunnel again, one hop later', () => {
    const b = makeNode({ ...NODE_B, extraRoutes: [tunnelRoute('192.168.99.0/26', '10.0.0.12')] });
    const inner = request({ dst: '192.168.99.7', ttl: 63 });
    b.dp.fromUnderlay(fromA(inner));
    const [sent] = takeSent(b);
    expect(sent.destination).toBe('10.0.0.12');
    expect(decoded(sent.packet)).toMatchObject({ src: ip(NODE_B.nodeIp), dst: ip('10.0.0.12'), ttl: 62 });
    expect(innerOf(sent.packet)).toEqual(withTtl(inner, -1));
    expect(b.dp.stats()).toMatchObject({ received: 1, forwarded: 1 });
    expect(b.dp.stats().interfaces.tunl0).toMatchObject({ rxPackets: 1, txPackets: 1 });
  });

  it("transit with TTL 1: Time exceeded from the tunl0 address, back to the sender's node", () => {
    const b = makeNode({ ...NODE_B, extraRoutes: [tunnelRoute('192.168.99.0/26', '10.0.0.12')] });
    const expiring = request({ dst: '192.168.99.7', ttl: 1 });
    b.dp.fromUnderlay(fromA(expiring));
    const [sent] = takeSent(b);
    expect(sent.destination).toBe(NODE_A.nodeIp);
    expect(decoded(innerOf(sent.packet)).src).toBe(ip(NODE_B.tunnelAddress!));
    expect(icmpOf(innerOf(sent.packet))).toEqual({ kind: 'time-exceeded', code: 0, quoted: expiring });
  });

  it('a packet that would be tunnelled straight back to the node it came from is a routing loop', () => {
    const b = makeNode({ ...NODE_B, extraRoutes: [tunnelRoute('192.168.99.0/26', NODE_A.nodeIp)] });
    b.dp.fromUnderlay(fromA(request({ dst: '192.168.99.7' })));
    expect(takeSent(b)).toEqual([]);
    expect(b.dp.stats().drops['routing-loop']).toBe(1);
    expect(b.dp.stats().interfaces.tunl0.rxDropped).toBe(1);
  });

  it('to an underlay address: forwarded out of eth0 without a tunnel', () => {
    const b = makeNode(NODE_B);
    const inner = request({ dst: '10.0.0.12' });
    b.dp.fromUnderlay(fromA(inner));
    expect(takeSent(b)).toEqual([{ packet: withTtl(inner, -1), destination: '10.0.0.12' }]);
  });
});

describe('inject', () => {
  it('on eth0 is a packet from the wire, on tunl0 one just decapsulated from nowhere in particular', () => {
    const b = makeNode(NODE_B);
    const inner = request();
    b.dp.inject('eth0', fromA(inner));
    b.dp.inject('tunl0', inner);
    b.dp.inject('tunl0', ipip(NODE_A.nodeIp, NODE_B.nodeIp, inner));
    expect(takeDelivered(b, POD_B.name)).toEqual([withTtl(inner, -1), withTtl(inner, -1)]);
    const stats = b.dp.stats();
    expect(stats.interfaces.tunl0.rxPackets).toBe(2);
    expect(stats.events['asymmetric-inner-source']).toBe(0);
    expect(stats.drops['nested-ipip']).toBe(1);
  });
});

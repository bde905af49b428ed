/** Capture taps, listeners, and callbacks that re-enter the dataplane synchronously. */
import { describe, expect, it } from 'vitest';
import type { Dataplane } from '../../../../src/node/userspace/dataplane.js';
import { icmp } from '../../../../src/wire/icmp.js';
import { IP_PROTOCOL, ipv4 } from '../../../../src/wire/ipv4.js';
import {
  NODE_A,
  NODE_B,
  POD_A,
  POD_B,
  checkCountersAfterEachTest,
  decoded,
  echo,
  innerOf,
  ip,
  makeNode,
  takeDelivered,
  takeSent,
  withTtl,
  type TestNode,
} from './harness.js';

checkCountersAfterEachTest();

const summary = (node: TestNode) => node.taps.map((event) => [event.interfaceName, event.direction, event.packet[8]]);

describe('taps', () => {
  it('see a ping hop by hop: cali rx, tunl0 tx, eth0 tx on one node; eth0 rx, tunl0 rx, cali tx on the other', () => {
    let clock = 1_700_000_000_000_000_000n;
    const now = () => (clock += 1000n);
    const a = makeNode(NODE_A, { now });
    const b = makeNode(NODE_B, { now });
    const request = echo({ src: POD_A.ip, dst: POD_B.ip });
    a.dp.fromPod(POD_A.name, request);
    const [sent] = takeSent(a);
    b.dp.fromUnderlay(sent.packet);

    expect(summary(a)).toEqual([
      [POD_A.hostInterface, 'rx', 64],
      ['tunl0', 'tx', 63],
      ['eth0', 'tx', 63],
    ]);
    expect(summary(b)).toEqual([
      ['eth0', 'rx', 63],
      ['tunl0', 'rx', 63],
      [POD_B.hostInterface, 'tx', 62],
    ]);
    expect(a.taps[0].packet).toEqual(request);
    expect(a.taps[1].packet).toEqual(innerOf(sent.packet));
    expect(a.taps[2].packet).toEqual(sent.packet);
    expect(b.taps[0].packet).toEqual(sent.packet);
    expect(b.taps[2].packet).toEqual(withTtl(request, -2));
    const stamps = [...a.taps, ...b.taps].map((event) => event.timestampNs);
    expect(stamps).toEqual([...stamps].sort((x, y) => (x < y ? -1 : 1)));
    expect(stamps[0]).toBe(1_700_000_000_000_001_000n);
  });

  it('a listener can unsubscribe, and one that throws is logged without disturbing the packet', () => {
    const a = makeNode(NODE_A);
    const seen: string[] = [];
    const stop = a.dp.onTap((event) => void seen.push(event.interfaceName));
    a.dp.onTap(() => {
      throw new Error('disk full');
    });
    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: POD_B.ip }));
    stop();
    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: POD_B.ip }));
    expect(seen).toEqual([POD_A.hostInterface, 'tunl0', 'eth0']);
    expect(takeSent(a)).toHaveLength(2);
    expect(a.logs.filter((line) => line.includes('tap listener failed: Error: disk full'))).toHaveLength(6);
  });

  it('a listener for some interfaces sees only theirs, and its packets are the same as an every-interface listener sees', () => {
    const a = makeNode(NODE_A);
    const selected: string[] = [];
    a.dp.onTap(
      (event) => void selected.push(`${event.interfaceName} ${event.packet.toString('hex')}`),
      ['eth0', POD_A.hostInterface],
    );
    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: POD_B.ip }));
    const everything = a.taps.map((event) => `${event.interfaceName} ${event.packet.toString('hex')}`);
    expect(selected).toEqual(everything.filter((line) => !line.startsWith('tunl0 ')));
    expect(selected).toHaveLength(2);
  });

  it('taps of fragments show every piece on tunl0 and eth0', () => {
    const a = makeNode(NODE_A);
    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: POD_B.ip, df: false, dataLength: 1600 }));
    expect(a.taps.map((event) => `${event.interfaceName} ${event.direction} ${event.packet.length}`)).toEqual([
      `${POD_A.hostInterface} rx 1628`,
      'tunl0 tx 1476',
      'eth0 tx 1496',
      'tunl0 tx 172',
      'eth0 tx 192',
    ]);
  });
});

/** A pod whose stack answers echo requests at once, from inside the dataplane's delivery. */
function echoingPod(dp: Dataplane, pod: { name: string; ip: string }, received: Buffer[]): void {
  dp.attachPod(pod.name, (packet) => {
    received.push(Buffer.from(packet));
    const request = decoded(packet);
    const message = icmp.decode(request.payload);
    if (request.protocol !== IP_PROTOCOL.ICMP || !message.ok || message.value.kind !== 'echo-request') return;
    const { identifier, sequence, data } = message.value;
    dp.fromPod(
      pod.name,
      ipv4.encode({
        identification: 1,
        ttl: 64,
        protocol: IP_PROTOCOL.ICMP,
        src: ip(pod.ip),
        dst: request.src,
        payload: icmp.encode({ kind: 'echo-reply', identifier, sequence, data }),
      }),
    );
  });
}

describe('synchronous re-entry', () => {
  it('two nodes wired back to back, pods answering from inside delivery', () => {
    const nodes: Record<string, Dataplane> = {};
    const wire = { send: (packet: Buffer, destination: number) => nodes[destination]?.fromUnderlay(packet) };
    const a = makeNode(NODE_A, { underlay: wire });
    const b = makeNode(NODE_B, { underlay: wire });
    nodes[ip(NODE_A.nodeIp)] = a.dp;
    nodes[ip(NODE_B.nodeIp)] = b.dp;
    const atA: Buffer[] = [];
    const atB: Buffer[] = [];
    echoingPod(a.dp, POD_A, atA);
    echoingPod(b.dp, POD_B, atB);

    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: POD_B.ip, sequence: 1 }));
    a.dp.fromPod(POD_A.name, echo({ src: POD_A.ip, dst: POD_B.ip, sequence: 2, df: false, dataLength: 3000 }));
    a.dp.sendFromNode(echo({ src: '0.0.0.0', dst: POD_B.ip, sequence: 3 }));

    expect(atB.map((packet) => decoded(packet).ttl)).toEqual([62, 62, 62, 62, 63]);
    // The echo reply to the fragments is one of the pod's, and so are its pieces' TTLs.
    expect(atA.map((packet) => [decoded(packet).ttl, decoded(packet).protocol])).toEqual([[62, 1]]);
    expect(a.local.map((packet) => [decoded(packet).src, decoded(packet).ttl])).toEqual([[ip(POD_B.ip), 63]]);
  });

  it('a tap listener that injects while a packet is on its way', () => {
    const b = makeNode(NODE_B);
    const extra = echo({ src: POD_A.ip, dst: POD_B.ip, ttl: 30, sequence: 9 });
    let injected = false;
    b.dp.onTap((event) => {
      if (event.interfaceName === 'tunl0' && !injected) {
        injected = true;
        b.dp.inject('tunl0', extra);
      }
    });
    const a = makeNode(NODE_A);
    const request = echo({ src: POD_A.ip, dst: POD_B.ip });
    a.dp.fromPod(POD_A.name, request);
    b.dp.fromUnderlay(takeSent(a)[0].packet);
    expect(takeDelivered(b, POD_B.name)).toEqual([withTtl(extra, -1), withTtl(request, -2)]);
  });
});

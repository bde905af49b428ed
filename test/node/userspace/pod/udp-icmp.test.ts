import { describe, expect, it } from 'vitest';
import { icmp } from '../../../../src/wire/icmp.js';
import { IP_PROTOCOL, Ipv4View, ipv4 } from '../../../../src/wire/ipv4.js';
import { udp } from '../../../../src/wire/udp.js';
import { SimulatedPod } from '../../../../src/node/userspace/pod/pod.js';
import { POD_A, POD_B, twoPods } from './harness.js';

function udpPacket(dstPort: number, payload: Buffer, extra: { tos?: number; identification?: number } = {}): Buffer {
  return ipv4.encode({
    identification: extra.identification ?? 0x10e5,
    dscp: (extra.tos ?? 0) >> 2,
    dontFragment: true,
    ttl: 64,
    protocol: IP_PROTOCOL.UDP,
    src: POD_A,
    dst: POD_B,
    payload: udp.encode({ srcPort: 40829, dstPort, payload }, { src: POD_A, dst: POD_B }),
  });
}

describe('UDP in a pod', () => {
  it('echoes datagrams on port 7 back to the sender, with DF like a Linux UDP socket', async () => {
    const { clock, host, a } = twoPods();
    expect(a.send(udpPacket(7, Buffer.from('hello-udp-from-pod-A\n')))).toEqual({ ok: true });
    await clock.advance(10);
    const [echo] = host.sentBy('hello-world-54575d5b77-rz8vs');
    expect(echo).toMatchObject({ protocol: IP_PROTOCOL.UDP, src: POD_B, dst: POD_A, ttl: 64, dontFragment: true });
    const datagram = udp.decode(echo.payload, { src: POD_B, dst: POD_A });
    if (!datagram.ok) throw new Error(datagram.reason);
    expect(datagram.value).toMatchObject({ srcPort: 7, dstPort: 40829 });
    expect(datagram.value.payload.toString()).toBe('hello-udp-from-pod-A\n');
  });

  it('answers a closed port with ICMP 3/3: TOS 0xc0, DF 0, TTL 64, the whole datagram quoted as received', async () => {
    const { clock, host, b } = twoPods();
    const sent = udpPacket(9999, Buffer.from('hello-udp-from-pod-A\n'));
    b.receive(sent);
    await clock.advance(10);
    const [error] = host.sentBy('hello-world-54575d5b77-rz8vs');
    expect(error).toMatchObject({
      protocol: IP_PROTOCOL.ICMP,
      ttl: 64,
      dontFragment: false,
      totalLength: 20 + 8 + sent.length,
    });
    expect(error.buffer[1]).toBe(0xc0);
    const message = icmp.decode(error.payload);
    if (!message.ok || message.value.kind !== 'destination-unreachable') throw new Error('not an unreachable');
    expect(message.value.code).toBe(3);
    expect(message.value.quoted.equals(sent)).toBe(true);
    expect(b.counters.drops['udp-port-unreachable']).toBe(1);
  });

  it('quotes at most 548 bytes of a big datagram, keeping the error within 576 bytes', async () => {
    const { clock, host, b } = twoPods();
    b.receive(udpPacket(9999, Buffer.alloc(1000, 0x61)));
    await clock.advance(10);
    const [error] = host.sentBy('hello-world-54575d5b77-rz8vs');
    expect(error.totalLength).toBe(576);
  });

  it('keeps the TOS bits of the offending packet under precedence 0xc0, as icmp_send() does', async () => {
    const { clock, host, b } = twoPods();
    b.receive(udpPacket(9999, Buffer.from('x'), { tos: 0x28 }));
    await clock.advance(10);
    expect(host.sentBy('hello-world-54575d5b77-rz8vs')[0].buffer[1]).toBe(0xc8);
  });

  it('rate-limits port unreachables per destination: a burst of 6, then one a second', async () => {
    const { clock, host, b } = twoPods();
    for (let i = 0; i < 10; i++) b.receive(udpPacket(9999, Buffer.from('x'), { identification: i }));
    await clock.advance(10);
    expect(host.sentBy('hello-world-54575d5b77-rz8vs')).toHaveLength(6);
    expect(b.counters.icmpRateLimited).toBe(4);
    await clock.advance(1000);
    b.receive(udpPacket(9999, Buffer.from('x')));
    await clock.advance(10);
    expect(host.sentBy('hello-world-54575d5b77-rz8vs')).toHaveLength(7);
  });

  it('never answers an ICMP error with another one', async () => {
    const { clock, host, b } = twoPods();
    const quoted = udpPacket(1234, Buffer.from('x'));
    const unreachable = icmp.encode({ kind: 'destination-unreachable', code: 3, nextHopMtu: 0, quoted });
    // An error about nothing B sent: unmatched, and no error comes back for it.
    b.receive(
      ipv4.encode({
        identification: 1,
        ttl: 64,
        protocol: IP_PROTOCOL.ICMP,
        src: POD_A,
        dst: POD_B,
        payload: unreachable,
      }),
    );
    await clock.advance(10);
    expect(host.captured).toHaveLength(0);
    expect(b.counters.drops['icmp-unmatched']).toBe(1);
  });

  it('answers an unknown protocol with ICMP 3/2', async () => {
    const { clock, host, b } = twoPods();
    b.receive(
      ipv4.encode({ identification: 1, ttl: 64, protocol: 47, src: POD_A, dst: POD_B, payload: Buffer.alloc(24) }),
    );
    await clock.advance(10);
    const message = icmp.decode(host.sentBy('hello-world-54575d5b77-rz8vs')[0].payload);
    expect(message.ok && message.value.kind === 'destination-unreachable' && message.value.code).toBe(2);
    expect(b.counters.drops['unknown-protocol']).toBe(1);
  });

  it('drops packets addressed elsewhere and malformed ones, counting the reason', () => {
    const { b } = twoPods();
    const elsewhere = ipv4.encode({
      identification: 1,
      ttl: 64,
      protocol: IP_PROTOCOL.UDP,
      src: POD_A,
      dst: POD_A,
      payload: Buffer.alloc(8),
    });
    b.receive(elsewhere);
    const corrupt = Buffer.from(udpPacket(7, Buffer.from('x')));
    corrupt[10] ^= 0xff;
    b.receive(corrupt);
    const badUdp = Buffer.from(udpPacket(7, Buffer.from('x')));
    badUdp[badUdp.length - 1] ^= 0xff;
    b.receive(badUdp);
    expect(b.counters.drops).toMatchObject({ 'not-for-pod': 1, 'bad-checksum': 1, 'bad-udp-checksum': 1 });
    expect(b.counters.rxPackets).toBe(3);
  });

  it('send() refuses DF packets over the MTU and fragments the others', async () => {
    const { clock, host, a } = twoPods();
    const big = (dontFragment: boolean) =>
      ipv4.encode({
        identification: 7,
        dontFragment,
        ttl: 64,
        protocol: IP_PROTOCOL.UDP,
        src: POD_A,
        dst: POD_B,
        payload: Buffer.alloc(1461),
      });
    expect(a.send(big(true))).toEqual({ ok: false, error: 'local error: message too long, mtu=1480' });
    expect(a.send(big(false))).toEqual({ ok: true });
    await clock.advance(10);
    expect(host.sentBy('client-7d9f8').map((v) => v.totalLength)).toEqual([1476, 25]);
    expect(a.send(Buffer.from([0x45, 0]))).toEqual({ ok: false, error: 'invalid IPv4 packet (truncated)' });
  });

  it('delivers packets synchronously looped back without re-entering itself half-way', () => {
    // A host that answers inside transmit(): the reply must only be processed after the request has left.
    const seen: string[] = [];
    const pod: SimulatedPod = new SimulatedPod({
      name: 'loop',
      ip: POD_B,
      mtu: 1480,
      transmit: (packet) => {
        const view = new Ipv4View(packet);
        seen.push(`${view.protocol}`);
        if (view.protocol === IP_PROTOCOL.UDP) pod.receive(udpPacket(9999, Buffer.from('again')));
      },
    });
    pod.receive(udpPacket(7, Buffer.from('x')));
    expect(seen).toEqual(['17', '1']);
    pod.close();
  });
});

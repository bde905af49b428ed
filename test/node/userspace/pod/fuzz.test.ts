import { describe, expect, it } from 'vitest';
import { internetChecksum, pseudoHeaderSum } from '../../../../src/wire/checksum.js';
import { icmp } from '../../../../src/wire/icmp.js';
import { IP_PROTOCOL, Ipv4View, ipv4 } from '../../../../src/wire/ipv4.js';
import { TCP_FLAG, tcp } from '../../../../src/wire/tcp.js';
import { udp } from '../../../../src/wire/udp.js';
import { mulberry32, randomBytes, randomInt } from '../../../support/random.js';
import { POD_A, POD_B, twoPods } from './harness.js';

const random = mulberry32(0xf00d);
const int = (below: number) => randomInt(random, below);
const bytes = (length: number) => randomBytes(random, length);

/** Well-formed packets of every kind the pod handles, addressed to pod B. */
function seed(): Buffer {
  const payloads = [
    () => ({
      protocol: IP_PROTOCOL.ICMP,
      payload: icmp.encode({
        kind: 'echo-request',
        identifier: int(65536),
        sequence: int(65536),
        data: bytes(int(100)),
      }),
    }),
    () => ({
      protocol: IP_PROTOCOL.ICMP,
      payload: icmp.encode({
        kind: 'destination-unreachable',
        code: int(16),
        nextHopMtu: int(2000),
        quoted: quotedFromB(),
      }),
    }),
    () => ({
      protocol: IP_PROTOCOL.ICMP,
      payload: icmp.encode({ kind: 'time-exceeded', code: int(2), quoted: quotedFromB() }),
    }),
    () => ({
      protocol: IP_PROTOCOL.UDP,
      payload: udp.encode(
        { srcPort: int(65536), dstPort: [7, 9999, 33434][int(3)], payload: bytes(int(64)) },
        { src: POD_A, dst: POD_B },
      ),
    }),
    () => ({
      protocol: IP_PROTOCOL.TCP,
      payload: tcp.encode(
        {
          srcPort: 30000 + int(8),
          dstPort: [8080, 8081][int(2)],
          sequence: int(2 ** 32),
          acknowledgment: int(2 ** 32),
          flags: [
            TCP_FLAG.SYN,
            TCP_FLAG.ACK,
            TCP_FLAG.ACK | TCP_FLAG.PSH,
            TCP_FLAG.FIN | TCP_FLAG.ACK,
            TCP_FLAG.RST,
            int(256),
          ][int(6)],
          window: int(65536),
          options: int(2) === 0 ? bytes(int(40)) : undefined,
          payload: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n').subarray(0, int(28)),
        },
        { src: POD_A, dst: POD_B },
      ),
    }),
  ];
  const { protocol, payload } = payloads[int(payloads.length)]();
  const fragmentOffset = int(4) === 0 ? int(20) * 8 : 0;
  return ipv4.encode({
    identification: int(8),
    moreFragments: int(4) === 0,
    fragmentOffset,
    dontFragment: int(2) === 0,
    ttl: int(256),
    protocol,
    src: POD_A,
    dst: POD_B,
    options: int(8) === 0 ? bytes(int(40)) : undefined,
    payload,
  });
}

/** A header B might have sent, so that errors reach its sockets' matching code. */
function quotedFromB(): Buffer {
  const header = ipv4.encode({
    identification: 1,
    ttl: 64,
    protocol: [1, 6, 17, 47][int(4)],
    src: POD_B,
    dst: POD_A,
    payload: bytes(8 + int(20)),
  });
  return header.subarray(0, int(header.length + 1));
}

function mutate(packet: Buffer): Buffer {
  let out = Buffer.from(packet);
  for (let i = int(4); i > 0 && out.length > 0; i--) out[int(out.length)] = int(256);
  if (int(5) === 0) out = out.subarray(0, int(out.length + 1));
  if (int(10) === 0) out = Buffer.concat([out, bytes(int(30))]);
  if (out.length >= 20 && int(2) === 0) repair(out);
  return out;
}

/** Makes the mutation reach past the checksums: fix IP length/checksum, and often the transport checksum too. */
function repair(out: Buffer): void {
  out[0] = 0x40 | Math.max(5, out[0] & 0x0f);
  const view = new Ipv4View(out);
  if (view.headerLength > out.length) return;
  view.totalLength = out.length;
  view.dst = POD_B;
  view.fillChecksum();
  const payload = out.subarray(view.headerLength);
  if (int(3) === 0 || payload.length < 8) return;
  const at = view.protocol === IP_PROTOCOL.TCP ? 16 : view.protocol === IP_PROTOCOL.UDP ? 6 : 2;
  if (payload.length < at + 2) return;
  payload.writeUInt16BE(0, at);
  const initial =
    view.protocol === IP_PROTOCOL.ICMP ? 0 : pseudoHeaderSum(view.src, view.dst, view.protocol, payload.length);
  payload.writeUInt16BE(internetChecksum(payload, 0, payload.length, initial), at);
}

describe('receive() on hostile input', () => {
  it('never throws on 10,000 random and mutated buffers, and its timers all run out', async () => {
    const { clock, a, b } = twoPods();
    // Something to match errors against: a running ping and curl from B.
    const ping = b.ping(POD_A, { count: 3 });
    const curl = b.curl('http://192.168.77.130:8080/', { timeoutMs: 5000 });
    for (let i = 0; i < 10_000; i++) {
      const input = i % 3 === 0 ? bytes(int(1600)) : mutate(seed());
      expect(() => b.receive(input)).not.toThrow();
      if (i % 500 === 0) await clock.advance(int(3000));
    }
    await clock.settle(Promise.all([ping, curl]));
    await clock.advance(300_000);
    expect(clock.pendingTimers).toBe(0);
    const { rxPackets, drops } = b.counters;
    expect(rxPackets).toBeGreaterThanOrEqual(10_000);
    expect(Object.values(drops).reduce((sum, n) => sum + (n ?? 0), 0)).toBeGreaterThan(5000);
    // Both pods still work afterwards.
    expect((await clock.settle(a.curl('http://192.168.87.198:8080/'))).exitCode).toBe(0);
  });
});

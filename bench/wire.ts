/**
 * The wire layer's per-packet path: check a received packet with a reused view, decrement its TTL, encapsulate it
 * into a reused buffer. Reports the rate and how much the heap grew, which should stay near zero because that path
 * allocates nothing. Run after a build: `node --expose-gc dist/bench/wire.js`.
 */
import { pathToFileURL } from 'node:url';
import { IP_PROTOCOL, Ipv4View, encapsulate, ipv4 } from '../src/wire/index.js';

export interface WireBenchResult {
  packets: number;
  nanosecondsPerPacket: number;
  heapGrowthBytes: number;
}

export function benchWire(packets = 2_000_000): WireBenchResult {
  const received = ipv4.encode({
    identification: 0xae79,
    dontFragment: true,
    ttl: 64,
    protocol: IP_PROTOCOL.ICMP,
    src: 0xc0a84d82,
    dst: 0xc0a857c6,
    payload: Buffer.alloc(64),
  });
  const view = new Ipv4View(Buffer.alloc(0));
  const out = Buffer.alloc(1500);
  const tunnel = { src: 0x0a00000a, dst: 0x0a00000b, id: 0 };
  const collect = (globalThis as { gc?: () => void }).gc;

  const step = () => {
    if (view.attach(received).validate() !== undefined) throw new Error('bench packet refused');
    view.decrementTtl();
    view.ttl = 64;
    view.fillChecksum();
    tunnel.id = (tunnel.id + 1) & 0xffff;
    encapsulate(received, tunnel, out);
  };
  for (let i = 0; i < 10_000; i++) step();
  collect?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const start = process.hrtime.bigint();
  for (let i = 0; i < packets; i++) step();
  const elapsed = process.hrtime.bigint() - start;
  const heapGrowthBytes = process.memoryUsage().heapUsed - heapBefore;
  return { packets, nanosecondsPerPacket: Number(elapsed) / packets, heapGrowthBytes };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(benchWire()));
}

/**
 * Issue 7, point 6, the memory part without Docker's noise: the flood's packet mix (echo requests to a pod, bad inner
 * checksums, CE over Not-ECT, IPIP from a stranger) through a real LabNode with its pods, its replies carried to the
 * other nodes by an in-memory wire. The live heap after a full garbage collection stays flat however many packets
 * pass: no per-packet state. (A container's RSS also shows V8 growing its heap to the allocation rate, which is why
 * lab.test.ts only bounds the RSS there.)
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { expect, test } from 'vitest';
import { clusterOf, readSpecFile } from '../../src/cli/cluster-source.js';
import { unaccounted } from '../../src/node/userspace/dataplane.js';
import { LabNode } from '../../src/node/userspace/lab-node.js';
import { echoRequest, ipipPacket } from '../support/lab-packets.js';
import { ROBUSTNESS_SPEC } from './support/specs.js';
import { NIGHTLY, recordFigures } from './support/tool.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const PACKETS = NIGHTLY ? 10_000_000 : 1_000_000;

function liveHeap(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

test(
  `${PACKETS.toLocaleString('en')} flood packets through a node and its pods: the live heap stays flat`,
  { timeout: NIGHTLY ? 600_000 : 60_000 },
  async () => {
    const cluster = clusterOf(readSpecFile(ROBUSTNESS_SPEC));
    const nodes = new Map<number, LabNode>();
    const wire = {
      send(packet: Buffer, destination: number) {
        const copy = Buffer.from(packet);
        setImmediate(() => nodes.get(destination)?.dataplane.fromUnderlay(copy));
      },
    };
    for (const node of cluster.nodes) nodes.set(node.ip.value, new LabNode(cluster, node.name, wire));
    const [master, target] = ['master-node', 'worker-node01'].map((name) =>
      cluster.nodes.find((node) => node.name === name)!,
    );
    const pods = cluster.pods.filter((pod) => pod.node === target.name);
    const node = nodes.get(target.ip.value)!;

    // 1,000 variants of each kind, as the flood generator makes them.
    const mix: Buffer[] = [];
    for (let i = 0; i < 1_000; i++) {
      const echo = echoRequest({
        src: String(master.tunnelAddress),
        dst: pods[i % pods.length].ip.toString(),
        sequence: i,
        size: i % 1400,
      });
      const outer = { src: master.ip.toString(), dst: target.ip.toString() };
      const badChecksum = Buffer.from(echo);
      badChecksum[10] ^= 0x5a;
      mix.push(
        ipipPacket(echo, outer),
        ipipPacket(badChecksum, outer),
        ipipPacket(echo, { ...outer, ecn: 3 }),
        ipipPacket(echo, { ...outer, src: '10.32.0.100' }),
      );
    }

    let warm = 0;
    const started = performance.now();
    for (let sent = 0; sent < PACKETS; sent++) {
      // The underlay hands over a copy of each packet it reads.
      node.dataplane.fromUnderlay(Buffer.from(mix[sent % mix.length]));
      if (sent % 1_000 === 999) await new Promise((resolve) => setImmediate(resolve));
      if (sent === Math.floor(PACKETS / 10)) warm = liveHeap();
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    const end = liveHeap();
    const seconds = (performance.now() - started) / 1000;

    const stats = node.dataplane.stats();
    expect(stats.received).toBeGreaterThanOrEqual(PACKETS);
    expect(unaccounted(stats)).toBe(0);
    expect(stats.delivered).toBe(PACKETS / 4);
    // 90 % of the packets after the warm-up measurement: not even a byte each.
    expect(end - warm).toBeLessThan(PACKETS * 0.9);
    expect(end - warm).toBeLessThan(2 * 1024 * 1024);
    for (const lab of nodes.values()) lab.close();
    recordFigures('flood-memory', {
      packets: PACKETS,
      seconds: Math.round(seconds * 10) / 10,
      liveHeapWarmKb: Math.round(warm / 1024),
      liveHeapEndKb: Math.round(end / 1024),
    });
  },
);

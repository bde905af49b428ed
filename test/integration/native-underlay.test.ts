/**
 * The native underlay on real containers: two nodes on it talk to each other, a native node and a raw-socket node
 * talk to each other, and the outer headers both put on the wire are the ones their dataplanes built, of one shape.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { PodState } from '../../src/calico/index.js';
import { startLab, type Lab, type LabNodeHandle } from '../../src/testing/index.js';
import { REPO_ROOT } from '../support/cli.js';

const SPEC = `${REPO_ROOT}test/fixtures/native-underlay.yaml`;
/** worker-node03 runs raw-socket, the others native. */
const UNDERLAY_OF: Record<string, string> = {
  'worker-node01': 'native',
  'worker-node02': 'native',
  'worker-node03': 'raw-socket',
};

let lab: Lab;
let native1: LabNodeHandle;
let native2: LabNodeHandle;
let rawSocket: LabNodeHandle;
let pod1: PodState;
let pod2: PodState;
let pod3: PodState;

beforeAll(async () => {
  lab = await startLab({ spec: SPEC, dataplane: 'userspace', agentArgs: (node) => ['--underlay', UNDERLAY_OF[node]] });
  native1 = lab.node('worker-node01');
  native2 = lab.node('worker-node02');
  rawSocket = lab.node('worker-node03');
  [pod1] = lab.podsOn('worker-node01');
  [pod2] = lab.podsOn('worker-node02');
  [pod3] = lab.podsOn('worker-node03');
});

/**
 * Pings until one reply comes back. The kernel's neighbour (ARP) table is shared by every container on the machine;
 * when other labs have filled it, a node's first packets to a new neighbour are dropped (ENOBUFS, which raw sockets
 * do not report) until entries age out. Exact counts are only meaningful once the path is up.
 */
async function warmUp(node: LabNodeHandle, from: PodState, to: PodState): Promise<void> {
  const deadline = Date.now() + 15_000;
  while ((await node.ping({ from: from.name, to: to.name, count: 1, timeoutMs: 500 })).received === 0) {
    if (Date.now() > deadline) throw new Error(`no reply from ${to.name} to ${from.name} within 15 s`);
  }
}

beforeAll(async () => {
  await warmUp(native1, pod1, pod2);
  await warmUp(native2, pod2, pod1);
  await warmUp(native1, pod1, pod3);
  await warmUp(rawSocket, pod3, pod1);
});

afterAll(async () => {
  await lab?.stop();
});

/** The IPv4 packets of a tcpdump file (classic pcap) taken on an Ethernet interface. */
function ipv4Packets(pcap: Buffer): Buffer[] {
  const magic = pcap.readUInt32LE(0);
  if (magic !== 0xa1b2c3d4 && magic !== 0xa1b23c4d)
    throw new Error(`not a little-endian pcap file (magic ${magic.toString(16)})`);
  expect(pcap.readUInt32LE(20)).toBe(1); // LINKTYPE_ETHERNET
  const packets: Buffer[] = [];
  for (let at = 24; at + 16 <= pcap.length;) {
    const length = pcap.readUInt32LE(at + 8);
    const frame = pcap.subarray(at + 16, at + 16 + length);
    if (frame.readUInt16BE(12) === 0x0800) packets.push(Buffer.from(frame.subarray(14)));
    at += 16 + length;
  }
  return packets;
}

const dotted = (packet: Buffer, offset: number): string => [...packet.subarray(offset, offset + 4)].join('.');

describe('startup', () => {
  test("each agent's log names the underlay it runs", async () => {
    expect(await native1.logs()).toContain('raw IPIP socket open, native (recvmmsg/sendmmsg in batches)');
    expect(await rawSocket.logs()).toContain('raw IPIP socket open, raw-socket (one packet per event)');
  });
});

describe('two native nodes', () => {
  test('ping both ways and curl across', async () => {
    const there = await native1.ping({ from: pod1.name, to: pod2.name, count: 3, intervalMs: 100 });
    const back = await native2.ping({ from: pod2.name, to: pod1.name, count: 3, intervalMs: 100 });
    const curl = await native1.curl(`http://${pod2.ip}:8080/`, { from: pod1.name, maxTimeMs: 5_000 });
    expect([there.received, back.received]).toEqual([3, 3]);
    expect(curl.exitCode).toBe(0);
    expect(curl.body).toBe(`Hello, world!\nVersion: 1.0.0\nHostname: ${pod2.name}\n`);
    expect((await native1.stats()).underlaySendErrors).toBe(0);
  });
});

describe('a native node and a raw-socket node', () => {
  test('ping both ways', async () => {
    const fromNative = await native1.ping({ from: pod1.name, to: pod3.name, count: 3, intervalMs: 100 });
    const fromRawSocket = await rawSocket.ping({ from: pod3.name, to: pod1.name, count: 3, intervalMs: 100 });
    expect([fromNative.received, fromRawSocket.received]).toEqual([3, 3]);
  });

  test('on the wire each sends the outer header its dataplane built, and both headers have one shape', async () => {
    const wire = await rawSocket.tcpdump({ filter: 'ip proto 4' });
    const builtByNative = await native1.capture({ interfaces: ['eth0'] });
    const builtByRawSocket = await rawSocket.capture({ interfaces: ['eth0'] });
    // Two echo requests of the same kind, one sent by each underlay.
    const fromNative = await native1.ping({ from: pod1.name, to: pod3.name, count: 1 });
    const fromRawSocket = await rawSocket.ping({ from: pod3.name, to: pod1.name, count: 1 });
    const sentByNative = (await builtByNative.stop()).packets.filter((p) => p.direction === 'tx').map((p) => p.packet);
    const sentByRawSocket = (await builtByRawSocket.stop()).packets
      .filter((p) => p.direction === 'tx')
      .map((p) => p.packet);
    const onWire = ipv4Packets(await wire.stop());

    expect([fromNative.received, fromRawSocket.received]).toEqual([1, 1]);
    // Byte for byte what each dataplane handed its underlay (request and reply each): the kernel changed nothing.
    expect(onWire.filter((packet) => dotted(packet, 12) === native1.ip)).toEqual(sentByNative);
    expect(onWire.filter((packet) => dotted(packet, 12) === rawSocket.ip)).toEqual(sentByRawSocket);
    expect(sentByNative).toHaveLength(2);
    // The two requests' outer headers differ only in ID, checksum and addresses.
    const requestBy = (sent: Buffer[]) => sent.find((packet) => packet[40] === 8)!;
    const shape = (packet: Buffer) => Buffer.concat([packet.subarray(0, 4), packet.subarray(6, 10)]).toString('hex');
    expect(shape(requestBy(sentByNative))).toBe(shape(requestBy(sentByRawSocket)));
    expect(shape(requestBy(sentByNative))).toBe('450000684000' + '3f04'); // IHL 5, no DSCP/ECN, 104 bytes, DF, TTL 63, IPIP
  });
});

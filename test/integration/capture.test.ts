/**
 * Issue 5's acceptance on real containers: `ipip-lab capture` run inside the seed's node containers, its files read
 * back on the host by tshark (copied out through the container, never fetched from a lab address), and compared
 * byte for byte with tcpdump's capture of the same packets in the same container.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { PodState } from '../../src/calico/index.js';
import { startLab, type Lab, type LabNodeHandle } from '../../src/testing/index.js';
import { LINKTYPE } from '../../src/wire/index.js';
import { SEED_CNI_OVERVIEW } from '../support/cli.js';
import { tsharkRows } from '../support/wire-tshark.js';

let lab: Lab;
let node01: LabNodeHandle;
/** Pod A on worker-node01, pod B on worker-node02 (the seed's scheduling). */
let podA: PodState;
let podB: PodState;
const directory = mkdtempSync(path.join(tmpdir(), 'ipip-lab-capture-test-'));

beforeAll(async () => {
  lab = await startLab({ spec: SEED_CNI_OVERVIEW, name: 'capture', dataplane: 'userspace' });
  node01 = lab.node('worker-node01');
  [podA] = lab.podsOn('worker-node01');
  [podB] = lab.podsOn('worker-node02');
});

afterAll(async () => {
  await lab?.stop();
});

let files = 0;
function saved(bytes: Buffer, extension = 'pcapng'): string {
  const file = path.join(directory, `capture-${++files}.${extension}`);
  writeFileSync(file, bytes);
  return file;
}

/** tshark's fields, every occurrence comma-joined (outer first), with extra options before them. */
const fields = (file: string, names: string[], extra: string[] = []) =>
  tsharkRows(['-r', file, ...extra, '-T', 'fields', '-E', 'occurrence=a', ...names.flatMap((name) => ['-e', name])]);

/** The IP packets of a classic pcap of Ethernet frames (tcpdump -w on eth0), Ethernet header stripped. */
function ipPacketsOfEthernetPcap(file: Buffer): Buffer[] {
  const ETHERNET_HEADER = 14;
  expect([0xa1b2c3d4, 0xa1b23c4d]).toContain(file.readUInt32LE(0));
  expect(file.readUInt32LE(20)).toBe(LINKTYPE.ETHERNET);
  const packets: Buffer[] = [];
  for (let at = 24; at + 16 <= file.length;) {
    const captured = file.readUInt32LE(at + 8);
    packets.push(file.subarray(at + 16 + ETHERNET_HEADER, at + 16 + captured));
    at += 16 + captured;
  }
  return packets;
}

/** A shell command in a node container, as `docker exec` runs it, its stdout piped into a host command. */
function pipeFromContainer(
  node: LabNodeHandle,
  inContainer: string,
  onHost: string,
): Promise<{ code: number | null; lines: string[]; at: number[] }> {
  const started = Date.now();
  const lines: string[] = [];
  const at: number[] = [];
  const child = spawn('sh', ['-c', `docker exec ${node.container.getId()} sh -c '${inContainer}' | ${onHost}`], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    const complete = (partial + text).split('\n');
    partial = complete.pop()!;
    for (const line of complete) {
      lines.push(line);
      at.push(Date.now() - started);
    }
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, lines, at }));
  });
}

describe('an eth0 capture of a cross-node ping', () => {
  let ours: { file: Buffer; packets: { packet: Buffer; direction: string }[] };
  let kernel: Buffer;
  let file: string;

  beforeAll(async () => {
    const capture = await node01.capture({ interfaces: ['eth0'] });
    const tcpdump = await node01.tcpdump({ filter: 'ip proto 4' });
    const report = await node01.ping({ from: podA.name, to: podB.name, count: 3, intervalMs: 200 });
    expect(report.received).toBe(3);
    [ours, kernel] = await Promise.all([capture.stop(), tcpdump.stop()]);
    file = saved(ours.file);
  });

  test('is IPIP 10.0.0.11 ↔ 10.0.0.12 with the pod packet nested: the pod addresses at ip.src#2 and ip.dst#2', async () => {
    const request = [`10.0.0.11,${podA.ip}`, `10.0.0.12,${podB.ip}`, '4,1', '8'];
    const reply = [`10.0.0.12,${podB.ip}`, `10.0.0.11,${podA.ip}`, '4,1', '0'];
    expect(await fields(file, ['ip.src', 'ip.dst', 'ip.proto', 'icmp.type'])).toEqual([
      request,
      reply,
      request,
      reply,
      request,
      reply,
    ]);
    const nested = (src: PodState, dst: PodState) => [
      '-Y',
      `ip.proto == 4 && ip.src#2 == ${src.ip} && ip.dst#2 == ${dst.ip}`,
    ];
    expect(await fields(file, ['frame.number'], nested(podA, podB))).toEqual([['1'], ['3'], ['5']]);
    expect(await fields(file, ['frame.number'], nested(podB, podA))).toEqual([['2'], ['4'], ['6']]);
  });

  test('has no bad checksum in either IPv4 layer, as tshark checks them', async () => {
    const check = ['-o', 'ip.check_checksum:TRUE'];
    expect(await fields(file, ['frame.number'], [...check, '-Y', 'ip.checksum.status == "Bad"'])).toEqual([]);
    const statuses = await fields(file, ['ip.checksum.status'], check);
    expect(statuses).toEqual(Array(6).fill(['1,1'])); // 1: Good, outer and inner
  });

  test('names the interface and the node, and its timestamps never go backwards', async () => {
    const rows = await fields(file, [
      'frame.interface_name',
      'frame.interface_description',
      'frame.packet_flags_direction',
      'frame.time_epoch',
    ]);
    expect(rows.map(([name, description]) => [name, description])).toEqual(
      Array(6).fill(['eth0', 'worker-node01 eth0 ↔ underlay 10.0.0.11 (IPIP, outer headers)']),
    );
    // Requests leave worker-node01 (outbound), replies arrive (inbound).
    expect(rows.map(([, , direction]) => direction)).toEqual([
      '0x00000002',
      '0x00000001',
      '0x00000002',
      '0x00000001',
      '0x00000002',
      '0x00000001',
    ]);
    const times = rows.map(([, , , epoch]) => BigInt(epoch.replace('.', '')));
    for (let i = 1; i < times.length; i++) expect(times[i]).toBeGreaterThanOrEqual(times[i - 1]);
  });

  test('holds the same packets, byte for byte, as tcpdump -w on eth0 in the same container', () => {
    expect(ours.packets.map((p) => p.packet.toString('hex'))).toEqual(
      ipPacketsOfEthernetPcap(kernel).map((p) => p.toString('hex')),
    );
  });
});

describe('other views', () => {
  test("tunl0 holds the inner packets, and -i POD the pod's cali interface, described with its pod", async () => {
    const capture = await node01.capture({ interfaces: ['tunl0', podA.name] });
    await node01.ping({ from: podA.name, to: podB.name, count: 1 });
    const file = saved((await capture.stop()).file);
    const rows = await fields(file, [
      'frame.interface_name',
      'frame.interface_description',
      'ip.src',
      'ip.dst',
      'ip.ttl',
    ]);
    const cali = [podA.hostInterface, `worker-node01 ${podA.hostInterface} ↔ pod default/${podA.name} (${podA.ip})`];
    const tunl0 = ['tunl0', 'worker-node01 tunl0 ↔ IPIP tunnel 192.168.87.192 (inner packets)'];
    expect(rows).toEqual([
      [...cali, `${podA.ip}`, `${podB.ip}`, '64'],
      [...tunl0, `${podA.ip}`, `${podB.ip}`, '63'],
      [...tunl0, `${podB.ip}`, `${podA.ip}`, '63'],
      [...cali, `${podB.ip}`, `${podA.ip}`, '62'],
    ]);
  });

  test('without -w the file lands in /captures, named after the node, the interfaces and the time, with the stats', async () => {
    const [result] = await Promise.all([
      node01.exec(['ipip-lab', 'capture', '-i', 'eth0', '-c', '2', '--format', 'pcap']),
      new Promise((resolve) => setTimeout(resolve, 1500)).then(() =>
        node01.ping({ from: podA.name, to: podB.name, count: 3, intervalMs: 200 }),
      ),
    ]);
    expect(result.exitCode).toBe(0);
    const name = /writing (\/captures\/worker-node01-eth0-\d{8}T\d{6}Z\.pcap) \(Ctrl-C stops\)/.exec(
      result.stderr,
    )?.[1];
    expect(name, result.stderr).toBeDefined();
    expect(result.stderr).toContain(
      `2 packets captured\n2 packets written to ${name}\n0 packets dropped because the capture fell behind (forwarding comes first)\n`,
    );
    const copy = await node01.exec(['base64', '-w', '0', name!]);
    const file = saved(Buffer.from(copy.stdout, 'base64'), 'pcap');
    const RAW_IP = '7';
    expect(await fields(file, ['frame.encap_type', 'ip.proto'])).toEqual([
      [RAW_IP, '4,1'],
      [RAW_IP, '4,1'],
    ]);
  });

  test('a filter it cannot read is refused before anything is created', async () => {
    const before = (await node01.exec(['ls', '/captures'])).stdout;
    const result = await node01.ipipLab(['capture', '-i', 'eth0', 'host']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toBe('ipip-lab: worker-node01: filter: expected an address after "host" at column 5\n');
    expect((await node01.exec(['ls', '/captures'])).stdout).toBe(before);
  });
});

describe('streaming with -w -', () => {
  test('piped into tshark -r -, packets show while the capture runs, and it ends after -c packets', async () => {
    const pinging = new Promise((resolve) => setTimeout(resolve, 2000)).then(() =>
      node01.ping({ from: podA.name, to: podB.name, count: 2, intervalMs: 3000 }),
    );
    const piped = await pipeFromContainer(
      node01,
      'ipip-lab capture -i eth0 -c 4 -w - 2>/dev/null',
      // tshark refuses a socket on stdin, and that is what a child's pipe is: cat puts a real pipe in between.
      'cat | tshark -l -r - -T fields -E occurrence=a -e frame.interface_name -e ip.src 2>/dev/null',
    );
    await pinging;
    expect(piped.code).toBe(0);
    expect(piped.lines).toEqual([
      `eth0\t10.0.0.11,${podA.ip}`,
      `eth0\t10.0.0.12,${podB.ip}`,
      `eth0\t10.0.0.11,${podA.ip}`,
      `eth0\t10.0.0.12,${podB.ip}`,
    ]);
    // The first exchange was printed a ping interval before the second one happened.
    expect(piped.at[3] - piped.at[1]).toBeGreaterThan(2000);
  });

  test('a reader that goes away ends the capture cleanly, with its stats, and the agent stops it', async () => {
    const script =
      '{ ipip-lab capture -i eth0 -w - 2>/tmp/reader-gone.log; echo $? > /tmp/reader-gone.status; } | head -c 10 > /dev/null';
    const capture = node01.exec(['sh', '-c', script]);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await node01.ping({ from: podA.name, to: podB.name, count: 2, intervalMs: 200 });
    expect((await capture).exitCode).toBe(0);
    expect((await node01.exec(['cat', '/tmp/reader-gone.status'])).stdout).toBe('0\n');
    expect((await node01.exec(['cat', '/tmp/reader-gone.log'])).stdout).toMatch(
      /\d+ packets captured\n\d+ packets written to stdout\n/,
    );
    expect(await node01.api('GET', '/v1/captures')).toEqual([]);
  });
});

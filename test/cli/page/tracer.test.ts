/**
 * The tracer's parts that need no lab: the dissector against tshark on the kernel vectors, the picking of a probe's
 * packets (a real ICMP error quoting a real probe), the data-path order, the hops and their route lookups, the
 * examples and the request checks.
 */
import { describe, expect, test } from 'vitest';
import type { PodState } from '../../../src/calico/index.js';
import { changedFields, dissect } from '../../../src/cli/page/tracer/dissect.js';
import { traceExamples } from '../../../src/cli/page/tracer/examples.js';
import { findProbe, flowPart, splitFlow, type Sighting } from '../../../src/cli/page/tracer/flow.js';
import { buildPath, nodeTables, routeLookup } from '../../../src/cli/page/tracer/hops.js';
import { TraceError, checkTraceRequest } from '../../../src/cli/page/tracer/trace.js';
import { walkPath } from '../../../src/cli/page/tracer/walk.js';
import { Ipv4Address } from '../../../src/routing/index.js';
import { ipv4FromString } from '../../../src/wire/index.js';
import { echoRequest, ipipPacket } from '../../support/lab-packets.js';
import { seedCluster } from '../../support/seed-cluster.js';
import { tsharkFields } from '../../support/wire-tshark.js';
import { VECTORS_DIR, loadVector, vectorFiles } from '../../support/wire-vectors.js';

const address = (text: string) => ipv4FromString(text)!;

function fieldValues(packet: Buffer): Map<string, string> {
  return new Map(
    dissect(packet)
      .layers.flatMap((layer) => layer.fields)
      .map((field) => [field.key, field.value]),
  );
}

describe('dissect', () => {
  test.each(vectorFiles())('reads every IPv4 header of %s as tshark does', async (file) => {
    const frames = loadVector(file);
    const rows = await tsharkFields(new URL(file, VECTORS_DIR).pathname, [
      'ip.src',
      'ip.dst',
      'ip.ttl',
      'ip.id',
      'ip.proto',
    ]);
    for (const [index, frame] of frames.entries()) {
      const fields = fieldValues(frame.ip);
      const headers = fields.has('outer.src') ? ['outer', 'ip'] : ['ip'];
      const [src, dst, ttl, id, proto] = rows[index].map((column) => column.split(';'));
      headers.forEach((header, occurrence) => {
        expect(fields.get(`${header}.src`)).toBe(src[occurrence]);
        expect(fields.get(`${header}.dst`)).toBe(dst[occurrence]);
        expect(fields.get(`${header}.ttl`)).toBe(ttl[occurrence]);
        expect(fields.get(`${header}.id`)?.split(' ')[0]).toBe(id[occurrence]);
        expect(fields.get(`${header}.protocol`)).toContain(`(${proto[occurrence]})`);
      });
    }
  });

  test("each field's byte range holds its value", () => {
    for (const frame of loadVector('ttl2.pcapng')) {
      for (const field of dissect(frame.ip).layers.flatMap((layer) => layer.fields)) {
        expect(field.offset + field.length).toBeLessThanOrEqual(frame.ip.length);
        if (field.key.endsWith('.src') && field.length === 4) {
          const bytes = [...frame.ip.subarray(field.offset, field.offset + 4)].join('.');
          expect(bytes).toBe(field.value);
        }
        if (field.key.endsWith('.ttl')) expect(String(frame.ip[field.offset])).toBe(field.value);
      }
    }
  });

  test('a fragmentation-needed error shows its next-hop MTU', () => {
    const icmp = Buffer.from('030400000000 05c8'.replace(' ', ''), 'hex');
    const packet = echoRequest({ src: '10.0.0.11', dst: '192.168.87.193', size: 0 });
    // An ICMP 3/4 made from the echo's header: the layer is read, not checked.
    icmp.copy(packet, 20);
    const fields = fieldValues(packet);
    expect(fields.get('icmp.type')).toBe('3');
    expect(fields.get('icmp.mtu')).toBe('1480');
    expect(dissect(packet).summary).toContain('Fragmentation needed');
  });

  test('bytes that are not IPv4 give a data layer, not an exception', () => {
    expect(dissect(Buffer.from([0x60, 0, 0])).summary).toContain('not an IPv4 packet');
  });

  test('changed fields: the values that differ, and a header just added', () => {
    const inner = echoRequest({ src: '192.168.87.193', dst: '192.168.158.1', ttl: 63 });
    const before = dissect(echoRequest({ src: '192.168.87.193', dst: '192.168.158.1', ttl: 64 })).layers;
    const changed = changedFields(before, dissect(inner).layers);
    expect(changed).toEqual(['ip.ttl', 'ip.checksum']);
    const wrapped = changedFields(
      dissect(inner).layers,
      dissect(ipipPacket(inner, { src: '10.0.0.11', dst: '10.0.0.12' })).layers,
    );
    expect(wrapped.every((key) => key.startsWith('outer.'))).toBe(true);
    expect(wrapped).toContain('outer.src');
    expect(changedFields(undefined, before)).toEqual([]);
  });
});

/** The vectors' bridge frames as one node's eth0 would see them: sent by the outer source's node. */
function bridgeSightings(file: string): Sighting[] {
  return loadVector(file).map((frame) => ({
    node: `node-${frame.ip[15]}`,
    interfaceName: 'eth0',
    direction: 'tx',
    timestampNs: frame.timestampNs,
    data: frame.ip,
  }));
}

describe('the probe and its packets', () => {
  test("an ICMP 11/0 from the kernel, quoting the probe, is the probe's reply (ttl2 vector)", () => {
    const sightings = bridgeSightings('ttl2.pcapng');
    const key = findProbe(sightings, 'icmp', [address('192.168.77.130')], address('192.168.87.198'), 0);
    expect(key).toBeDefined();
    const { forward, reply } = splitFlow(key!, sightings);
    expect(forward).toHaveLength(1);
    expect(reply.map((sighting) => fieldValues(sighting.data).get('icmp.type'))).toEqual(['11']);
  });

  test('echo replies match by id and sequence; another sequence is not the probe', () => {
    const sightings = bridgeSightings('ping-df.pcapng');
    const key = findProbe(sightings, 'icmp', [address('192.168.77.130')], address('192.168.87.198'), 0)!;
    const parts = sightings.map((sighting) => flowPart(key, sighting.data));
    expect(parts.filter((part) => part === 'forward')).toHaveLength(1);
    expect(parts.filter((part) => part === 'reply')).toHaveLength(1);
    expect(parts.filter((part) => part === undefined).length).toBe(sightings.length - 2);
  });

  test('a probe from another source is not found', () => {
    const sightings = bridgeSightings('ping-df.pcapng');
    expect(findProbe(sightings, 'icmp', [address('192.168.1.1')], address('192.168.87.198'), 0)).toBeUndefined();
    expect(findProbe(sightings, 'tcp', [address('192.168.77.130')], address('192.168.87.198'), 8080)).toBeUndefined();
  });
});

/** A cross-node echo through the seed's cluster, as the six taps on its way see it. */
function crossNodeEcho(from: PodState, to: PodState): Sighting[] {
  const at = (ttl: number) => echoRequest({ src: from.ip.toString(), dst: to.ip.toString(), ttl });
  const outer = (ttl: number) => ipipPacket(at(ttl), { src: '10.0.0.11', dst: '10.0.0.12' });
  // node02's clock runs a millisecond behind node01's, and node01 read its tunl0 before its cali.
  return [
    { node: 'worker-node01', interfaceName: 'tunl0', direction: 'tx', timestampNs: 1_000n, data: at(63) },
    { node: 'worker-node01', interfaceName: from.hostInterface, direction: 'rx', timestampNs: 1_100n, data: at(64) },
    { node: 'worker-node01', interfaceName: 'eth0', direction: 'tx', timestampNs: 1_200n, data: outer(63) },
    { node: 'worker-node02', interfaceName: 'eth0', direction: 'rx', timestampNs: 300n, data: outer(63) },
    { node: 'worker-node02', interfaceName: 'tunl0', direction: 'rx', timestampNs: 400n, data: at(63) },
    { node: 'worker-node02', interfaceName: to.hostInterface, direction: 'tx', timestampNs: 500n, data: at(62) },
  ] satisfies Sighting[];
}

describe('the path', () => {
  const cluster = seedCluster();
  const podOn = (node: string) => cluster.pods.find((pod) => pod.node === node)!;
  const from = podOn('worker-node01');
  const to = podOn('worker-node02');
  const nodeByIp = new Map(cluster.nodes.map((node) => [node.ip.value, node.name]));

  test("follows the data path, not the nodes' clocks", () => {
    const shuffled = crossNodeEcho(from, to).reverse();
    const ordered = walkPath(shuffled, nodeByIp, 'worker-node01');
    expect(ordered.map((s) => `${s.node} ${s.interfaceName} ${s.direction}`)).toEqual([
      `worker-node01 ${from.hostInterface} rx`,
      'worker-node01 tunl0 tx',
      'worker-node01 eth0 tx',
      'worker-node02 eth0 rx',
      'worker-node02 tunl0 rx',
      `worker-node02 ${to.hostInterface} tx`,
    ]);
    // Without a known sender, it starts where the packet did not arrive by the tunnel.
    expect(walkPath(shuffled, nodeByIp)[0].node).toBe('worker-node01');
  });

  test('hops: the lookups, the decapsulation, the TTL changes and the arrival', () => {
    const tables = nodeTables(cluster);
    const ordered = walkPath(crossNodeEcho(from, to), nodeByIp, 'worker-node01');
    const hops = buildPath(ordered, tables, new Set(nodeByIp.keys()), 0n, 'forward', { pod: to });
    expect(hops.map((hop) => hop.kind)).toEqual([
      'capture',
      'route',
      'capture',
      'capture',
      'capture',
      'decapsulation',
      'capture',
      'route',
      'capture',
      'arrival',
    ]);
    const lookup = hops[1].route!;
    expect(lookup.lines[lookup.matched!]).toMatch(/via 10\.0\.0\.12 dev tunl0 proto bird onlink/);
    expect(hops[2].packet?.changed).toContain('ip.ttl');
    expect(hops[3].packet?.changed).toContain('outer.dst');
    expect(hops[4].packet?.changed).toEqual([]);
    expect(hops[8].packet?.changed).toContain('ip.ttl');
    expect(hops[9].title).toContain('TTL 62');
  });

  test('an outer source that is no node is refused at decapsulation', () => {
    const stranger = ipipPacket(echoRequest({ src: from.ip.toString(), dst: to.ip.toString() }), {
      src: '10.0.0.1',
      dst: '10.0.0.12',
    });
    const sightings: Sighting[] = [
      { node: 'worker-node02', interfaceName: 'eth0', direction: 'rx', timestampNs: 0n, data: stranger },
    ];
    const hops = buildPath(sightings, nodeTables(cluster), new Set(nodeByIp.keys()), 0n, 'forward', { pod: to });
    expect(hops.map((hop) => hop.kind)).toEqual(['capture', 'drop']);
  });

  test('route lookups: the longest prefix, the blackhole, the local address', () => {
    const tables = nodeTables(cluster).get('worker-node02')!;
    const own = routeLookup(tables, to.ip.value);
    expect(own.candidates.map((candidate) => candidate.prefixLength).sort()).toEqual([26, 32]);
    expect(own.lines[own.matched!]).toContain(to.hostInterface);
    expect(own.why).toContain('the longest prefix, /32, wins');

    const node02 = cluster.nodes.find((node) => node.name === 'worker-node02')!;
    const unheld = node02.blocks[0].last().add(-1);
    const blackhole = routeLookup(tables, unheld.value);
    expect(blackhole.route?.kind).toBe('blackhole');
    expect(blackhole.why).toContain('blackhole');

    const local = routeLookup(tables, node02.tunnelAddress!.value);
    expect(local.local).toBe(true);
    expect(local.why).toContain('local table');

    const nowhere = routeLookup(tables, Ipv4Address.parse('8.8.8.8').value);
    expect(nowhere.matched).toBeNull();
  });
});

describe('examples', () => {
  test("the seed's examples: its own path first, each request a real one of the cluster", () => {
    const cluster = seedCluster();
    const examples = traceExamples(cluster);
    expect(examples.map((example) => example.id)).toEqual(
      expect.arrayContaining(['pod-to-pod', 'node-to-pod', 'mtu-df', 'blackhole', 'tcp-8080']),
    );
    const seedPath = examples[0];
    const podNode = (name: string) => cluster.pods.find((pod) => pod.name === name)?.node;
    expect([podNode(seedPath.request.from), podNode(seedPath.request.to)]).toEqual(['worker-node01', 'worker-node02']);
    const blackholed = Ipv4Address.parse(examples.find((example) => example.id === 'blackhole')!.request.to);
    expect(cluster.pods.some((pod) => pod.ip.equals(blackholed))).toBe(false);
    expect(cluster.nodes.find((node) => node.name === 'worker-node02')!.blocks[0].contains(blackholed)).toBe(true);
    expect(examples.find((example) => example.id === 'mtu-df')!.request).toMatchObject({ size: 1488, df: true });
  });

  test('a lab without pods has no examples that need them', () => {
    const cluster = seedCluster();
    expect(traceExamples({ ...cluster, pods: [] })).toEqual([]);
  });
});

describe('trace requests', () => {
  test.each([
    [null, 'expected a JSON object'],
    [{ to: 'x', protocol: 'icmp', df: true }, 'from: required'],
    [{ from: 'a', to: 'b', protocol: 'sctp', df: true }, 'protocol: expected icmp, udp or tcp'],
    [{ from: 'a', to: 'b', protocol: 'icmp', size: 20, df: true }, 'size: expected an IP packet length in 28..1500'],
    [{ from: 'a', to: 'b', protocol: 'tcp', size: 100, df: true }, 'a TCP probe is its SYN'],
    [{ from: 'a', to: 'b', protocol: 'icmp' }, 'df: expected true or false'],
  ])('%j is refused: %s', (body, message) => {
    expect(() => checkTraceRequest(body)).toThrow(TraceError);
    expect(() => checkTraceRequest(body)).toThrow(message);
  });

  test('a good request is kept as given', () => {
    expect(checkTraceRequest({ from: 'a', to: '10.0.0.12', protocol: 'udp', size: 100, df: false })).toEqual({
      from: 'a',
      to: '10.0.0.12',
      protocol: 'udp',
      size: 100,
      df: false,
    });
  });
});

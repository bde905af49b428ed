/**
 * The control API without Docker: the seed's three nodes assembled in this process over an in-memory underlay, one
 * node's API served on a unix socket in a temporary directory, and the CLI's client talking to it. This is where
 * the API's refusals are checked (404, 405, 400, 413), which the container tests only touch in passing.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ClusterState, PodState } from '../../src/calico/index.js';
import { AgentClient, AgentError } from '../../src/cli/commands/agent-client.js';
import { renderStats } from '../../src/cli/commands/stats-view.js';
import {
  MAX_BODY_BYTES,
  type ApiHandler,
  type DataplaneView,
  type NodeInfo,
  type NodeStatsResponse,
  CAPTURE_HEADER,
  type CaptureInfo,
} from '../../src/node/api.js';
import type { CaptureStats } from '../../src/node/capture/index.js';
import type { PingReport } from '../../src/node/userspace/pod/index.js';
import { pcapng } from '../../src/wire/index.js';
import { SEED_CNI_OVERVIEW } from '../support/cli.js';
import { startInProcessAgent, type InProcessAgent } from '../support/in-process-agent.js';

let agent: InProcessAgent;
let cluster: ClusterState;
let handler: ApiHandler;
let socketPath: string;
let client: AgentClient;
let podA: PodState;
let podB: PodState;

beforeAll(async () => {
  agent = await startInProcessAgent(SEED_CNI_OVERVIEW, 'worker-node01');
  ({ cluster, handler, socketPath } = agent);
  [podA] = agent.node.localPods;
  podB = cluster.pods.find((pod) => pod.node === 'worker-node02')!;
  client = new AgentClient({ socketPath }, agent.node.node.name);
});

afterAll(async () => {
  await agent?.close();
});

/** A raw request, for what the CLI's client never sends (wrong JSON, huge bodies). */
function raw(
  method: string,
  urlPath: string,
  body: string | Buffer,
): Promise<{ status: number; json: { error?: string } }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath, method, path: urlPath, headers: { 'content-type': 'application/json' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString()) }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function refusal(promise: Promise<unknown>): Promise<AgentError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AgentError);
  return error as AgentError;
}

describe('reads', () => {
  test('GET /v1/node names the node and its pods', async () => {
    const info = (await client.raw('GET', '/v1/node')) as NodeInfo;
    expect(info).toMatchObject({
      name: 'worker-node01',
      ip: '10.0.0.11',
      tunnelAddress: '192.168.87.192',
      startedAt: '1970-01-01T00:00:00.000Z',
    });
    expect(info.pods).toEqual(
      cluster.pods
        .filter((pod) => pod.node === 'worker-node01')
        .map((pod) => ({ name: pod.name, ip: pod.ip.toString(), hostInterface: pod.hostInterface })),
    );
  });

  test('GET /v1/dataplane has every link with its counters, and felix routes', async () => {
    const dataplane = (await client.raw('GET', '/v1/dataplane')) as {
      links: { name: string; stats: unknown }[];
      routes: unknown[];
    };
    expect(dataplane.links.map((link) => link.name)).toEqual([
      'lo',
      'tunl0',
      'eth0',
      ...cluster.pods.filter((p) => p.node === 'worker-node01').map((p) => p.hostInterface),
    ]);
    expect(dataplane.links.find((link) => link.name === 'lo')?.stats).toBeNull();
    expect(dataplane.routes.length).toBeGreaterThan(3);
  });

  test('stats render as ip -s link blocks, then the drops by reason', async () => {
    await client.raw('POST', '/v1/ping', { from: podA.name, to: '192.168.87.250', count: 1, timeoutMs: 1 });
    const text = renderStats(
      (await client.raw('GET', '/v1/stats')) as NodeStatsResponse,
      ((await client.raw('GET', '/v1/dataplane')) as DataplaneView).links,
    );
    expect(text).toContain(
      '2: tunl0@NONE: <NOARP,UP,LOWER_UP> mtu 1480 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\n    link/ipip 0.0.0.0 brd 0.0.0.0\n    RX:  bytes packets dropped\n',
    );
    expect(text).toMatch(/\nDrops on worker-node01: [1-9]\d*\n(.*\n)* {4}blackhole +1\n/);
    expect(text).not.toContain('1: lo');
  });

  test('GET /v1/cluster is the cluster state as JSON', async () => {
    const state = (await client.raw('GET', '/v1/cluster')) as { nodes: { name: string; ip: string }[] };
    expect(state.nodes.map((node) => `${node.name} ${node.ip}`)).toEqual([
      'master-node 10.0.0.10',
      'worker-node01 10.0.0.11',
      'worker-node02 10.0.0.12',
    ]);
  });
});

describe('actions', () => {
  test("POST /v1/ping answers with the report and ping's text", async () => {
    const response = (await client.raw('POST', '/v1/ping', {
      from: podA.name,
      to: podB.name,
      count: 2,
      intervalMs: 10,
    })) as { text: string; report: PingReport };
    expect(response.report.received).toBe(2);
    expect(response.text).toContain(`64 bytes from ${podB.ip}: icmp_seq=1 ttl=62`);
  });
});

describe('captures', () => {
  /** Reads a capture stream to its end: the file, and the stats trailer. */
  function readStream(response: IncomingMessage): Promise<{ file: Buffer; stats: CaptureStats }> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () =>
        resolve({ file: Buffer.concat(chunks), stats: JSON.parse(response.trailers[CAPTURE_HEADER.stats]!) }),
      );
    });
  }

  const decode = (file: Buffer) => {
    const decoded = pcapng.decode(file);
    if (!decoded.ok) throw new Error(decoded.reason);
    return decoded.value;
  };

  test('POST /v1/captures streams pcapng naming the node and the pod, and ends with its stats in a trailer', async () => {
    const response = await client.capture({ interfaces: [podA.name], count: 3 });
    expect(response.headers['content-type']).toBe('application/x-pcapng');
    expect(response.headers[CAPTURE_HEADER.interfaces]).toBe(podA.hostInterface);
    const id = String(response.headers[CAPTURE_HEADER.id]);
    await client.raw('POST', '/v1/ping', { from: podA.name, to: podB.name, count: 2, intervalMs: 10 });
    const { file, stats } = await readStream(response);

    const capture = decode(file);
    expect(capture.interfaces).toEqual([
      {
        linkType: 101,
        name: podA.hostInterface,
        description: `worker-node01 ${podA.hostInterface} ↔ pod default/${podA.name} (${podA.ip})`,
      },
    ]);
    expect(capture.packets.map((packet) => packet.direction)).toEqual(['inbound', 'outbound', 'inbound']);
    expect(stats).toEqual({ captured: 3, written: 3, droppedRecords: 0, bytesWritten: file.length });
    expect((await refusal(client.raw('GET', `/v1/captures/${id}`))).status).toBe(404);
  });

  test('packets arrive while the capture runs; DELETE ends it with the same stats as the trailer', async () => {
    const response = await client.capture({ interfaces: ['eth0', 'tunl0'], filter: 'inner icmp or icmp' });
    const id = String(response.headers[CAPTURE_HEADER.id]);
    const received: Buffer[] = [];
    const firstPacket = new Promise<void>((resolve) =>
      response.on('data', (chunk: Buffer) => {
        received.push(chunk);
        // The section header comes first on its own; an EPB (type 6) means a packet was streamed.
        if (decode(Buffer.concat(received)).packets.length > 0) resolve();
      }),
    );
    const ended = new Promise<CaptureStats>((resolve) =>
      response.on('end', () => resolve(JSON.parse(response.trailers[CAPTURE_HEADER.stats]!))),
    );
    await client.raw('POST', '/v1/ping', { from: podA.name, to: podB.name, count: 1 });
    await firstPacket;
    const listed = (await client.raw('GET', '/v1/captures')) as CaptureInfo[];
    expect(listed.map((capture) => [capture.id, capture.interfaces, capture.filter])).toEqual([
      [id, ['eth0', 'tunl0'], 'inner icmp or icmp'],
    ]);

    const stopped = (await client.raw('DELETE', `/v1/captures/${id}`)) as CaptureInfo;
    const trailer = await ended;
    expect(stopped.stats).toEqual(trailer);
    // Request and reply, each on tunl0 and eth0.
    expect(trailer).toMatchObject({ captured: 4, written: 4, droppedRecords: 0 });
    const capture = decode(Buffer.concat(received));
    expect(capture.packets.map((packet) => capture.interfaces[packet.interfaceId].name)).toEqual([
      'tunl0',
      'eth0',
      'eth0',
      'tunl0',
    ]);
  });

  test('a client that hangs up stops its capture, and closing the API ends the others with their trailer', async () => {
    const gone = await client.capture({});
    gone.destroy();
    const kept = await client.capture({ format: 'pcap' });
    expect(kept.headers['content-type']).toBe('application/vnd.tcpdump.pcap');
    await expect
      .poll(async () => ((await client.raw('GET', '/v1/captures')) as CaptureInfo[]).map((capture) => capture.id))
      .toEqual([kept.headers[CAPTURE_HEADER.id]]);
    handler.close();
    const { file, stats } = await readStream(kept);
    expect(file.readUInt32LE(0)).toBe(0xa1b23c4d);
    expect(stats.bytesWritten).toBe(file.length);
    expect(await client.raw('GET', '/v1/captures')).toEqual([]);
  });

  test('asked over the unix socket, the agent writes the file itself and closes it before the trailer', async () => {
    const directory = mkdtempSync(path.join(tmpdir(), 'ipip-lab-capture-'));
    try {
      const file = path.join(directory, 'ping.pcapng');
      const response = await client.capture({ interfaces: [podA.name], count: 3, file });
      await client.raw('POST', '/v1/ping', { from: podA.name, to: podB.name, count: 2, intervalMs: 10 });
      const { file: streamed, stats } = await readStream(response);
      expect(streamed.length).toBe(0);
      const written = readFileSync(file);
      expect(stats).toEqual({ captured: 3, written: 3, droppedRecords: 0, bytesWritten: written.length });
      expect(decode(written).packets.map((packet) => packet.direction)).toEqual(['inbound', 'outbound', 'inbound']);

      const relative = await refusal(client.capture({ file: 'ping.pcapng' }));
      expect([relative.status, relative.message]).toEqual([
        400,
        'worker-node01: file: expected an absolute path, got "ping.pcapng"',
      ]);
      const unwritable = await refusal(client.capture({ file: path.join(directory, 'no', 'such.pcapng') }));
      expect(unwritable.status).toBe(400);
      expect(unwritable.message).toContain(`cannot write ${path.join(directory, 'no', 'such.pcapng')}: ENOENT`);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  test('over the lab address, a file is refused: only a process on the node may have the agent write one', async () => {
    const server = createServer(handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const remote = new AgentClient({ host: '127.0.0.1', port }, 'worker-node01');
      const refused = await refusal(remote.capture({ file: path.join(tmpdir(), 'never.pcapng') }));
      expect(refused.status).toBe(403);
      expect(refused.message).toContain('the agent writes files only for a client on its unix socket');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('a bad filter, an unknown interface, a pod of another node and too many captures are refused', async () => {
    const filter = await refusal(client.capture({ filter: 'host' }));
    expect([filter.status, filter.message]).toEqual([
      400,
      'worker-node01: filter: expected an address after "host" at column 5',
    ]);
    const unknown = await refusal(client.capture({ interfaces: ['eth1'] }));
    expect(unknown.status).toBe(404);
    expect(unknown.message).toContain('no interface or pod "eth1" on worker-node01 (interfaces: tunl0, eth0, cali');
    const elsewhere = await refusal(client.capture({ interfaces: [podB.name] }));
    expect(elsewhere.message).toContain(
      `pod ${podB.name} runs on worker-node02, not worker-node01: capture on worker-node02`,
    );
    const tooLong = await refusal(client.capture({ durationMs: 3_600_001 }));
    expect(tooLong.message).toContain('durationMs: expected an integer in 1..3600000');

    const running = await Promise.all(Array.from({ length: 8 }, () => client.capture({ interfaces: ['tunl0'] })));
    const ninth = await refusal(client.capture({}));
    expect(ninth.status).toBe(503);
    for (const response of running) response.destroy();
    await expect.poll(async () => client.raw('GET', '/v1/captures')).toEqual([]);
  });
});

describe('refusals', () => {
  test('an unknown endpoint is 404 and a wrong method 405, both as JSON errors', async () => {
    expect(await raw('GET', '/v1/nothing', '')).toEqual({
      status: 404,
      json: { error: 'no such endpoint: GET /v1/nothing' },
    });
    const wrongMethod = await raw('PUT', '/v1/node', '');
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.json.error).toContain('allowed: GET /v1/node');
  });

  test('a body that is not JSON, or not an object, is 400', async () => {
    expect((await raw('POST', '/v1/ping', '{"from":')).status).toBe(400);
    expect(await raw('POST', '/v1/ping', '[1]')).toEqual({
      status: 400,
      json: { error: 'request body must be a JSON object' },
    });
  });

  test('wrong types and out-of-range values are 400 with the field named', async () => {
    const count = await refusal(client.raw('POST', '/v1/ping', { from: podA.name, to: podB.name, count: 'four' }));
    expect(count.status).toBe(400);
    expect(count.message).toContain('count: expected an integer in 1..100, got "four"');
    const to = await refusal(client.raw('POST', '/v1/ping', { from: podA.name, to: 'nowhere' }));
    expect(to.message).toContain('to: "nowhere" is neither an IPv4 address nor a pod of the cluster');
    const packet = await refusal(client.raw('POST', '/v1/inject', { interface: 'eth0', packet: 'not base64!' }));
    expect(packet.status).toBe(400);
  });

  test('a body over 64 KiB is 413', async () => {
    const big = await raw('POST', '/v1/inject', Buffer.alloc(MAX_BODY_BYTES + 1, 0x20));
    expect(big.status).toBe(413);
  });

  test('a pod of another node, or an interface the node lacks, is 404 with where to look', async () => {
    const elsewhere = await refusal(client.raw('POST', '/v1/ping', { from: podB.name, to: podA.name }));
    expect(elsewhere.status).toBe(404);
    expect(elsewhere.message).toContain(`pod ${podB.name} runs on worker-node02, not worker-node01`);
    const missing = await refusal(client.raw('POST', '/v1/inject', { interface: 'eth1', packet: 'RQ==' }));
    expect(missing.message).toContain('no interface "eth1" on worker-node01 (interfaces: tunl0, eth0, cali');
  });

  test('after all that the node still forwards', async () => {
    const response = (await client.raw('POST', '/v1/ping', { from: podA.name, to: podB.name, count: 1 })) as {
      report: PingReport;
    };
    expect(response.report.received).toBe(1);
  });
});

/**
 * The control API without Docker: the seed's three nodes assembled in this process over an in-memory underlay, one
 * node's API served on a unix socket in a temporary directory, and the CLI's client talking to it. This is where
 * the API's refusals are checked (404, 405, 400, 413), which the container tests only touch in passing.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ClusterState, PodState, SpecDocument } from '../../src/calico/index.js';
import { clusterOf, readSpecFile } from '../../src/cli/cluster-source.js';
import { AgentClient, AgentError } from '../../src/cli/commands/agent-client.js';
import { renderStats } from '../../src/cli/commands/stats-view.js';
import {
  createApiHandler,
  MAX_BODY_BYTES,
  type ApiHandler,
  type DataplaneView,
  type NodeInfo,
  type NodeStatsResponse,
  type TapResult,
} from '../../src/node/api.js';
import { LabNode } from '../../src/node/lab-node.js';
import type { PingReport } from '../../src/node/pod/index.js';
import { SEED_CNI_OVERVIEW } from '../support/cli.js';

let spec: SpecDocument;
let cluster: ClusterState;
let nodes: LabNode[];
let handler: ApiHandler;
let server: Server;
let directory: string;
let socketPath: string;
let client: AgentClient;
let podA: PodState;
let podB: PodState;

beforeAll(async () => {
  spec = readSpecFile(SEED_CNI_OVERVIEW);
  cluster = clusterOf(spec);
  // The wire between nodes: what one node sends to an address arrives, a turn of the event loop later, at that node.
  const wire = {
    send(packet: Buffer, destination: number) {
      const copy = Buffer.from(packet);
      setImmediate(() => nodes.find((node) => node.node.ip.value === destination)?.dataplane.fromUnderlay(copy));
    },
  };
  nodes = cluster.nodes.map((node) => new LabNode(cluster, node.name, wire));
  const node01 = nodes.find((node) => node.node.name === 'worker-node01')!;
  [podA] = node01.localPods;
  podB = cluster.pods.find((pod) => pod.node === 'worker-node02')!;

  handler = createApiHandler({
    labNode: node01,
    spec,
    apiPort: 9440,
    startedAt: new Date(0),
    system: { osImage: 'Test OS', kernelVersion: '6.1.0', containerRuntime: 'ipip-lab://0.1.0', architecture: 'amd64' },
    underlaySendErrors: () => 0,
  });
  directory = mkdtempSync(path.join(tmpdir(), 'ipip-lab-api-'));
  socketPath = path.join(directory, 'agent.sock');
  server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  client = new AgentClient({ socketPath }, node01.node.name);
});

afterAll(async () => {
  handler?.close();
  for (const node of nodes ?? []) node.close();
  await new Promise((resolve) => server?.close(resolve));
  rmSync(directory, { recursive: true, force: true });
});

/** A raw request, for what the CLI's client never sends (wrong JSON, huge bodies). */
function raw(method: string, urlPath: string, body: string | Buffer): Promise<{ status: number; json: { error?: string } }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path: urlPath, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString()) }));
    });
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
    const info = (await client.get('/v1/node')) as NodeInfo;
    expect(info).toMatchObject({ name: 'worker-node01', ip: '10.0.0.11', tunnelAddress: '192.168.87.192', startedAt: '1970-01-01T00:00:00.000Z' });
    expect(info.pods).toEqual(
      cluster.pods.filter((pod) => pod.node === 'worker-node01').map((pod) => ({ name: pod.name, ip: pod.ip.toString(), hostInterface: pod.hostInterface })),
    );
  });

  test('GET /v1/dataplane has every link with its counters, and felix routes', async () => {
    const dataplane = (await client.get('/v1/dataplane')) as { links: { name: string; stats: unknown }[]; routes: unknown[] };
    expect(dataplane.links.map((link) => link.name)).toEqual(['lo', 'tunl0', 'eth0', ...cluster.pods.filter((p) => p.node === 'worker-node01').map((p) => p.hostInterface)]);
    expect(dataplane.links.find((link) => link.name === 'lo')?.stats).toBeNull();
    expect(dataplane.routes.length).toBeGreaterThan(3);
  });

  test('stats render as ip -s link blocks, then the drops by reason', async () => {
    await client.post('/v1/ping', { from: podA.name, to: '192.168.87.250', count: 1, timeoutMs: 1 });
    const text = renderStats((await client.get('/v1/stats')) as NodeStatsResponse, ((await client.get('/v1/dataplane')) as DataplaneView).links);
    expect(text).toContain('2: tunl0@NONE: <NOARP,UP,LOWER_UP> mtu 1480 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\n    link/ipip 0.0.0.0 brd 0.0.0.0\n    RX:  bytes packets dropped\n');
    expect(text).toMatch(/\nDrops on worker-node01: [1-9]\d*\n(.*\n)*    blackhole +1\n/);
    expect(text).not.toContain('1: lo');
  });

  test('GET /v1/cluster is the cluster state as JSON', async () => {
    const state = (await client.get('/v1/cluster')) as { nodes: { name: string; ip: string }[] };
    expect(state.nodes.map((node) => `${node.name} ${node.ip}`)).toEqual(['master-node 10.0.0.10', 'worker-node01 10.0.0.11', 'worker-node02 10.0.0.12']);
  });
});

describe('actions', () => {
  test('POST /v1/ping answers with the report and ping\'s text', async () => {
    const response = (await client.post('/v1/ping', { from: podA.name, to: podB.name, count: 2, intervalMs: 10 })) as { text: string; report: PingReport };
    expect(response.report.received).toBe(2);
    expect(response.text).toContain(`64 bytes from ${podB.ip}: icmp_seq=1 ttl=62`);
  });

  test('a tap sees the pod side of a ping', async () => {
    const { id } = (await client.post('/v1/taps', { interfaces: [podA.hostInterface], maxPackets: 3 })) as { id: string };
    await client.post('/v1/ping', { from: podA.name, to: podB.name, count: 2, intervalMs: 10 });
    const tapped = (await client.request('DELETE', `/v1/taps/${id}`)) as TapResult;
    expect(tapped.packets.map((p) => `${p.interface} ${p.direction}`)).toEqual([
      `${podA.hostInterface} rx`,
      `${podA.hostInterface} tx`,
      `${podA.hostInterface} rx`,
    ]);
    expect(tapped.truncated).toBe(true);
    expect((await refusal(client.request('DELETE', `/v1/taps/${id}`))).status).toBe(404);
  });
});

describe('refusals', () => {
  test('an unknown endpoint is 404 and a wrong method 405, both as JSON errors', async () => {
    expect(await raw('GET', '/v1/nothing', '')).toEqual({ status: 404, json: { error: 'no such endpoint: GET /v1/nothing' } });
    const wrongMethod = await raw('PUT', '/v1/node', '');
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.json.error).toContain('allowed: GET /v1/node');
  });

  test('a body that is not JSON, or not an object, is 400', async () => {
    expect((await raw('POST', '/v1/ping', '{"from":')).status).toBe(400);
    expect(await raw('POST', '/v1/ping', '[1]')).toEqual({ status: 400, json: { error: 'request body must be a JSON object' } });
  });

  test('wrong types and out-of-range values are 400 with the field named', async () => {
    const count = await refusal(client.post('/v1/ping', { from: podA.name, to: podB.name, count: 'four' }));
    expect(count.status).toBe(400);
    expect(count.message).toContain('count: expected an integer in 1..100, got "four"');
    const to = await refusal(client.post('/v1/ping', { from: podA.name, to: 'nowhere' }));
    expect(to.message).toContain('to: "nowhere" is neither an IPv4 address nor a pod of the cluster');
    const packet = await refusal(client.post('/v1/inject', { interface: 'eth0', packet: 'not base64!' }));
    expect(packet.status).toBe(400);
  });

  test('a body over 64 KiB is 413', async () => {
    const big = await raw('POST', '/v1/inject', Buffer.alloc(MAX_BODY_BYTES + 1, 0x20));
    expect(big.status).toBe(413);
  });

  test('a pod of another node, or an interface the node lacks, is 404 with where to look', async () => {
    const elsewhere = await refusal(client.post('/v1/ping', { from: podB.name, to: podA.name }));
    expect(elsewhere.status).toBe(404);
    expect(elsewhere.message).toContain(`pod ${podB.name} runs on worker-node02, not worker-node01`);
    const missing = await refusal(client.post('/v1/inject', { interface: 'eth1', packet: 'RQ==' }));
    expect(missing.message).toContain('no interface "eth1" on worker-node01 (interfaces: tunl0, eth0, cali');
  });

  test('after all that the node still forwards', async () => {
    const response = (await client.post('/v1/ping', { from: podA.name, to: podB.name, count: 1 })) as { report: PingReport };
    expect(response.report.received).toBe(1);
  });
});

/**
 * Issue 7, point 3, without Docker: the control API can change nothing but what the CLI needs, and a storm of bad
 * requests (the same lab-tool `abuse` run that lab.test.ts aims at a real agent) gets a 4xx with a message for each,
 * never a 5xx, a crash or a hang. The handler is served on a unix socket in a temporary directory, as the agent
 * serves it, over the robustness lab's cluster with an in-memory wire between its three nodes.
 */
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { unaccounted } from '../../src/node/userspace/dataplane.js';
import type { LabNode } from '../../src/node/userspace/lab-node.js';
import { startInProcessAgent, type InProcessAgent } from '../support/in-process-agent.js';
import { apiRoutes, callersOf, readOnlyPaths } from './support/routes.js';
import { ROBUSTNESS_SPEC } from './support/specs.js';

const TOOL = fileURLToPath(new URL('./support/lab-tool.mjs', import.meta.url));

let agent: InProcessAgent;
let nodes: readonly LabNode[];
let socketPath: string;
let target: LabNode;

beforeAll(async () => {
  agent = await startInProcessAgent(ROBUSTNESS_SPEC, 'worker-node01');
  ({ nodes, socketPath, node: target } = agent);
});

afterAll(async () => {
  await agent?.close();
});

function status(method: string, urlPath: string, body = ''): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath, method, path: urlPath, agent: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', (error) => reject(new Error(`${method} ${urlPath}: ${error.message}`)));
    req.end(body);
  });
}

describe('it can change nothing but what the CLI needs', () => {
  const routes = apiRoutes();

  test('the route table is where the source says', () => {
    expect(routes.map((route) => `${route.method} ${route.path}`)).toEqual(
      expect.arrayContaining(['GET /v1/node', 'GET /v1/stats', 'POST /v1/ping', 'POST /v1/inject']),
    );
  });

  test('every route that is not a GET is one the CLI (or the test harness) calls', () => {
    const writes = routes.filter((route) => route.method !== 'GET');
    const unused = writes
      .filter((route) => callersOf(route.path).length === 0)
      .map((route) => `${route.method} ${route.path} (${route.file})`);
    expect(unused, 'write endpoints nothing in src/cli or src/testing uses').toEqual([]);
    console.info(
      `write endpoints: ${writes.map((route) => `${route.method} ${route.path} ← ${callersOf(route.path).join(', ')}`).join('; ')}`,
    );
  });

  test('the read-only paths refuse every other method with 405, and unknown paths are 404', async () => {
    for (const readOnly of readOnlyPaths(routes)) {
      for (const method of ['POST', 'PUT', 'PATCH', 'DELETE'])
        expect(await status(method, readOnly, '{}'), `${method} ${readOnly}`).toBe(405);
    }
    for (const made_up of [
      '/v1/routes',
      '/v1/pods',
      '/v1/config',
      '/v1/shutdown',
      '/v1/exec',
      '/v1/spec/nodes',
      '/admin',
      '/',
    ]) {
      for (const method of ['GET', 'POST', 'PUT', 'DELETE'])
        expect(await status(method, made_up, '{}'), `${method} ${made_up}`).toBe(404);
    }
  });
});

describe('a storm of bad requests', () => {
  test('every one answered with a 4xx and a message; the node still forwards and balances', async () => {
    const routes = apiRoutes();
    const pod = target.localPods[0];
    const config = {
      mode: 'abuse',
      socketPath,
      rounds: 20,
      concurrency: 100,
      pod: pod.name,
      podIp: String(nodes.find((node) => node.node.name === 'worker-node02')!.localPods[0].ip),
      readOnlyPaths: readOnlyPaths(routes),
      writeRoutes: routes.filter((route) => route.method !== 'GET'),
    };
    const { stdout } = await promisify(execFile)(process.execPath, [TOOL, JSON.stringify(config)], {
      maxBuffer: 16 * 1024 * 1024,
    });
    const result = JSON.parse(stdout) as {
      requests: number;
      unexpected: string[];
      histogram: Record<string, number>;
      messages: Record<string, string>;
    };
    expect(result.unexpected, JSON.stringify(result.histogram, null, 1)).toEqual([]);
    expect(result.requests).toBeGreaterThan(400);
    expect(result.messages['wrong types: inject']).toMatch(/^(interface|packet): |^no interface /);
    expect(result.messages['bad base64']).toBe('packet: expected the bytes in base64');
    expect(result.messages['oversized body']).toBe('request body over 65536 bytes');

    // The handler still serves, and the node still forwards.
    expect(await status('GET', '/v1/stats')).toBe(200);
    const report = await target
      .pod(pod.name)!
      .ping(nodes.find((node) => node.node.name === 'worker-node02')!.localPods[0].ip.value, {
        count: 1,
        intervalMs: 10,
      });
    expect(report.received).toBe(1);
    expect(unaccounted(target.dataplane.stats())).toBe(0);
  });
});

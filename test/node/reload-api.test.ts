/**
 * POST /v1/reload as the API serves it: the handler reads the agent's current node on every request, and a reload
 * the spec cannot support is refused with a status that says why, the running node kept.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { SpecError } from '../../src/calico/index.js';
import { clusterOf, readSpecFile } from '../../src/cli/cluster-source.js';
import { AgentClient, AgentError } from '../../src/cli/commands/agent-client.js';
import { specDigest } from '../../src/node/api-protocol.js';
import { createApiHandler, ReloadRefused, type ApiContext } from '../../src/node/api.js';
import { LabNode } from '../../src/node/userspace/lab-node.js';
import { REPO_ROOT, SEED_CNI_OVERVIEW } from '../support/cli.js';

const SYSTEM = {
  osImage: 'Test OS',
  kernelVersion: '6.1.0',
  containerRuntime: 'ipip-lab://0.1.0',
  architecture: 'amd64',
};
const noWire = { send: () => {} };
let cleanup: (() => Promise<void>) | undefined;

afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

async function serve(reload: ApiContext['reload'], current: () => LabNode): Promise<AgentClient> {
  const spec = readSpecFile(SEED_CNI_OVERVIEW);
  const handler = createApiHandler({
    get labNode() {
      return current();
    },
    spec,
    apiPort: 9440,
    startedAt: new Date(0),
    system: SYSTEM,
    underlaySendErrors: () => 0,
    ...(reload && { reload }),
  });
  const directory = mkdtempSync(path.join(tmpdir(), 'ipip-lab-reload-'));
  const socketPath = path.join(directory, 'agent.sock');
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  cleanup = async () => {
    handler.close();
    await new Promise((resolve) => server.close(resolve));
    rmSync(directory, { recursive: true, force: true });
  };
  return new AgentClient({ socketPath }, 'worker-node01');
}

async function refusal(promise: Promise<unknown>): Promise<AgentError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AgentError);
  return error as AgentError;
}

test('a reload swaps the node the API serves', async () => {
  const empty = clusterOf(readSpecFile(`${REPO_ROOT}containers/cni-overview/lab.yaml`));
  const seeded = clusterOf(readSpecFile(SEED_CNI_OVERVIEW));
  let node = new LabNode(empty, 'worker-node01', noWire);
  const client = await serve(
    () => {
      node.close();
      node = new LabNode(seeded, 'worker-node01', noWire);
      return { node: 'worker-node01', specDigest: 'd', pods: node.localPods.map((pod) => pod.name) };
    },
    () => node,
  );
  expect((await client.request('GET /v1/node')).pods).toEqual([]);
  const result = await client.request('POST /v1/reload');
  expect(result.pods).toHaveLength(2);
  expect((await client.request('GET /v1/node')).pods.map((pod) => pod.name)).toEqual(result.pods);
  node.close();
});

test.each([
  [
    () => {
      throw new ReloadRefused('the spec no longer has worker-node01');
    },
    409,
  ],
  [
    () => {
      throw new SpecError('cluster.yaml', 'pool.cidr', 'is required');
    },
    400,
  ],
  [undefined, 501],
])('a reload that cannot happen is refused (%#), the node kept', async (reload, status) => {
  const node = new LabNode(clusterOf(readSpecFile(SEED_CNI_OVERVIEW)), 'worker-node01', noWire);
  const client = await serve(reload, () => node);
  const error = await refusal(client.request('POST /v1/reload'));
  expect(error.status).toBe(status);
  if (reload) expect(error.message).toContain('reload refused, still running the previous spec');
  expect((await client.request('GET /v1/node')).pods).toHaveLength(2);
  node.close();
});

test('specDigest follows content, not the path it was read from', () => {
  const document = readSpecFile(SEED_CNI_OVERVIEW);
  expect(specDigest({ ...document, source: '/elsewhere.yaml' })).toBe(specDigest(document));
  expect(specDigest({ ...document, text: `${document.text}\n# edited` })).not.toBe(specDigest(document));
});

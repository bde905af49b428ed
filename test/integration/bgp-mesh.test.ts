/**
 * The BGP mesh on real containers: three agents learn each other's blocks over TCP 179, their tables come out as the
 * spec computes them, a clean stop withdraws at once, a crash waits for the hold timer (or the kernel's FIN), and a
 * restarted node gets its routes back.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { nodeDataplane } from '../../src/calico/index.js';
import type { DataplaneView } from '../../src/node/api-protocol.js';
import { startLab, type Lab, type LabNodeHandle } from '../../src/testing/index.js';
import { REPO_ROOT } from '../support/cli.js';

const run = promisify(execFile);
/** Short, so that the crash test waits seconds, not BIRD's four minutes. */
const HOLD_TIME_S = 6;

let lab: Lab;
let master: LabNodeHandle;
let worker01: LabNodeHandle;
let worker02: LabNodeHandle;

const routeKey = (route: DataplaneView['routes'][number]): string => JSON.stringify(route);

/** worker-node02's block as its peers hold it: `via 10.34.0.12 dev tunl0 proto bird onlink`. */
function worker02Block(): string {
  return lab.cluster.nodes.find((node) => node.name === 'worker-node02')!.blocks[0].toString();
}

async function hasRouteTo(node: LabNodeHandle, destination: string): Promise<boolean> {
  return (await node.routes()).some(
    (route) => String(route.destination) === destination && route.kind === 'unicast' && route.dev === 'tunl0',
  );
}

/** Milliseconds until `check` holds, polled as fast as the node's API answers. */
async function msUntil(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
  }
  return Date.now() - started;
}

beforeAll(async () => {
  lab = await startLab({
    spec: `${REPO_ROOT}test/fixtures/bgp-mesh.yaml`,
    agentArgs: ['--bgp-hold-time', String(HOLD_TIME_S)],
  });
  master = lab.node('master-node');
  worker01 = lab.node('worker-node01');
  worker02 = lab.node('worker-node02');
});

afterAll(async () => {
  await lab?.stop();
});

describe('the node-to-node mesh', () => {
  test('every node has both peers Established, master-node passive towards both (the lower address)', async () => {
    for (const node of lab.nodes()) {
      const status = await node.bgp();
      expect(status?.as).toBe(64512);
      expect(status?.routerId).toBe(node.ip);
      expect(status?.neighbours.map((neighbour) => [neighbour.name, neighbour.state])).toEqual(
        lab
          .nodes()
          .filter((peer) => peer !== node)
          .map((peer) => [`Mesh_${peer.ip.replace(/\./g, '_')}`, 'Established']),
      );
    }
    // 10.34.0.10 is the smallest address string: it never opens, so both its sessions came in on port 179.
    // /proc/net/tcp prints the address's bytes reversed: 10.34.0.10:179 is 0A00220A:00B3; state 01 is ESTABLISHED.
    const { stdout } = await master.exec(['cat', '/proc/net/tcp']);
    const accepted = stdout.split('\n').filter((line) => / 0A00220A:00B3 [0-9A-F]{8}:[0-9A-F]{4} 01 /.test(line));
    expect(accepted).toHaveLength(2);
  });

  test("each node's table is the spec's own computation, now learned over BGP", async () => {
    for (const node of lab.nodes()) {
      const expected = [...nodeDataplane(lab.cluster, node.name).routes].map((route) =>
        routeKey(JSON.parse(JSON.stringify(route)) as DataplaneView['routes'][number]),
      );
      expect((await node.routes()).map(routeKey).sort()).toEqual(expected.sort());
      const ipRoute = (await node.exec(['ip', 'route'])).stdout;
      for (const peer of lab.nodes().filter((other) => other !== node)) {
        for (const block of peer.state.blocks) {
          expect(ipRoute).toContain(`${block} via ${peer.ip} dev tunl0 proto bird onlink`);
        }
      }
    }
  });

  test('pods on different nodes ping each other over the learned routes', async () => {
    const [from] = lab.podsOn('worker-node01');
    const [to] = lab.podsOn('worker-node02');
    const report = await worker01.ping({ from: from.name, to: to.name, count: 2, intervalMs: 200 });
    expect(report.received).toBe(2);
  });
});

/** Milliseconds until worker-node02's block leaves worker-node01, and what worker-node01 says ended the session. */
async function worker02Leaves(withinMs: number, what: string): Promise<{ gone: number; lastError?: string }> {
  const block = worker02Block();
  const gone = await msUntil(async () => !(await hasRouteTo(worker01, block)), withinMs, what);
  const status = await worker01.bgp();
  return { gone, lastError: status?.neighbours.find((neighbour) => neighbour.address === worker02.ip)?.lastError };
}

describe('a node that goes away', () => {
  test('a clean stop sends Cease: the block leaves the other nodes at once, and returns with the node', async () => {
    const block = worker02Block();
    const id = worker02.container.getId();
    await run('docker', ['kill', '--signal', 'TERM', id]);
    const { gone, lastError } = await worker02Leaves(5_000, 'the withdrawal');
    console.log(`clean stop: worker-node02's block left worker-node01 ${gone} ms after docker kill -s TERM returned`);
    expect(gone).toBeLessThan(1_000);
    expect(lastError).toBe('Received: Administrative shutdown');
    await run('docker', ['wait', id]);
    await run('docker', ['start', id]);
    const back = await msUntil(() => hasRouteTo(worker01, block), 30_000, 'the block to return');
    console.log(`restart: the block was back on worker-node01 ${back} ms after docker start returned`);
    await msUntil(
      async () => (await hasRouteTo(worker02, master.state.blocks[0].toString())) === true,
      30_000,
      'the restarted node to learn',
    );
  });

  test('a crash (SIGKILL, no Cease): the block leaves once the session fails, and returns with a restart', async () => {
    const block = worker02Block();
    const id = worker02.container.getId();
    await run('docker', ['kill', '--signal', 'KILL', id]);
    const { gone, lastError } = await worker02Leaves((HOLD_TIME_S + 5) * 1000, 'the hold timer');
    console.log(`SIGKILL: worker-node02's block left worker-node01 after ${gone} ms (${lastError})`);
    // Either the hold timer (the container's network went before its sockets closed) or the FIN of the socket the
    // kernel closed: never a Cease, which only a live speaker sends.
    expect(lastError).toMatch(/^(BGP Error: Hold timer expired|Socket: .+)$/);
    if (lastError === 'BGP Error: Hold timer expired') expect(gone).toBeGreaterThan((HOLD_TIME_S - 2) * 1000);
    await run('docker', ['start', id]);
    await msUntil(() => hasRouteTo(worker01, block), 30_000, 'the block to return');
  });

  test('a node that hangs (docker pause: no keepalives, its kernel still ACKs): its block leaves after the hold time', async () => {
    const block = worker02Block();
    const id = worker02.container.getId();
    await run('docker', ['pause', id]);
    try {
      const { gone, lastError } = await worker02Leaves((HOLD_TIME_S + 5) * 1000, 'the hold timer');
      console.log(`docker pause: worker-node02's block left worker-node01 after ${gone} ms (${lastError})`);
      expect(lastError).toBe('BGP Error: Hold timer expired');
      expect(gone).toBeGreaterThan((HOLD_TIME_S - 2) * 1000);
    } finally {
      await run('docker', ['unpause', id]);
    }
    await msUntil(() => hasRouteTo(worker01, block), 30_000, 'the block to return');
  });
});

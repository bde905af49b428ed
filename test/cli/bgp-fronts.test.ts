/**
 * The node containers' birdcl and calicoctl, run in-process against a node agent's control API served on a unix
 * socket (the first seed's worker-node01, its speaker's state given): what they ask, what they print, and how they
 * refuse.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, test } from 'vitest';
import { meshRoutes, nodeByName, type ClusterState } from '../../src/calico/index.js';
import { runBirdcl } from '../../src/cli/birdcl.js';
import { runCalicoctl } from '../../src/cli/calicoctl.js';
import { clusterOf, readSpecFile } from '../../src/cli/cluster-source.js';
import type { Io } from '../../src/cli/common.js';
import { createApiHandler, type ApiHandler } from '../../src/node/api.js';
import type { SpeakerStatus } from '../../src/node/bgp/index.js';
import { LabNode } from '../../src/node/userspace/lab-node.js';
import { SEED_CNI_OVERVIEW } from '../support/cli.js';

const STARTED = '2024-05-01T10:00:00.000Z';
const NOW = Date.parse('2024-05-01T10:30:00Z');

interface Served {
  socketPath: string;
  close(): Promise<void>;
}

/** worker-node01's API with the given speaker (undefined: an agent run with --routes spec). */
async function serve(cluster: ClusterState, status: SpeakerStatus | undefined, directory: string): Promise<Served> {
  const spec = readSpecFile(SEED_CNI_OVERVIEW);
  const node = new LabNode(cluster, 'worker-node01', { send() {} });
  const handler: ApiHandler = createApiHandler({
    labNode: node,
    spec,
    apiPort: 9440,
    startedAt: new Date(STARTED),
    system: { osImage: 'Test OS', kernelVersion: '6.1.0', containerRuntime: 'ipip-lab://0.1.0', architecture: 'amd64' },
    underlaySendErrors: () => 0,
    ...(status && { bgpStatus: () => status }),
  });
  const socketPath = path.join(directory, status ? 'bgp.sock' : 'spec.sock');
  const server: Server = createServer(handler.local);
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    socketPath,
    async close() {
      handler.close();
      node.close();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function capture(): { io: Io; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { io: { out: (s) => (out += s), err: (s) => (err += s) }, out: () => out, err: () => err };
}

let directory: string;
let cluster: ClusterState;
let withSpeaker: Served;
let withoutSpeaker: Served;

beforeAll(async () => {
  directory = mkdtempSync(path.join(tmpdir(), 'ipip-lab-bgp-fronts-'));
  cluster = clusterOf(readSpecFile(SEED_CNI_OVERVIEW));
  const self = nodeByName(cluster, 'worker-node01')!;
  const status: SpeakerStatus = {
    routerId: '10.0.0.11',
    as: 64512,
    startedAt: STARTED,
    neighbours: [
      {
        name: 'Mesh_10_0_0_10',
        address: '10.0.0.10',
        type: 'node-to-node mesh',
        state: 'Established',
        since: '2024-05-01T10:00:03.000Z',
        routesReceived: 1,
      },
      {
        name: 'Mesh_10_0_0_12',
        address: '10.0.0.12',
        type: 'node-to-node mesh',
        state: 'Active',
        since: '2024-05-01T10:29:55.000Z',
        lastError: 'Socket: Connection refused',
        routesReceived: 0,
      },
    ],
    exported: self.blocks.map(String),
    routes: [...meshRoutes(cluster, self)]
      .filter((route) => route.nextHop.toString() === '10.0.0.10')
      .map((route) => ({ ...route, from: 'Mesh_10_0_0_10', since: '2024-05-01T10:00:04.000Z' })),
  };
  withSpeaker = await serve(cluster, status, directory);
  withoutSpeaker = await serve(cluster, undefined, directory);
});

afterAll(async () => {
  await withSpeaker.close();
  await withoutSpeaker.close();
  rmSync(directory, { recursive: true, force: true });
});

async function birdcl(argv: string[], socketPath = withSpeaker.socketPath, input?: string) {
  const { io, out, err } = capture();
  const code = await runBirdcl(argv, io, {
    socketPath,
    now: () => NOW,
    ...(input !== undefined && { input: Readable.from([input]), interactive: false }),
  });
  return { code, stdout: out(), stderr: err() };
}

describe('birdcl', () => {
  it("show protocols: BIRD's greeting, then the table from the agent's speaker", async () => {
    const result = await birdcl(['show', 'protocols']);
    expect(result).toEqual({
      code: 0,
      stderr: '',
      stdout: [
        'BIRD v0.3.3+birdv1.6.8 ready.',
        'name     proto    table    state  since       info',
        'static1  Static   master   up     10:00:00    ',
        'kernel1  Kernel   master   up     10:00:00    ',
        'device1  Device   master   up     10:00:00    ',
        'direct1  Direct   master   up     10:00:00    ',
        'Mesh_10_0_0_10 BGP      master   up     10:00:03    Established   ',
        'Mesh_10_0_0_12 BGP      master   start  10:29:55    Active        Socket: Connection refused',
        '',
      ].join('\n'),
    });
    expect((await birdcl(['sh', 'pro', 'Mesh_10_0_0_10'])).stdout.split('\n')).toHaveLength(4);
    expect((await birdcl(['show protocols "Mesh*"'])).stdout.split('\n')).toHaveLength(5);
    expect(await birdcl(['show', 'protocols', 'nosuch'])).toMatchObject({
      code: 1,
      stdout: expect.stringContaining('nosuch is not a protocol\n'),
    });
  });

  it("show route: the node's blocks, tunl0 and eth0, its pods and what the mesh brought, in BIRD's words", async () => {
    const self = nodeByName(cluster, 'worker-node01')!;
    const master = nodeByName(cluster, 'master-node')!;
    const result = await birdcl(['show', 'route']);
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toBe('BIRD v0.3.3+birdv1.6.8 ready.');
    const block = self.blocks[0].toString();
    expect(lines).toContain(`${block.padEnd(18)} blackhole [static1 10:00:00] * (200)`);
    expect(lines).toContain(`${`${self.tunnelAddress}/32`.padEnd(18)} dev tunl0 [direct1 10:00:00] * (240)`);
    expect(lines).toContain('10.0.0.0/24        dev eth0 [direct1 10:00:00] * (240)');
    for (const pod of cluster.pods.filter((p) => p.node === 'worker-node01')) {
      expect(lines).toContain(`${`${pod.ip}/32`.padEnd(18)} dev ${pod.hostInterface} [kernel1 10:00:00] * (10)`);
    }
    expect(lines).toContain(
      `${master.blocks[0].toString().padEnd(18)} via 10.0.0.10 on eth0 [Mesh_10_0_0_10 10:00:04] * (100/0) [i]`,
    );
    const json = await birdcl(['-o', 'json', 'show', 'route', 'protocol', 'Mesh_10_0_0_10']);
    expect(JSON.parse(json.stdout)).toEqual({
      routes: [
        {
          network: master.blocks[0].toString(),
          protocol: 'Mesh_10_0_0_10',
          via: { kind: 'router', gateway: '10.0.0.10', interface: 'eth0' },
          since: '2024-05-01T10:00:04.000Z',
          preference: 100,
          primary: true,
          bgp: { igpMetric: 0, asPath: [], origin: 'i' },
        },
      ],
    });
    expect((await birdcl(['show', 'route', 'for', master.blocks[0].first().add(5).toString()])).stdout).toContain(
      'via 10.0.0.10 on eth0',
    );
    expect((await birdcl(['show', 'route', 'for', '172.16.0.1'])).stdout).toBe(
      'BIRD v0.3.3+birdv1.6.8 ready.\nNetwork not in table\n',
    );
  });

  it("refuses as birdcl does: unknown and ambiguous commands in its words, BIRD's errors, exit 1", async () => {
    expect(await birdcl(['show', 'foo'])).toEqual({
      code: 1,
      stderr: '',
      stdout: "BIRD v0.3.3+birdv1.6.8 ready.\nNo such command. Press `?' for help.\n",
    });
    expect((await birdcl(['show', 's'])).stdout).toContain('Ambiguous command, possible expansions are:\n');
    expect(await birdcl(['show', 'route', 'bogus'])).toMatchObject({
      code: 1,
      stdout: expect.stringContaining('syntax error\n'),
    });
    const unemulated = await birdcl(['show', 'protocols', 'all']);
    expect(unemulated.code).toBe(2);
    expect(unemulated.stderr).toContain('does not emulate');
  });

  it('says BIRD is not running where the agent runs no speaker, or no agent answers', async () => {
    for (const socketPath of [withoutSpeaker.socketPath, path.join(directory, 'absent.sock')]) {
      const result = await birdcl(['show', 'protocols'], socketPath);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr.split('\n')[0]).toBe(
        'Unable to connect to server control socket (/var/run/calico/bird.ctl): No such file or directory',
      );
    }
  });

  it("reads commands after birdcl's prompt, echoing them when input is not a terminal", async () => {
    const result = await birdcl([], withSpeaker.socketPath, 'show status\nquit\n');
    expect(result.stdout).toBe(
      [
        'BIRD v0.3.3+birdv1.6.8 ready.',
        'bird> show status',
        'BIRD v0.3.3+birdv1.6.8',
        'Router ID is 10.0.0.11',
        'Current server time is 2024-05-01 10:30:00',
        'Last reboot on 2024-05-01 10:00:00',
        'Last reconfiguration on 2024-05-01 10:00:00',
        'Daemon is up and running',
        'bird> quit',
        '',
      ].join('\n'),
    );
  });

  it('teaches with --help', async () => {
    const result = await birdcl(['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('birdcl show route');
  });
});

async function calicoctl(argv: string[], socketPath = withSpeaker.socketPath) {
  const { io, out, err } = capture();
  const code = await runCalicoctl(argv, io, { socketPath, spec: SEED_CNI_OVERVIEW, now: () => NOW });
  return { code, stdout: out(), stderr: err() };
}

describe('calicoctl', () => {
  it("node status: the speaker's peers in calicoctl's table", async () => {
    const result = await calicoctl(['node', 'status']);
    expect(result).toEqual({
      code: 0,
      stderr: '',
      stdout: [
        'Calico process is running.',
        '',
        'IPv4 BGP status',
        '+--------------+-------------------+-------+----------+--------------------------------+',
        '| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |              INFO              |',
        '+--------------+-------------------+-------+----------+--------------------------------+',
        '| 10.0.0.10    | node-to-node mesh | up    | 10:00:03 | Established                    |',
        '| 10.0.0.12    | node-to-node mesh | start | 10:29:55 | Active Socket: Connection      |',
        '|              |                   |       |          | refused                        |',
        '+--------------+-------------------+-------+----------+--------------------------------+',
        '',
        'IPv6 BGP status',
        'No IPv6 peers found.',
        '',
        '',
      ].join('\n'),
    });
    expect(JSON.parse((await calicoctl(['node', 'status', '-o', 'json'])).stdout)).toMatchObject({
      bgpBackend: 'BIRD',
      ipv4Peers: [
        { peerAddress: '10.0.0.10', state: 'up' },
        { peerAddress: '10.0.0.12', bgpState: 'Active' },
      ],
    });
  });

  it('node status without a speaker, and without an agent', async () => {
    expect(await calicoctl(['node', 'status'], withoutSpeaker.socketPath)).toEqual({
      code: 0,
      stderr: '',
      stdout: 'Calico process is running.\n\nThe BGP backend process (BIRD) is not running.\n\n',
    });
    const none = await calicoctl(['node', 'status'], path.join(directory, 'absent.sock'));
    expect(none.code).toBe(1);
    expect(none.stderr.split('\n')[0]).toBe('Calico process is not running.');
  });

  it('get ippool, get nodes and ipam show read the cluster', async () => {
    expect((await calicoctl(['get', 'ippool', '-o', 'wide'])).stdout).toContain(
      'default-ipv4-ippool   192.168.0.0/16   true   Always',
    );
    expect((await calicoctl(['get', 'nodes', '-o', 'wide'])).stdout.split('\n')[1]).toBe(
      'master-node     (64512)   10.0.0.10/24          ',
    );
    expect(JSON.parse((await calicoctl(['get', 'node', 'worker-node01', '-o', 'json'])).stdout)).toMatchObject({
      kind: 'Node',
      metadata: { name: 'worker-node01' },
      spec: { bgp: { ipv4Address: '10.0.0.11/24' } },
    });
    expect((await calicoctl(['ipam', 'show', '--show-blocks'])).stdout).toContain('| IP Pool  | 192.168.0.0/16 ');
    const missing = await calicoctl(['get', 'workloadendpoints']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('gets ippool, node and bgppeer resources only, not workloadendpoints');
  });
});

describe('calicoctl apply and delete, before any datastore is asked', () => {
  /** calicoctl with only `env`'s datastore variables set, as in a container that has them or not. */
  const run = async (argv: string[], env: Record<string, string> = {}) => {
    const { io, out, err } = capture();
    const saved = { ...process.env };
    delete process.env.IPIP_LAB_DATASTORE;
    delete process.env.ETCDCTL_ENDPOINTS;
    Object.assign(process.env, env);
    try {
      return { code: await runCalicoctl(argv, io), stdout: out(), stderr: err() };
    } finally {
      process.env = saved;
    }
  };

  test('without a datastore in the environment: one line that says which variable', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'ipip-lab-calicoctl-')), 'peer.yaml');
    writeFileSync(
      file,
      'apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: tor\nspec:\n  peerIP: 10.0.0.50\n  asNumber: 64512\n',
    );
    const result = await run(['apply', '-f', file]);
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toContain('no datastore to write to: set IPIP_LAB_DATASTORE');
  });

  test('a file with another kind, or a broken BGPPeer, is refused before anything is written', async () => {
    const directory = mkdtempSync(path.join(tmpdir(), 'ipip-lab-calicoctl-'));
    const pool = path.join(directory, 'pool.yaml');
    writeFileSync(pool, 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\n');
    const unreachable = { IPIP_LAB_DATASTORE: 'http://127.0.0.1:9' };
    expect((await run(['apply', '-f', pool], unreachable)).stderr).toBe(
      'Failed to execute command: ipip-lab\'s calicoctl applies BGPPeer and BGPConfiguration resources only, not "IPPool" (the IP pool comes from the lab spec)\n',
    );
    const broken = path.join(directory, 'broken.yaml');
    writeFileSync(
      broken,
      'apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: tor\nspec:\n  peerIP: nowhere\n  asNumber: 64512\n',
    );
    expect((await run(['apply', '-f', broken], unreachable)).stderr).toBe(
      `Failed to execute command: ${broken}: spec.peerIP "nowhere" is not an IPv4 address\n`,
    );
    expect((await run(['apply', '-f', path.join(directory, 'missing.yaml')], unreachable)).stderr).toContain('ENOENT');
    expect((await run(['delete', 'ippool', 'p'], unreachable)).stderr).toContain(
      'deletes bgppeer and bgpconfiguration resources only',
    );
  });
});

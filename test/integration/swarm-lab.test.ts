/**
 * A swarm lab on a one-machine swarm: `ipip-lab gen-spec --nodes 20 --swarm` deployed with `docker stack deploy`. The
 * nodes have no fixed addresses: each registers the one Swarm gave it in etcd and finds the others there. Every pod
 * then reaches every other (20 × 19 pings), and again once calicoctl has made two nodes route reflectors and turned
 * the mesh off. The test inits a swarm only if the engine is in none, and leaves only the swarm it made.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildImage } from '../../src/testing/index.js';
import { cli } from '../support/cli.js';

const STACK = 'ipip-lab-swarm-test';
const NODES = 20;
const SUBNET = '10.53.0.0/24';
const REFLECTORS = ['kind-control-plane', 'kind-worker'];
const CLUSTER_ID = '244.0.0.1';
const CLIENT = 'kind-worker7';
const READY_WITHIN_MS = 240_000;
const CONVERGED_WITHIN_MS = 60_000;
const PING_ATTEMPTS = 3;
const SWARM_ADDRESS_POOL = '10.54.0.0/16';
const GATEWAY_BRIDGE = 'docker_gwbridge';

const MESH_OFF_YAML = `apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: peer-with-route-reflectors
spec:
  nodeSelector: all()
  peerSelector: route-reflector == 'true'
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  nodeToNodeMeshEnabled: false
`;

function docker(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('docker', args, { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) =>
      error ? reject(new Error(`docker ${args.join(' ')}: ${stderr.trim() || error.message}`)) : resolve(stdout),
    );
  });
}

async function until(check: () => Promise<boolean>, withinMs: number, what: string): Promise<number> {
  const started = Date.now();
  while (!(await check().catch(() => false))) {
    if (Date.now() - started > withinMs) throw new Error(`timed out after ${withinMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  return Date.now() - started;
}

/** The stack's containers on this machine, by the Kubernetes node each one is. */
async function nodeContainers(): Promise<Map<string, string>> {
  const lines = await docker(
    'ps',
    '--filter',
    `label=com.docker.stack.namespace=${STACK}`,
    '--format',
    '{{.ID}} {{.Label "com.docker.swarm.service.name"}}',
  );
  const containers = new Map<string, string>();
  for (const line of lines.split('\n').filter(Boolean)) {
    const [id, service] = line.split(' ');
    if (service === `${STACK}_etcd`) continue;
    containers.set((await docker('exec', id, 'hostname')).trim(), id);
  }
  return containers;
}

async function stackGone(): Promise<boolean> {
  const left = await docker('ps', '-aq', '--filter', `label=com.docker.stack.namespace=${STACK}`);
  const networks = await docker('network', 'ls', '-q', '--filter', `name=${STACK}_lab`);
  return left.trim() === '' && networks.trim() === '';
}

async function removeStack(): Promise<void> {
  await docker('stack', 'rm', STACK).catch(() => undefined);
  await until(stackGone, 60_000, `stack ${STACK} to go`);
}

/** Each node's pod: its network namespace and address, read in the node's own kernel. */
interface LocalPod {
  readonly node: string;
  readonly container: string;
  readonly netns: string;
  readonly ip: string;
}

async function localPod(node: string, container: string): Promise<LocalPod> {
  const [netns] = (await docker('exec', container, 'ip', 'netns', 'list'))
    .split('\n')
    .map((line) => line.split(' ')[0]);
  const address = await docker('exec', container, 'ip', '-n', netns, '-4', '-o', 'addr', 'show', 'dev', 'eth0');
  const ip = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(address)?.[1];
  if (!ip) throw new Error(`${node}: no pod address in ${address}`);
  return { node, container, netns, ip };
}

/** From every pod to every other, one `docker exec` per node: the addresses no pod answered, by sender. */
async function unreachable(pods: readonly LocalPod[]): Promise<string[]> {
  const lost = await Promise.all(
    pods.map(async (from) => {
      const targets = pods.filter((to) => to !== from).map((to) => to.ip);
      const script = [
        `for ip in ${targets.join(' ')}; do`,
        `  n=0; until ip netns exec ${from.netns} ping -c 1 -W 2 -q "$ip" >/dev/null; do`,
        `    n=$((n + 1)); [ "$n" -ge ${PING_ATTEMPTS} ] && { echo "$ip"; break; }`,
        '  done',
        'done',
      ].join('\n');
      const output = await docker('exec', from.container, 'sh', '-c', script);
      return output
        .split('\n')
        .filter(Boolean)
        .map((ip) => `${from.node} -> ${ip}`);
    }),
  );
  return lost.flat();
}

/** Routes to every other node's block (`proto bird`, through tunl0), on every node. */
async function everyBlockEverywhere(containers: ReadonlyMap<string, string>): Promise<boolean> {
  const counts = await Promise.all(
    [...containers.values()].map(async (id) =>
      (await docker('exec', id, 'ip', 'route', 'show', 'proto', 'bird', 'dev', 'tunl0')).split('\n').filter(Boolean),
    ),
  );
  return counts.every((routes) => routes.length === NODES - 1);
}

describe('a swarm lab of 20 nodes', () => {
  let madeSwarm = false;
  let madeGatewayBridge = false;
  let folder: string;
  let containers: Map<string, string>;
  let pods: LocalPod[];
  const exec = async (node: string, script: string): Promise<string> =>
    docker('exec', containers.get(node) ?? node, 'sh', '-c', script);

  beforeAll(async () => {
    await buildImage();
    const state = (await docker('info', '--format', '{{.Swarm.LocalNodeState}}')).trim();
    if (state === 'inactive') {
      madeGatewayBridge = await docker('network', 'inspect', GATEWAY_BRIDGE).then(
        () => false,
        () => true,
      );
      // The swarm's own ports on the loopback only: a one-machine swarm talks to nobody. Its ingress network would
      // take 10.0.0.0/24 from the default pool, the seed labs' subnet: it gets one from a pool no lab uses.
      await docker(
        'swarm',
        'init',
        '--advertise-addr',
        '127.0.0.1',
        '--listen-addr',
        '127.0.0.1:2377',
        '--default-addr-pool',
        SWARM_ADDRESS_POOL,
        '--default-addr-pool-mask-length',
        '24',
      );
      madeSwarm = true;
    } else if (state !== 'active') {
      throw new Error(`the engine's swarm is ${state}: it must be active, or inactive for the test to init one`);
    }
    await removeStack();
    folder = mkdtempSync(path.join(tmpdir(), 'swarm-lab-'));
    const spec = path.join(folder, 'swarm.yaml');
    const stack = path.join(folder, 'swarm.stack.yml');
    const generated = await cli(
      'gen-spec',
      '--nodes',
      String(NODES),
      '--pods-per-node',
      '1',
      '--cidr',
      SUBNET,
      '-o',
      spec,
      '--swarm',
      stack,
    );
    expect(generated).toMatchObject({ code: 0, stderr: '' });
    const deployedAt = Date.now();
    await docker('stack', 'deploy', '--compose-file', stack, STACK);
    const ready = await until(
      async () => {
        containers = await nodeContainers();
        if (containers.size !== NODES) return false;
        const nodes = await exec('kind-control-plane', 'kubectl get nodes');
        return nodes.split('\n').filter((line) => / Ready /.test(line)).length === NODES;
      },
      READY_WITHIN_MS,
      `${NODES} nodes Ready`,
    );
    console.log(
      `swarm lab: ${NODES} nodes Ready ${ready} ms after docker stack deploy returned (${Date.now() - deployedAt} ms in all)`,
    );
    pods = await Promise.all([...containers].map(([node, id]) => localPod(node, id)));
  });

  afterAll(async () => {
    await removeStack().catch((error: unknown) => console.error(error));
    if (madeSwarm) await docker('swarm', 'leave', '--force');
    // Swarm makes it at init and keeps it after leave; on 172.18.0.0/16, where kind's network goes.
    if (madeGatewayBridge) await docker('network', 'rm', GATEWAY_BRIDGE);
    if (folder) rmSync(folder, { recursive: true, force: true });
  });

  test('every node registered the address Swarm gave it, and the mesh and its routes follow', async () => {
    const keys = await exec(
      'kind-worker3',
      'etcdctl get /calico/resources/v3/projectcalico.org/nodes/ --prefix --keys-only',
    );
    expect(keys.split('\n').filter(Boolean)).toHaveLength(NODES);
    const wide = await exec('kind-worker3', 'kubectl get nodes -o wide');
    const internalIps = new Map(
      wide
        .split('\n')
        .filter(Boolean)
        .map((line) => line.split(/\s+/))
        .map((f) => [f[0], f[5]]),
    );
    for (const [node, id] of containers) {
      const own = await docker('exec', id, 'ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0');
      expect(own).toContain(`inet ${internalIps.get(node)}/24`);
    }
    await until(() => everyBlockEverywhere(containers), CONVERGED_WITHIN_MS, 'every block on every node');
    const status = await exec('kind-worker5', 'calicoctl node status');
    expect(
      status.split('\n').filter((line) => /\| node-to-node mesh \| up .* Established \|$/.test(line)),
    ).toHaveLength(NODES - 1);

    // The swarm's view from the manager: every node, on this machine, at the address it registered, running once
    // its healthcheck has passed (`starting` before).
    const machine = (await docker('info', '--format', '{{.Name}}')).trim();
    let listed: { name: string; machine: string; state: string; address: string }[] = [];
    await until(
      async () => {
        const result = await cli('swarm', 'status', STACK, '-o', 'json');
        listed = result.code === 0 ? (JSON.parse(result.stdout) as typeof listed) : [];
        return listed.length === NODES && listed.every((node) => node.state === 'running');
      },
      CONVERGED_WITHIN_MS,
      'every task running',
    );
    expect(listed.map((node) => node.name).sort()).toEqual([...containers.keys()].sort());
    for (const node of listed) expect(node).toMatchObject({ machine, address: internalIps.get(node.name) });
    const table = await cli('swarm', 'status', STACK);
    expect(table.stdout.split('\n')[0]).toMatch(/^NAME +MACHINE +STATE +ADDRESS +TASK$/);
    expect(table.stdout).toMatch(
      new RegExp(`\\nkind-control-plane +${machine} +running +10\\.53\\.0\\.\\d+ +\\w{12}\\n`),
    );
  });

  test('every pod reaches every other pod (20 × 19 pings through tunl0)', async () => {
    const started = Date.now();
    expect(await unreachable(pods)).toEqual([]);
    console.log(`swarm lab: ${NODES * (NODES - 1)} pod pings, all answered, in ${Date.now() - started} ms`);
  });

  test('with two route reflectors and the mesh off, a client peers only with them and every pod still reaches every other', async () => {
    for (const name of REFLECTORS) {
      const patch = JSON.stringify({ spec: { bgp: { routeReflectorClusterID: CLUSTER_ID } } });
      await exec('kind-control-plane', `calicoctl patch node ${name} -p '${patch}'`);
      await exec('kind-control-plane', `calicoctl label nodes ${name} route-reflector=true`);
    }
    expect(await exec('kind-control-plane', `calicoctl apply -f - <<'EOF'\n${MESH_OFF_YAML}EOF`)).toBe(
      'Successfully applied 2 resource(s)\n',
    );
    const reflectorIps = await Promise.all(REFLECTORS.map((name) => exec(name, 'hostname -i').then((ip) => ip.trim())));
    const onlyReflectors = async () => {
      const rows = (await exec(CLIENT, 'calicoctl node status')).split('\n').filter((line) => /^\| \d/.test(line));
      return (
        rows.length === 2 &&
        reflectorIps.every((ip) =>
          rows.some((row) => row.startsWith(`| ${ip} `) && /\| node specific \| up .* Established \|$/.test(row)),
        )
      );
    };
    const took = await until(onlyReflectors, CONVERGED_WITHIN_MS, `${CLIENT} to peer with the reflectors only`);
    console.log(`swarm lab: ${CLIENT} listed only the two reflectors ${took} ms after the apply`);
    await until(() => everyBlockEverywhere(containers), CONVERGED_WITHIN_MS, 'every block on every node, reflected');
    const started = Date.now();
    expect(await unreachable(pods)).toEqual([]);
    console.log(`swarm lab, reflectors: ${NODES * (NODES - 1)} pod pings, all answered, in ${Date.now() - started} ms`);
  });
});

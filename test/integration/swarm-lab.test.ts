/**
 * A swarm lab on a one-machine swarm: `ipip-lab gen-spec --nodes 20 --swarm` deployed with `docker stack deploy`. The
 * nodes have no fixed addresses: each registers the one Swarm gave it in etcd and finds the others there. Every pod
 * then reaches every other (20 × 19 pings), and again once calicoctl has made two nodes route reflectors and turned
 * the mesh off; a capture of one node asked of its agent from another, over the overlay, holds the IPIP packets.
 * The test inits a swarm only if the engine is in none, and leaves only the swarm it made.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  buildImage,
  docker,
  joinSwarm,
  leaveSwarm,
  SwarmLab,
  unreachablePods,
  until,
  type NodePod,
  type SwarmMembership,
} from '../../src/testing/index.js';
import type { LabSnapshot, TraceResult } from '../../src/cli/page/page-protocol.js';
import { cli, REPO_ROOT } from '../support/cli.js';

const STACK = 'ipip-lab-swarm-test';
const NODES = 20;
const SUBNET = '10.53.0.0/24';
const REFLECTORS = ['kind-control-plane', 'kind-worker'];
const CLUSTER_ID = '244.0.0.1';
const CLIENT = 'kind-worker7';
const PAGE = 'ipip-lab-swarm-test-page';
const READY_WITHIN_MS = 240_000;
const CONVERGED_WITHIN_MS = 60_000;

/** Calico's route reflector set-up: every node peers with the reflectors, the mesh off. */
const MESH_OFF_YAML = readFileSync(`${REPO_ROOT}test/fixtures/mesh-off-reflectors.yaml`, 'utf8');

/** Routes to every other node's block (`proto bird`, through tunl0), on every node. */
async function everyBlockEverywhere(lab: SwarmLab): Promise<boolean> {
  const counts = await Promise.all(
    [...lab.containers.keys()].map(async (node) =>
      (await lab.exec(node, 'ip route show proto bird dev tunl0')).split('\n').filter(Boolean),
    ),
  );
  return counts.every((routes) => routes.length === NODES - 1);
}

describe('a swarm lab of 20 nodes', () => {
  let membership: SwarmMembership | undefined;
  let folder: string | undefined;
  let lab: SwarmLab;
  let pods: NodePod[];

  beforeAll(async () => {
    await buildImage();
    membership = await joinSwarm();
    folder = mkdtempSync(path.join(tmpdir(), 'swarm-lab-'));
    const stackFile = path.join(folder, 'swarm.stack.yml');
    const generated = await cli(
      'gen-spec',
      '--nodes',
      String(NODES),
      '--pods-per-node',
      '1',
      '--cidr',
      SUBNET,
      '-o',
      path.join(folder, 'swarm.yaml'),
      '--swarm',
      stackFile,
    );
    expect(generated).toMatchObject({ code: 0, stderr: '' });
    const started = Date.now();
    lab = await SwarmLab.deploy({
      stack: STACK,
      stackFile,
      nodes: NODES,
      controlPlane: 'kind-control-plane',
      readyWithinMs: READY_WITHIN_MS,
    });
    console.log(`swarm lab: ${NODES} nodes Ready ${Date.now() - started} ms after docker stack deploy`);
    pods = await lab.pods();
  });

  afterAll(async () => {
    await SwarmLab.remove(STACK).catch((error: unknown) => console.error(error));
    if (membership) await leaveSwarm(membership);
    if (folder) rmSync(folder, { recursive: true, force: true });
  });

  test('every node registered the address Swarm gave it, and the mesh and its routes follow', async () => {
    const keys = await lab.exec(
      'kind-worker3',
      'etcdctl get /calico/resources/v3/projectcalico.org/nodes/ --prefix --keys-only',
    );
    expect(keys.split('\n').filter(Boolean)).toHaveLength(NODES);
    const wide = await lab.exec('kind-worker3', 'kubectl get nodes -o wide');
    const internalIps = new Map(
      wide
        .split('\n')
        .filter(Boolean)
        .map((line) => line.split(/\s+/))
        .map((fields) => [fields[0], fields[5]]),
    );
    for (const node of lab.containers.keys()) {
      expect(await lab.exec(node, 'ip -4 -o addr show dev eth0')).toContain(`inet ${internalIps.get(node)}/24`);
    }
    await until(() => everyBlockEverywhere(lab), CONVERGED_WITHIN_MS, 'every block on every node', 1000);
    const status = await lab.exec('kind-worker5', 'calicoctl node status');
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
      1000,
    );
    expect(listed.map((node) => node.name).sort()).toEqual([...lab.containers.keys()].sort());
    for (const node of listed) expect(node).toMatchObject({ machine, address: internalIps.get(node.name) });
    const table = await cli('swarm', 'status', STACK);
    expect(table.stdout.split('\n')[0]).toMatch(/^NAME +MACHINE +STATE +ADDRESS +TASK$/);
    expect(table.stdout).toMatch(
      new RegExp(`\\nkind-control-plane +${machine} +running +10\\.53\\.0\\.\\d+ +\\w{12}\\n`),
    );
  });

  test('every pod reaches every other pod (20 × 19 pings through tunl0)', async () => {
    const started = Date.now();
    expect(await unreachablePods(pods)).toEqual([]);
    console.log(`swarm lab: ${NODES * (NODES - 1)} pod pings, all answered, in ${Date.now() - started} ms`);
  });

  test("a capture of another node's eth0, asked of its agent over the overlay, holds the IPIP packets", async () => {
    const [from, to] = pods.filter((pod) => pod.node === 'kind-worker9' || pod.node === 'kind-worker4');
    const nodeIps = await Promise.all([from, to].map((pod) => lab.exec(pod.node, 'hostname -i')));
    const capture = lab.exec(
      'kind-control-plane',
      `ipip-lab capture --node ${from.node} -i eth0 -c 2 --duration 20 -w /captures/across.pcapng proto ipip 2>&1`,
    );
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await lab.exec(from.node, `ip netns exec ${from.netns} ping -c 1 -W 2 ${to.ip}`);
    expect(await capture).toMatch(/\n2 packets captured\n/);
    const read = await lab.exec('kind-control-plane', 'tcpdump -nn -r /captures/across.pcapng 2>/dev/null');
    const [fromIp, toIp] = nodeIps.map((ip) => ip.trim());
    expect(read).toContain(`IP ${fromIp} > ${toIp}: IP ${from.ip} > ${to.ip}: ICMP echo request`);
    expect(read).toContain(`IP ${toIp} > ${fromIp}: IP ${to.ip} > ${from.ip}: ICMP echo reply`);
  });

  test('the lab page, in a container on the overlay, sees every node and traces a ping across two of them', async () => {
    await docker('rm', '-f', PAGE).catch(() => undefined);
    const controlPlaneIp = (await lab.exec('kind-control-plane', 'hostname -i')).trim();
    await docker(
      ...['run', '-d', '--rm', '--name', PAGE, '--network', `${STACK}_lab`, 'ipip-lab-node:dev'],
      ...['page', '--listen', '127.0.0.1:8480', '--agent', controlPlaneIp],
    );
    try {
      const get = async () =>
        JSON.parse(await docker('exec', PAGE, 'curl', '-sf', 'http://127.0.0.1:8480/api/lab')) as LabSnapshot;
      await until(
        async () => {
          const snapshot = await get();
          return snapshot.nodes.length === NODES && snapshot.nodes.every((node) => node.dataplane === 'kernel');
        },
        CONVERGED_WITHIN_MS,
        'the page to see every node',
        1000,
      );
      const snapshot = await get();
      const podOf = (node: string) => snapshot.nodes.find((candidate) => candidate.name === node)?.pods[0]?.name;
      const request = { from: podOf('kind-worker2'), to: podOf('kind-worker11'), protocol: 'icmp', df: false };
      const trace = JSON.parse(
        await docker(
          ...['exec', PAGE, 'curl', '-sf', '-H', 'content-type: application/json', '-d', JSON.stringify(request)],
          'http://127.0.0.1:8480/api/traces',
        ),
      ) as TraceResult;
      expect(trace.outcome, trace.summary).toBe('answered');
      expect(trace.forward.length).toBeGreaterThan(0);
      expect(trace.reply.length).toBeGreaterThan(0);
    } finally {
      await docker('rm', '-f', PAGE).catch(() => undefined);
    }
  });

  test('with two route reflectors and the mesh off, a client peers only with them and every pod still reaches every other', async () => {
    for (const name of REFLECTORS) {
      const patch = JSON.stringify({ spec: { bgp: { routeReflectorClusterID: CLUSTER_ID } } });
      await lab.exec('kind-control-plane', `calicoctl patch node ${name} -p '${patch}'`);
      await lab.exec('kind-control-plane', `calicoctl label nodes ${name} route-reflector=true`);
    }
    expect(await lab.exec('kind-control-plane', `calicoctl apply -f - <<'EOF'\n${MESH_OFF_YAML}EOF`)).toBe(
      'Successfully applied 2 resource(s)\n',
    );
    const reflectorIps = await Promise.all(
      REFLECTORS.map(async (name) => (await lab.exec(name, 'hostname -i')).trim()),
    );
    const onlyReflectors = async () => {
      const rows = (await lab.exec(CLIENT, 'calicoctl node status')).split('\n').filter((line) => /^\| \d/.test(line));
      return (
        rows.length === 2 &&
        reflectorIps.every((ip) =>
          rows.some((row) => row.startsWith(`| ${ip} `) && /\| node specific \| up .* Established \|$/.test(row)),
        )
      );
    };
    const took = await until(onlyReflectors, CONVERGED_WITHIN_MS, `${CLIENT} to peer with the reflectors only`, 1000);
    console.log(`swarm lab: ${CLIENT} listed only the two reflectors ${took} ms after the apply`);
    await until(() => everyBlockEverywhere(lab), CONVERGED_WITHIN_MS, 'every block on every node, reflected', 1000);
    const started = Date.now();
    expect(await unreachablePods(pods)).toEqual([]);
    console.log(`swarm lab, reflectors: ${NODES * (NODES - 1)} pod pings, all answered, in ${Date.now() - started} ms`);
  });

  test('a node whose agent is killed comes back as a new task, and every node finds it at its new address', async () => {
    const victim = 'kind-worker12';
    const old = lab.containers.get(victim)!;
    const oldIp = (await lab.exec(victim, 'hostname -i')).trim();
    const pid = Number((await docker('inspect', '--format', '{{.State.Pid}}', old)).trim());
    process.kill(pid, 'SIGKILL');
    const started = Date.now();
    let newIp = '';
    await until(
      async () => {
        await lab.refresh();
        const replacement = lab.containers.get(victim);
        if (!replacement || replacement === old) return false;
        newIp = (await lab.exec(victim, 'hostname -i')).trim();
        const views = await Promise.all(
          ['kind-control-plane', 'kind-worker3'].map((node) => lab.exec(node, 'kubectl get nodes -o wide')),
        );
        return views.every((view) =>
          new RegExp(`^${victim} +Ready .* ${newIp.replace(/\./g, '\\.')} `, 'm').test(view),
        );
      },
      READY_WITHIN_MS,
      `${victim} back and listed at its new address`,
      1000,
    );
    console.log(
      `swarm lab: ${victim} killed at ${oldIp}, back at ${newIp} and listed so ${Date.now() - started} ms later`,
    );
    await until(() => everyBlockEverywhere(lab), CONVERGED_WITHIN_MS, 'every block on every node again', 1000);
    pods = await lab.pods();
    expect(await unreachablePods(pods)).toEqual([]);
  });
});

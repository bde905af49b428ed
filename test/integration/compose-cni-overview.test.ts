/**
 * The first seed's lab from the repository's own docker-compose.yml: up and healthy in time, the course's commands
 * typed as the course types them (kubectl inside master-node, ipip-lab route / ip addr), their output against the
 * seed walkthrough's real cluster output, pods reaching each other across nodes, and a clean `down`.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { headerPattern, startComposeLab, type ComposeLab } from '../support/compose.js';

// Lines from the seed walkthrough (real kubectl and net-tools output on the course's cluster).
const SEED_NODES_HEADER =
  'NAME            STATUS   ROLES                  AGE     VERSION   INTERNAL-IP   EXTERNAL-IP   OS-IMAGE             KERNEL-VERSION       CONTAINER-RUNTIME';
const SEED_PODS_HEADER =
  'NAME                           READY   STATUS    RESTARTS   AGE     IP               NODE            NOMINATED NODE   READINESS GATES';
const SEED_ROUTE_HEADER =
  'Kernel IP routing table\nDestination     Gateway         Genmask         Flags Metric Ref    Use Iface\n';

let lab: ComposeLab;
let pods: { name: string; ip: string; node: string }[];

beforeAll(async () => {
  lab = await startComposeLab('docker-compose.yml', 'ipip-lab-test-compose');
});

afterAll(async () => {
  await lab?.down();
});

const ok = (service: string, ...argv: string[]): Promise<string> => lab.ok(service, ...argv);

test('docker compose up is healthy within 30 s', () => {
  expect(lab.upMs).toBeLessThan(30_000);
});

describe('before the course applies its Deployment', () => {
  test('kubectl get nodes -o wide: the seed columns, ROLES as the course labelled them', async () => {
    const [header, ...rows] = (await ok('master-node', 'kubectl', 'get', 'nodes', '-o', 'wide')).trimEnd().split('\n');
    expect(header).toMatch(headerPattern(SEED_NODES_HEADER, ['AGE', 'OS-IMAGE', 'KERNEL-VERSION']));
    expect(header.startsWith('NAME            STATUS   ROLES                  AGE')).toBe(true);
    expect(rows.map((row) => row.split(/ {2,}/).filter((_, i) => [0, 1, 2, 4, 5, 6].includes(i)))).toEqual([
      ['master-node', 'Ready', 'control-plane,master', 'v1.21.4', '10.0.0.10', '<none>'],
      ['worker-node01', 'Ready', 'worker', 'v1.21.4', '10.0.0.11', '<none>'],
      ['worker-node02', 'Ready', 'worker', 'v1.21.4', '10.0.0.12', '<none>'],
    ]);
  });

  test('kubectl get pods -o wide finds none, as on a fresh cluster', async () => {
    expect(await lab.exec('master-node', 'kubectl', 'get', 'pods', '-o', 'wide')).toEqual({
      exitCode: 0,
      stdout: '',
      stderr: 'No resources found in default namespace.\n',
    });
  });

  test('bash greets with what is emulated and what to try', async () => {
    const shell = await lab.exec('master-node', 'bash', '-ic', 'true');
    expect(shell.stdout).toContain('master-node is an emulated node');
    expect(shell.stdout).toContain('kubectl get pods -o wide');
  });
});

describe('after kubectl apply -f deployment.yml', () => {
  beforeAll(async () => {
    expect(await ok('master-node', 'kubectl', 'apply', '-f', 'deployment.yml')).toBe(
      'deployment.apps/hello-world created\n',
    );
    const json = JSON.parse(await ok('worker-node01', 'kubectl', 'get', 'pods', '-o', 'json')) as {
      items: { metadata: { name: string }; spec: { nodeName: string }; status: { podIP: string } }[];
    };
    pods = json.items.map((item) => ({ name: item.metadata.name, ip: item.status.podIP, node: item.spec.nodeName }));
  });

  test('applying it again changes nothing', async () => {
    expect(await ok('worker-node02', 'kubectl', 'apply', '-f', 'deployment.yml')).toBe(
      'deployment.apps/hello-world unchanged\n',
    );
  });

  test('every node sees the same 3 pods on the workers', async () => {
    expect(pods.map((pod) => pod.node).sort()).toEqual(['worker-node01', 'worker-node01', 'worker-node02']);
    for (const node of ['master-node', 'worker-node02']) {
      const names = (await ok(node, 'kubectl', 'get', 'pods', '-o', 'name')).trim().split('\n');
      expect(names).toEqual(pods.map((pod) => `pod/${pod.name}`));
    }
  });

  test('kubectl get pods -o wide: the seed header, each column where kubectl puts it', async () => {
    const [header, ...rows] = (await ok('master-node', 'kubectl', 'get', 'pods', '-o', 'wide')).trimEnd().split('\n');
    expect(header).toMatch(headerPattern(SEED_PODS_HEADER, ['AGE']));
    expect(rows).toHaveLength(3);
    for (const row of rows)
      expect(row.slice(header.indexOf('IP '))).toMatch(/^192\.168\.\d+\.\d+ +worker-node0[12] +<none> +<none>$/);
  });

  test("the seed's PODNAME=$(kubectl get pods --selector=… -o jsonpath=…), then kubectl exec -it $PODNAME -- ip addr", async () => {
    const name = await ok(
      'master-node',
      'kubectl',
      'get',
      'pods',
      '--selector=app=hello-world',
      '-o',
      'jsonpath={.items[0].metadata.name}',
    );
    const pod = pods.find((p) => p.name === name)!;
    expect(pod).toBeDefined();
    const lines = (await ok('master-node', 'kubectl', 'exec', '-it', name, '--', 'ip', 'addr')).split('\n');
    expect(lines).toContain('2: tunl0@NONE: <NOARP> mtu 1480 qdisc noop state DOWN qlen 1000');
    expect(lines.find((line) => line.startsWith('4: eth0@'))).toMatch(
      /^4: eth0@if\d+: <BROADCAST,MULTICAST,UP,LOWER_UP,M-DOWN> mtu 1480 qdisc noqueue state UP $/,
    );
    expect(lines).toContain(`    inet ${pod.ip}/32 brd ${pod.ip} scope global eth0`);
    const shell = await lab.exec('master-node', 'kubectl', 'exec', '-it', name, '--', '/bin/sh');
    expect(shell.exitCode).toBe(1);
    expect(shell.stderr).toContain('ip addr | ip route');
  });

  test("kubectl describe node master (the seed's words, a prefix of master-node): annotations, Addresses, PodCIDRs", async () => {
    const text = await ok('master-node', 'kubectl', 'describe', 'node', 'master');
    expect(text).toMatch(/^Name: {15}master-node\n/);
    expect(text).toContain(
      '                    projectcalico.org/IPv4Address: 10.0.0.10/24\n                    projectcalico.org/IPv4IPIPTunnelAddr: 192.168.77.128\n',
    );
    expect(text).toContain('Addresses:\n  InternalIP:  10.0.0.10\n  Hostname:    master-node\n');
    expect(text).toContain(
      'PodCIDR:                      192.168.0.0/24\nPodCIDRs:                     192.168.0.0/24\n',
    );
    expect(await lab.exec('master-node', 'kubectl', 'describe', 'node', 'vagrant')).toMatchObject({
      exitCode: 1,
      stderr: 'Error from server (NotFound): nodes "vagrant" not found\n',
    });
  });

  test("route on master-node: the seed's tunnel routes (UG via tunl0) and its own block (U, *)", async () => {
    const text = await ok('master-node', 'ipip-lab', 'route');
    expect(text.startsWith(SEED_ROUTE_HEADER)).toBe(true);
    const lines = text.split('\n');
    expect(lines).toContain('192.168.77.128  0.0.0.0         255.255.255.192 U     0      0        0 *');
    expect(lines).toContain('192.168.87.192  worker-node01   255.255.255.192 UG    0      0        0 tunl0');
    expect(lines).toContain('192.168.158.0   worker-node02   255.255.255.192 UG    0      0        0 tunl0');
  });

  test('route on worker-node01 (and route -n from master-node with --node): its pods as UH via their cali interfaces', async () => {
    const local = pods.filter((pod) => pod.node === 'worker-node01');
    const text = await ok('worker-node01', 'ipip-lab', 'route');
    expect(text.split('\n')).toContain('192.168.77.128  master-node     255.255.255.192 UG    0      0        0 tunl0');
    for (const pod of local)
      expect(text).toMatch(
        new RegExp(
          `^${pod.ip.replace(/\./g, '\\.')} +0\\.0\\.0\\.0 +255\\.255\\.255\\.255 UH {4}0 {6}0 {8}0 cali[0-9a-f]{11}$`,
          'm',
        ),
      );
    const numeric = await ok('master-node', 'ipip-lab', 'route', '-n', '--node', 'worker-node01');
    expect(numeric.split('\n')).toContain(
      '192.168.77.128  10.0.0.10       255.255.255.192 UG    0      0        0 tunl0',
    );
  });

  test("ip addr on worker-node01: the seed's tunl0 lines", async () => {
    const lines = (await ok('worker-node01', 'ipip-lab', 'ip', 'addr')).split('\n');
    expect(lines).toContain(
      '2: tunl0@NONE: <NOARP,UP,LOWER_UP> mtu 1480 qdisc noqueue state UNKNOWN group default qlen 1000',
    );
    expect(lines).toContain('    link/ipip 0.0.0.0 brd 0.0.0.0');
    expect(lines).toContain('    inet 192.168.87.192/32 scope global tunl0');
  });

  test('a pod on worker-node01 pings and curls a pod on worker-node02 through the tunnel', async () => {
    const from = pods.find((pod) => pod.node === 'worker-node01')!;
    const to = pods.find((pod) => pod.node === 'worker-node02')!;
    const ping = await ok('worker-node01', 'ipip-lab', 'ping', to.ip, '--from', from.name, '-c', '3', '-i', '0.2');
    expect(ping).toContain('3 packets transmitted, 3 received, 0% packet loss');
    expect(ping).toContain('ttl=62');
    const curl = await ok('master-node', 'ipip-lab', 'curl', `http://${to.ip}:8080/`, '--from', from.name);
    expect(curl).toContain(`Hello, world!\nVersion: 1.0.0\nHostname: ${to.name}\n`);
    const tunl0 = await ok('worker-node01', 'ipip-lab', 'ifconfig', 'tunl0');
    expect(tunl0).toMatch(
      /^tunl0: flags=193<UP,RUNNING,NOARP> {2}mtu 1480\n {8}inet 192\.168\.87\.192 {2}netmask 255\.255\.255\.255\n/,
    );
    expect(tunl0).not.toContain('TX packets 0 ');
  });

  test('kubectl delete -f deployment.yml removes the pods and their routes everywhere', async () => {
    expect(await ok('master-node', 'kubectl', 'delete', '-f', 'deployment.yml')).toBe(
      'deployment.apps "hello-world" deleted\n',
    );
    expect((await lab.exec('worker-node01', 'kubectl', 'get', 'pods')).stderr).toBe(
      'No resources found in default namespace.\n',
    );
    expect(await ok('worker-node01', 'ipip-lab', 'route')).not.toContain('cali');
  });
});

test('docker compose down takes under 5 s and leaves nothing behind', async () => {
  const downMs = await lab.down();
  expect(downMs).toBeLessThan(5_000);
  expect(await lab.leftovers()).toEqual([]);
});

/**
 * The second seed's lab (kind's "networking" cluster) from containers/networking/docker-compose.yml: kind's node
 * names, hostnames and addresses, the course's commands against the seed's real output (the same Calico blocks,
 * route's truncated gateway names, ifconfig's tunl0), pods reaching each other across nodes, and a clean `down`.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startComposeLab, type ComposeLab } from '../support/compose.js';

const CONTROL_PLANE = 'networking-control-plane';
const WORKERS = ['networking-worker', 'networking-worker2', 'networking-worker3'];

let lab: ComposeLab;

beforeAll(async () => {
  lab = await startComposeLab('containers/networking/docker-compose.yml', 'ipip-lab-test-compose-networking');
});

afterAll(async () => {
  await lab?.down();
});

const ok = (service: string, ...argv: string[]): Promise<string> => lab.ok(service, ...argv);

test('up: healthy within 30 s, each container named as kind names its node, on 172.20.0.2-5', async () => {
  expect(lab.upMs).toBeLessThan(30_000);
  for (const [i, node] of [CONTROL_PLANE, ...WORKERS].entries()) {
    expect((await ok(node, 'hostname')).trim()).toBe(node);
    expect(await ok(node, 'ip', '-4', '-o', 'addr', 'show', 'eth0')).toContain(`inet 172.20.0.${i + 2}/16`);
  }
});

test('kubectl get nodes -o wide: kind labels no worker, so they show ROLES <none>', async () => {
  const rows = (await ok(CONTROL_PLANE, 'kubectl', 'get', 'nodes', '-o', 'wide')).trimEnd().split('\n').slice(1);
  expect(rows.map((row) => row.split(/ {2,}/).filter((_, i) => [0, 2, 4, 5].includes(i)))).toEqual([
    [CONTROL_PLANE, 'control-plane,master', 'v1.21.1', '172.20.0.2'],
    ['networking-worker', '<none>', 'v1.21.1', '172.20.0.3'],
    ['networking-worker2', '<none>', 'v1.21.1', '172.20.0.4'],
    ['networking-worker3', '<none>', 'v1.21.1', '172.20.0.5'],
  ]);
});

test('kubectl apply -f ./csi-calico-demo/Deployment.yaml puts one hello-world pod on each worker', async () => {
  expect(await ok(CONTROL_PLANE, 'kubectl', 'apply', '-f', './csi-calico-demo/Deployment.yaml')).toBe(
    'deployment.apps/hello-world created\n',
  );
  const rows = (await ok('networking-worker2', 'kubectl', 'get', 'pods', '-A', '-o', 'wide')).trimEnd().split('\n');
  expect(rows[0].split(/ {2,}/)).toEqual([
    'NAMESPACE',
    'NAME',
    'READY',
    'STATUS',
    'RESTARTS',
    'AGE',
    'IP',
    'NODE',
    'NOMINATED NODE',
    'READINESS GATES',
  ]);
  expect(
    rows
      .slice(1)
      .map((row) => row.split(/ +/)[7])
      .sort(),
  ).toEqual(WORKERS);
});

test("kubectl describe node networking-control-plane: the seed's annotations, with the /16 of kind's network", async () => {
  const text = await ok(CONTROL_PLANE, 'kubectl', 'describe', 'node', CONTROL_PLANE);
  expect(text).toContain(
    '                    projectcalico.org/IPv4Address: 172.20.0.2/16\n                    projectcalico.org/IPv4IPIPTunnelAddr: 192.168.223.128\n',
  );
  expect(text).toContain(
    'PodCIDR:                      192.168.0.0/24\nPodCIDRs:                     192.168.0.0/24\n',
  );
});

test("net-tools' route on the control plane and on networking-worker2: the seed's blocks, gateways cut to 15 characters", async () => {
  const control = (await ok(CONTROL_PLANE, 'route')).split('\n');
  expect(control).toEqual(
    expect.arrayContaining([
      'Destination     Gateway         Genmask         Flags Metric Ref    Use Iface',
      '172.20.0.0      0.0.0.0         255.255.0.0     U     0      0        0 eth0',
      '192.168.21.128  networking-work 255.255.255.192 UG    0      0        0 tunl0',
      '192.168.78.128  networking-work 255.255.255.192 UG    0      0        0 tunl0',
      '192.168.175.0   networking-work 255.255.255.192 UG    0      0        0 tunl0',
      '192.168.223.128 0.0.0.0         255.255.255.192 U     0      0        0 *',
    ]),
  );
  const worker2 = (await ok('networking-worker2', 'route')).split('\n');
  expect(worker2).toContain('192.168.223.128 networking-cont 255.255.255.192 UG    0      0        0 tunl0');
  expect(worker2).toContain('192.168.175.0   0.0.0.0         255.255.255.192 U     0      0        0 *');
  expect(worker2.filter((line) => / UH +0 +0 +0 cali[0-9a-f]{11}$/.test(line))).toHaveLength(1);
});

test("ifconfig tunl0 on the control plane: the seed's address and mtu from the real tool, the seed's lines from the emulated view", async () => {
  const real = await ok(CONTROL_PLANE, 'ifconfig', 'tunl0');
  expect(real).toMatch(/^tunl0: flags=\d+<UP,POINTOPOINT,RUNNING,NOARP,MULTICAST> {2}mtu 1480\n/);
  expect(real).toContain('        inet 192.168.223.128  netmask 255.255.255.255');
  expect((await ok(CONTROL_PLANE, 'ipip-lab', 'ifconfig', 'tunl0')).split('\n').slice(0, 3)).toEqual([
    'tunl0: flags=193<UP,RUNNING,NOARP>  mtu 1480',
    '        inet 192.168.223.128  netmask 255.255.255.255',
    '        tunnel   txqueuelen 1000  (IPIP Tunnel)',
  ]);
});

test('a pod pings and curls pods on the other workers through the tunnel', async () => {
  const list = JSON.parse(await ok(CONTROL_PLANE, 'kubectl', 'get', 'pods', '-o', 'json')) as {
    items: { metadata: { name: string }; spec: { nodeName: string }; status: { podIP: string } }[];
  };
  const [from, ...others] = list.items;
  for (const to of others) {
    const ping = await ok(
      CONTROL_PLANE,
      'ipip-lab',
      'ping',
      to.status.podIP,
      '--from',
      from.metadata.name,
      '-c',
      '2',
      '-i',
      '0.2',
    );
    expect(ping).toContain('2 packets transmitted, 2 received, 0% packet loss');
  }
  const curl = await ok(
    CONTROL_PLANE,
    'ipip-lab',
    'curl',
    `http://${others[0].status.podIP}:8080/`,
    '--from',
    from.metadata.name,
  );
  expect(curl).toContain(`Hostname: ${others[0].metadata.name}\n`);
  // The pods are namespaces of the kernel dataplane: --from runs the real ping there, and -o json reads its lines.
  const report = JSON.parse(
    await ok(
      CONTROL_PLANE,
      'ipip-lab',
      'ping',
      others[0].status.podIP,
      '--from',
      from.metadata.name,
      '-c',
      '2',
      '-i',
      '0.2',
      '-o',
      'json',
    ),
  ) as { transmitted: number; received: number; results: { kind: string; ttl: number }[] };
  expect(report).toMatchObject({ transmitted: 2, received: 2 });
  expect(report.results.map((result) => [result.kind, result.ttl])).toEqual([
    ['reply', 62],
    ['reply', 62],
  ]);
});

test('kubectl debug node/networking-control-plane -it --image=ubuntu: a shell on that node, net-tools already there', async () => {
  const shell = await lab.exec(
    'networking-worker',
    'bash',
    '-c',
    "printf 'hostname\\nroute -n\\nexit\\n' | kubectl debug node/networking-control-plane -it --image=ubuntu",
  );
  expect(shell.exitCode).toBe(0);
  expect(shell.stdout).toContain('networking-control-plane\n');
  expect(shell.stdout).toContain('Kernel IP routing table');
  expect(shell.stdout).toContain('192.168.223.128 0.0.0.0         255.255.255.192 U     0      0        0 *');
  expect(shell.stderr).toContain('net-tools, iproute2, ping, traceroute, curl and tcpdump are already installed');
});

test('docker compose down takes under 5 s and leaves nothing behind', async () => {
  expect(await lab.down()).toBeLessThan(5_000);
  expect(await lab.leftovers()).toEqual([]);
});

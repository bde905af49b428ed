/**
 * The first seed's lab from the repository's own docker-compose.yml, whose nodes run the kernel dataplane: up and
 * healthy in time, the course's commands typed as the course types them (kubectl inside master-node, net-tools'
 * route, ip, ping, curl, traceroute, tcpdump: the real tools on the container's kernel), their output against the
 * seed walkthrough's real cluster output, pods reaching each other across nodes, and a clean `down`.
 */
import { execFile } from 'node:child_process';
import { isDeepStrictEqual, promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { headerPattern, startComposeLab, type ComposeLab } from '../support/compose.js';

// Lines from the seed walkthrough (real kubectl and net-tools output on the course's cluster).
const SEED_NODES_HEADER =
  'NAME            STATUS   ROLES                  AGE     VERSION   INTERNAL-IP   EXTERNAL-IP   OS-IMAGE             KERNEL-VERSION       CONTAINER-RUNTIME';
const SEED_PODS_HEADER =
  'NAME                           READY   STATUS    RESTARTS   AGE     IP               NODE            NOMINATED NODE   READINESS GATES';
const SEED_ROUTE_HEADER =
  'Kernel IP routing table\nDestination     Gateway         Genmask         Flags Metric Ref    Use Iface\n';

const run = promisify(execFile);

let lab: ComposeLab;
let pods: { name: string; ip: string; node: string }[];

beforeAll(async () => {
  lab = await startComposeLab('docker-compose.yml', 'ipip-lab-test-compose');
});

afterAll(async () => {
  await lab?.down();
});

const ok = (service: string, ...argv: string[]): Promise<string> => lab.ok(service, ...argv);

/** The pod's cali… interface, as the cluster names it. */
const hostInterfaceOf = async (pod: { name: string }): Promise<string> => {
  const all = JSON.parse(await ok('master-node', 'ipip-lab', 'get', 'pods', '-o', 'json')) as {
    name: string;
    hostInterface: string;
  }[];
  return all.find((candidate) => candidate.name === pod.name)!.hostInterface;
};

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

  test('bash greets with what the node is (the kernel dataplane) and what to try', async () => {
    const shell = await lab.exec('master-node', 'bash', '-ic', 'true');
    expect(shell.stdout).toContain('master-node is a node of a Kubernetes cluster running Calico in IPIP mode (kernel');
    expect(shell.stdout).toContain('kubectl get pods -o wide');
  });

  test("every agent runs the kernel dataplane: tunl0 is a TUN device, the container's own", async () => {
    for (const node of ['master-node', 'worker-node01', 'worker-node02']) {
      expect(await ok(node, 'cat', '/sys/class/net/tunl0/tun_flags')).toBe('0x1001\n'); // IFF_TUN | IFF_NO_PI
    }
  });
});

/** What the kernel dataplane makes on a node: namespaces, links (by name) and routes. */
const kernelState = async (node: string): Promise<{ namespaces: string[]; links: string[]; routes: string[] }> => ({
  namespaces: (await ok(node, 'ip', 'netns')).split('\n').filter(Boolean).sort(),
  links: (await ok(node, 'ip', '-o', 'link'))
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(': ')[1].split('@')[0])
    .sort(),
  routes: (await ok(node, 'ip', 'route')).split('\n').filter(Boolean).sort(),
});

/** A pod as `ipip-lab get pods -o json` lists it from the agents. */
interface LivePod {
  name: string;
  ip: string;
  node: string;
  netns: string;
  hostInterface: string;
}

/** Polls `check` every 200 ms until it holds or `withinMs` has passed; says which. */
async function waitFor(check: () => Promise<boolean>, withinMs: number): Promise<boolean> {
  const deadline = performance.now() + withinMs;
  while (performance.now() < deadline) {
    if (await check().catch(() => false)) return true;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return false;
}

const beforeApply = new Map<string, Awaited<ReturnType<typeof kernelState>>>();

describe('after kubectl apply -f deployment.yml', () => {
  beforeAll(async () => {
    for (const node of ['master-node', 'worker-node01', 'worker-node02'])
      beforeApply.set(node, await kernelState(node));
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

  test("the seed's PODNAME=$(kubectl get pods --selector=… -o jsonpath=…), then kubectl exec -it $PODNAME -- /bin/sh, ip addr, exit", async () => {
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
    // The course types the three lines into the pod's shell; here they come on the shell's standard input.
    const shell = await lab.exec(
      'master-node',
      'bash',
      '-c',
      `printf 'ip addr\\nip route\\nhostname\\nexit\\n' | kubectl exec -it ${name} -- /bin/sh`,
    );
    expect(shell.exitCode).toBe(0);
    const lines = shell.stdout.split('\n');
    expect(lines.find((line) => line.startsWith('2: eth0@'))).toMatch(
      /^2: eth0@if\d+: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1480 qdisc noqueue state UP group default qlen 1000$/,
    );
    expect(lines).toContain(`    inet ${pod.ip}/32 brd ${pod.ip} scope global eth0`);
    expect(lines).toContain('default via 169.254.1.1 dev eth0 ');
    expect(lines).toContain('169.254.1.1 dev eth0 scope link ');
    expect(lines).toContain(name);
    expect(shell.stdout).not.toContain('inet6');
    // The host side of the pod's veth: a cali… interface, with Calico's MAC.
    const host = await ok(pod.node, 'ip', '-d', 'link', 'show', await hostInterfaceOf(pod));
    expect(host).toMatch(/^\d+: cali[0-9a-f]{11}@if\d+: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1480 /);
    expect(host).toContain('link/ether ee:ee:ee:ee:ee:ee');
    expect(host).toContain('veth');
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

  test("net-tools' route on master-node: the seed's tunnel routes (UG via tunl0, node names) and its own block (U, *)", async () => {
    const text = await ok('master-node', 'route');
    expect(text.startsWith(SEED_ROUTE_HEADER)).toBe(true);
    const lines = text.split('\n');
    expect(lines).toContain('192.168.77.128  0.0.0.0         255.255.255.192 U     0      0        0 *');
    expect(lines).toContain('192.168.87.192  worker-node01   255.255.255.192 UG    0      0        0 tunl0');
    expect(lines).toContain('192.168.158.0   worker-node02   255.255.255.192 UG    0      0        0 tunl0');
    // The emulated view says the same.
    expect((await ok('master-node', 'ipip-lab', 'route')).split('\n')).toContain(
      '192.168.87.192  worker-node01   255.255.255.192 UG    0      0        0 tunl0',
    );
  });

  test('route on worker-node01 (and route -n): its pods as UH via their cali interfaces', async () => {
    const local = pods.filter((pod) => pod.node === 'worker-node01');
    const text = await ok('worker-node01', 'route');
    expect(text.split('\n')).toContain('192.168.77.128  master-node     255.255.255.192 UG    0      0        0 tunl0');
    for (const pod of local)
      expect(text).toMatch(
        new RegExp(
          `^${pod.ip.replace(/\./g, '\\.')} +0\\.0\\.0\\.0 +255\\.255\\.255\\.255 UH {4}0 {6}0 {8}0 cali[0-9a-f]{11}$`,
          'm',
        ),
      );
    expect((await ok('worker-node01', 'route', '-n')).split('\n')).toContain(
      '192.168.77.128  10.0.0.10       255.255.255.192 UG    0      0        0 tunl0',
    );
  });

  test("ip route on worker-node01: Calico's routes with proto bird onlink, the blackhole, the cali /32s", async () => {
    const lines = (await ok('worker-node01', 'ip', 'route')).split('\n');
    expect(lines).toContain('192.168.77.128/26 via 10.0.0.10 dev tunl0 proto bird onlink ');
    expect(lines).toContain('192.168.158.0/26 via 10.0.0.12 dev tunl0 proto bird onlink ');
    expect(lines).toContain('blackhole 192.168.87.192/26 proto bird ');
    for (const pod of pods.filter((p) => p.node === 'worker-node01')) {
      expect(lines).toContain(`${pod.ip} dev ${await hostInterfaceOf(pod)} scope link `);
    }
  });

  test('ip addr and ifconfig on worker-node01: tunl0 has the tunnel /32 and mtu 1480', async () => {
    const lines = (await ok('worker-node01', 'ip', 'addr', 'show', 'tunl0')).split('\n');
    expect(lines[0]).toMatch(/^\d+: tunl0: <POINTOPOINT,MULTICAST,NOARP,UP,LOWER_UP> mtu 1480 /);
    expect(lines).toContain('    inet 192.168.87.192/32 scope global tunl0');
    const ifconfig = await ok('worker-node01', 'ifconfig', 'tunl0');
    expect(ifconfig).toMatch(/^tunl0: flags=\d+<UP,POINTOPOINT,RUNNING,NOARP,MULTICAST> {2}mtu 1480\n/);
    expect(ifconfig).toContain('inet 192.168.87.192  netmask 255.255.255.255');
  });

  test('a pod on worker-node01 pings a pod on worker-node02 (ttl=62), curls its hello-app, traceroutes it; tcpdump on tunl0 sees it', async () => {
    const from = pods.find((pod) => pod.node === 'worker-node01')!;
    const to = pods.find((pod) => pod.node === 'worker-node02')!;
    const capture = lab.exec('worker-node02', 'timeout', '10', 'tcpdump', '-lni', 'tunl0', '-c', '2', 'icmp');
    // tcpdump needs a moment to attach before the first packet.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const ping = await ok('worker-node01', 'kubectl', 'exec', from.name, '--', 'ping', '-c', '3', '-i', '0.2', to.ip);
    expect(ping).toContain('3 packets transmitted, 3 received, 0% packet loss');
    expect(ping).toContain(`64 bytes from ${to.ip}: icmp_seq=1 ttl=62 `);
    const seen = await capture;
    expect(seen.stdout).toContain(`IP ${from.ip} > ${to.ip}: ICMP echo request`);
    expect(seen.stdout).toContain(`IP ${to.ip} > ${from.ip}: ICMP echo reply`);

    const curl = await ok('master-node', 'kubectl', 'exec', from.name, '--', 'curl', '-s', `http://${to.ip}:8080/`);
    expect(curl).toBe(`Hello, world!\nVersion: 1.0.0\nHostname: ${to.name}\n`);
    const trace = await ok('worker-node01', 'kubectl', 'exec', from.name, '--', 'traceroute', '-n', '-w', '2', to.ip);
    // The pod's own node, then the remote node's tunnel address (its tunl0 answers), then the pod.
    expect(trace.split('\n').map((line) => line.trim().split(/\s+/).slice(0, 2).join(' '))).toEqual(
      expect.arrayContaining(['1 10.0.0.11', '2 192.168.158.0', `3 ${to.ip}`]),
    );
  });

  test('from the master-node shell: ping, curl and traceroute reach a pod on a worker', async () => {
    const to = pods.find((pod) => pod.node === 'worker-node02')!;
    const ping = await ok('master-node', 'ping', '-c', '2', '-i', '0.2', to.ip);
    expect(ping).toContain('2 packets transmitted, 2 received, 0% packet loss');
    expect(ping).toContain('ttl=63');
    expect(await ok('master-node', 'curl', '-s', `http://${to.ip}:8080/`)).toContain(`Hostname: ${to.name}\n`);
    const trace = await ok('master-node', 'traceroute', '-n', '-w', '2', to.ip);
    expect(trace).toMatch(new RegExp(`^ 2  ${to.ip.replace(/\./g, '\\.')} `, 'm'));
    // The packets went through tunl0: its counters moved.
    expect(await ok('master-node', 'ifconfig', 'tunl0')).not.toContain('TX packets 0 ');
  });

  test('an agent killed with SIGKILL comes back with the same namespaces, cali links and routes, and traffic resumes within 5 s', async () => {
    const before = await kernelState('worker-node01');
    expect(before.namespaces).toHaveLength(pods.filter((pod) => pod.node === 'worker-node01').length);
    const container = 'ipip-lab-test-compose-worker-node01-1';
    const inspect = async (format: string): Promise<string> =>
      (await run('docker', ['inspect', '-f', format, container])).stdout.trim();
    const restarts = Number(await inspect('{{.RestartCount}}'));
    // A crash, not a stop: the agent's process dies from the host, and the restart policy brings the node back.
    process.kill(Number(await inspect('{{.State.Pid}}')), 'SIGKILL');
    const back = await waitFor(
      async () =>
        Number(await inspect('{{.RestartCount}}')) > restarts &&
        (await inspect('{{.State.Health.Status}}')) === 'healthy',
      30_000,
    );
    expect(back).toBe(true);
    const target = pods.find((pod) => pod.node === 'worker-node01')!;
    const resumed = await waitFor(
      async () => (await lab.exec('master-node', 'ping', '-c', '1', '-W', '1', target.ip)).exitCode === 0,
      5_000,
    );
    expect(resumed).toBe(true);
    expect(await kernelState('worker-node01')).toEqual(before);
  });

  test('kubectl scale 3 → 30 → 3: every node has its pods and routes when the command returns, and every pod reaches every other', async () => {
    for (const replicas of [30, 3]) {
      const timed = await ok(
        'master-node',
        'bash',
        '-c',
        `a=$(date +%s%N); kubectl scale deployment hello-world --replicas=${replicas}; b=$(date +%s%N); echo "$(( (b - a) / 1000000 ))"`,
      );
      const returned = performance.now();
      const workers = ['worker-node01', 'worker-node02'];
      const look = () => Promise.all(workers.map(kernelState));
      const firstLook = await look();
      const lookMs = Math.round(performance.now() - returned);
      const [said, commandMs] = timed.trimEnd().split('\n');
      expect(said).toBe('deployment.apps/hello-world scaled');
      const scaled = JSON.parse(await ok('master-node', 'ipip-lab', 'get', 'pods', '-o', 'json')) as LivePod[];
      expect(scaled).toHaveLength(replicas);
      expect(new Set(scaled.map((pod) => pod.ip)).size).toBe(replicas);
      // Converged: on each worker exactly its pods' namespaces and cali /32 routes, in the kernel.
      const inPlace = (states: Awaited<ReturnType<typeof kernelState>>[]) =>
        states.every((state, index) => {
          const here = scaled.filter((pod) => pod.node === workers[index]);
          const caliRoutes = state.routes.filter((line) => / dev cali/.test(line)).map((line) => line.trim());
          return (
            isDeepStrictEqual(
              state.namespaces.map((line) => line.split(' ')[0]),
              here.map((pod) => pod.netns).sort(),
            ) &&
            isDeepStrictEqual(caliRoutes, here.map((pod) => `${pod.ip} dev ${pod.hostInterface} scope link`).sort())
          );
        });
      const atFirstLook = inPlace(firstLook);
      if (!atFirstLook) expect(await waitFor(async () => inPlace(await look()), 30_000)).toBe(true);
      console.log(
        `kubectl scale --replicas=${replicas}: the command took ${commandMs} ms; ` +
          (atFirstLook
            ? `every worker's namespaces and cali routes were in place at the first look, ${lookMs} ms after it returned`
            : `every worker's namespaces and cali routes were in place ${Math.round(performance.now() - returned)} ms after it returned`),
      );
      // Behind the dataplane, each node's agent records its pods in etcd as the CNI plugin does: one WorkloadEndpoint
      // and one address handle per pod.
      const keys = async (prefix: string) =>
        (await ok('master-node', 'etcdctl', 'get', '--prefix', prefix, '--keys-only')).split('\n').filter(Boolean);
      const recorded = async () =>
        (await keys('/calico/resources/v3/projectcalico.org/workloadendpoints/default/')).length === replicas &&
        (await keys('/calico/ipam/v2/handle/k8s-pod-network.')).length === replicas;
      expect(await waitFor(recorded, 15_000)).toBe(true);
      // All pairs: each pod pings every other pod once, from its own namespace.
      const failures = await Promise.all(
        scaled.map(async (from) => {
          const targets = scaled.filter((to) => to !== from).map((to) => to.ip);
          const script = `for ip in ${targets.join(' ')}; do ip netns exec ${from.netns} ping -c 1 -W 1 -q $ip >/dev/null || echo "$ip"; done`;
          const missed = (await ok(from.node, 'sh', '-c', script)).split('\n').filter(Boolean);
          return missed.map((ip) => `${from.name} → ${ip}`);
        }),
      );
      expect(failures.flat()).toEqual([]);
    }
  });

  test('kubectl delete -f deployment.yml removes the pods and their routes everywhere', async () => {
    expect(await ok('master-node', 'kubectl', 'delete', '-f', 'deployment.yml')).toBe(
      'deployment.apps "hello-world" deleted\n',
    );
    expect((await lab.exec('worker-node01', 'kubectl', 'get', 'pods')).stderr).toBe(
      'No resources found in default namespace.\n',
    );
    expect(await ok('worker-node01', 'ipip-lab', 'route')).not.toContain('cali');
    // The kernel's side went too: every node is as it was before the Deployment.
    for (const node of ['master-node', 'worker-node01', 'worker-node02']) {
      expect(await kernelState(node)).toEqual(beforeApply.get(node));
    }
  });
});

test('docker compose down takes under 5 s and leaves nothing behind', async () => {
  const downMs = await lab.down();
  expect(downMs).toBeLessThan(5_000);
  expect(await lab.leftovers()).toEqual([]);
});

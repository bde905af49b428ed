import { describe, expect, it } from 'vitest';
import { loadCluster } from '../../src/cli/cluster-source.js';
import { Ipv4Prefix } from '../../src/routing/address.js';
import { cli, SEED_CNI_OVERVIEW, SEED_NETWORKING } from '../support/cli.js';

// Header lines copied from the seed walkthroughs (real kubectl output).
const SEED_GET_PODS_HEADER =
  'NAME                           READY   STATUS    RESTARTS   AGE     IP               NODE            NOMINATED NODE   READINESS GATES';

describe('get pods -o wide from the first seed spec', () => {
  it("prints kubectl's columns with 3 hello-world pods on the workers, inside their /26 blocks", async () => {
    const result = await cli('get', 'pods', '-o', 'wide', '--spec', SEED_CNI_OVERVIEW);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const [header, ...rows] = result.stdout.trimEnd().split('\n');
    expect(header.split(/\s{2,}/)).toEqual(SEED_GET_PODS_HEADER.split(/\s{2,}/));
    expect(rows).toHaveLength(3);
    const nodes = JSON.parse((await cli('get', 'nodes', '-o', 'json', '--spec', SEED_CNI_OVERVIEW)).stdout) as {
      name: string;
      blocks: string[];
    }[];
    for (const row of rows) {
      const [name, ready, status, , , ip, node, nominated, gates] = row.split(/\s+/);
      expect(name).toMatch(/^hello-world-[bcdfghjklmnpqrstvwxz2456789]+-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
      expect([ready, status, nominated, gates]).toEqual(['1/1', 'Running', '<none>', '<none>']);
      expect(node).toMatch(/^worker-node0[12]$/);
      const blocks = nodes.find((n) => n.name === node)!.blocks.map((b) => Ipv4Prefix.parse(b));
      expect(blocks.some((b) => b.contains(Ipv4Prefix.parse(ip).address))).toBe(true);
    }
    // Columns line up as kubectl's tabwriter does: each column starts where the header's does.
    const ipColumn = header.indexOf('IP ');
    for (const row of rows) expect(row.slice(ipColumn)).toMatch(/^192\.168\./);
  });

  it('gives the same output on every run (deterministic cluster state)', async () => {
    const a = await cli('get', 'pods', '-o', 'json', '--spec', SEED_CNI_OVERVIEW);
    const b = await cli('get', 'pods', '-o', 'json', '--spec', SEED_CNI_OVERVIEW);
    expect(a.stdout).toBe(b.stdout);
  });
});

describe('get nodes -o wide', () => {
  it("prints kubectl's wide columns, byte for byte in the header", async () => {
    const result = await cli('get', 'nodes', '-o', 'wide', '--spec', SEED_CNI_OVERVIEW);
    expect(result.code).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines[0].split(/\s{2,}/)).toEqual([
      'NAME',
      'STATUS',
      'ROLES',
      'AGE',
      'VERSION',
      'INTERNAL-IP',
      'EXTERNAL-IP',
      'OS-IMAGE',
      'KERNEL-VERSION',
      'CONTAINER-RUNTIME',
    ]);
    expect(lines[0].startsWith('NAME            STATUS   ROLES                  AGE')).toBe(true);
    expect(lines[1]).toMatch(
      /^master-node {5}Ready {4}control-plane,master {3}<unknown> {3}v1\.21\.4 {3}10\.0\.0\.10 {5}<none> {8}Debian/,
    );
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(['master-node', 'worker-node01', 'worker-node02']);
  });
});

describe('route --node', () => {
  it("prints the seed's shape on master-node: UG via tunl0 to each worker's block, U * for its own", async () => {
    const result = await cli('route', '--node', 'master-node', '--spec', SEED_CNI_OVERVIEW);
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toBe('Kernel IP routing table');
    expect(lines[1]).toBe('Destination     Gateway         Genmask         Flags Metric Ref    Use Iface');
    // Lines as the seed walkthrough shows them on the real master-node.
    expect(lines).toContain('192.168.77.128  0.0.0.0         255.255.255.192 U     0      0        0 *');
    expect(lines).toContain('192.168.87.192  worker-node01   255.255.255.192 UG    0      0        0 tunl0');
    expect(lines).toContain('192.168.158.0   worker-node02   255.255.255.192 UG    0      0        0 tunl0');
  });

  it('route -n prints gateway addresses', async () => {
    const result = await cli('route', '-n', '--node', 'worker-node01', '--spec', SEED_CNI_OVERVIEW);
    expect(result.stdout).toContain('192.168.77.128  10.0.0.10       255.255.255.192 UG    0      0        0 tunl0\n');
    expect(result.stdout).toContain('192.168.87.192  0.0.0.0         255.255.255.192 U     0      0        0 *\n');
    expect(result.stdout).toMatch(/\n192\.168\.87\.\d+ +0\.0\.0\.0 +255\.255\.255\.255 UH +0 +0 +0 cali[0-9a-f]{11}\n/);
  });

  it('truncates gateway names to 15 characters as net-tools does (second seed)', async () => {
    const result = await cli('route', '--node', 'networking-control-plane', '--spec', SEED_NETWORKING);
    expect(result.stdout).toContain('192.168.223.128 0.0.0.0         255.255.255.192 U     0      0        0 *\n');
    expect(result.stdout).toMatch(/ networking-work 255\.255\.255\.192 UG {4}0 {6}0 {8}0 tunl0\n/);
  });
});

describe('ip addr and ip route', () => {
  it("shows tunl0 as the seed's master-node does", async () => {
    const result = await cli('ip', 'addr', '--node', 'master-node', '--spec', SEED_CNI_OVERVIEW);
    expect(result.stdout).toMatch(
      /\n2: tunl0@NONE: <NOARP,UP,LOWER_UP> mtu 1480 qdisc noqueue state UNKNOWN group default qlen 1000\n {4}link\/ipip 0\.0\.0\.0 brd 0\.0\.0\.0\n {4}inet 192\.168\.77\.128\/32 scope global tunl0\n {7}valid_lft forever preferred_lft forever\n/,
    );
  });

  it("prints Calico's routes in iproute2's form", async () => {
    const result = await cli('ip', 'route', '--node', 'master-node', '--spec', SEED_CNI_OVERVIEW);
    expect(result.stdout).toContain('10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.10 \n');
    expect(result.stdout).toContain('blackhole 192.168.77.128/26 proto bird \n');
    expect(result.stdout).toContain('192.168.87.192/26 via 10.0.0.11 dev tunl0 proto bird onlink \n');
  });

  it('-o json gives the routes as objects', async () => {
    const result = await cli('ip', 'route', '-o', 'json', '--node', 'worker-node02', '--spec', SEED_CNI_OVERVIEW);
    const routes = JSON.parse(result.stdout) as { kind: string; destination: string; gateway?: string; dev?: string }[];
    expect(routes).toContainEqual(expect.objectContaining({ kind: 'blackhole', destination: '192.168.158.0/26' }));
    expect(routes).toContainEqual(
      expect.objectContaining({ destination: '192.168.77.128/26', gateway: '10.0.0.10', dev: 'tunl0' }),
    );
  });
});

describe('exec POD -- ip addr | ip route', () => {
  it("shows the pod's /32 eth0 and Calico's link-local default route", async () => {
    const pods = JSON.parse((await cli('get', 'pods', '-o', 'json', '--spec', SEED_CNI_OVERVIEW)).stdout) as {
      name: string;
      ip: string;
    }[];
    const pod = pods[0];
    const addr = await cli('exec', '--spec', SEED_CNI_OVERVIEW, pod.name, '--', 'ip', 'addr');
    expect(addr.code).toBe(0);
    expect(addr.stdout).toContain('2: tunl0@NONE: <NOARP> mtu 1480 qdisc noop state DOWN qlen 1000\n');
    expect(addr.stdout).toContain(`    inet ${pod.ip}/32 brd ${pod.ip} scope global eth0\n`);
    const route = await cli('exec', '--spec', SEED_CNI_OVERVIEW, pod.name, '--', 'ip', 'route');
    expect(route.stdout).toBe('default via 169.254.1.1 dev eth0 \n169.254.1.1 dev eth0 scope link \n');
  });
});

describe('errors', () => {
  it('a missing spec is a one-line usage error with exit code 2', async () => {
    const result = await cli('get', 'pods', '--spec', '/nonexistent/cluster.yaml');
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^ipip-lab: cannot read spec \/nonexistent\/cluster\.yaml/);
  });

  it('an unknown node names the nodes there are', async () => {
    const result = await cli('route', '--node', 'nope', '--spec', SEED_CNI_OVERVIEW);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('master-node, worker-node01, worker-node02');
  });

  it('an unsupported exec command in a pod of the spec (the userspace view) lists what is supported', async () => {
    const [pod] = loadCluster(SEED_CNI_OVERVIEW).pods;
    const result = await cli('exec', '--spec', SEED_CNI_OVERVIEW, pod.name, '--', 'ls');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('supported: ip addr, ip route');
    const unknown = await cli('exec', '--spec', SEED_CNI_OVERVIEW, 'x', '--', 'ip', 'addr');
    expect(unknown.stderr).toContain('pods "x" not found');
  });
});

describe('route order', () => {
  it("lists destinations in the kernel's order, ascending, as the seed's route does", async () => {
    const result = await cli('route', '-n', '--node', 'master-node', '--spec', SEED_CNI_OVERVIEW);
    const destinations = result.stdout
      .split('\n')
      .slice(2, -1)
      .map((line) => line.split(/\s+/)[0]);
    expect(destinations).toEqual(['10.0.0.0', '192.168.77.128', '192.168.87.192', '192.168.158.0']);
  });
});

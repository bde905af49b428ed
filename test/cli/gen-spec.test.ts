import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { generateSpec } from '../../src/calico/index.js';
import { composeFileFor } from '../../src/cli/commands/gen-spec-compose.js';
import { Ipv4Address } from '../../src/routing/address.js';
import { cli, REPO_ROOT } from '../support/cli.js';

let folder: string;

beforeEach(() => {
  folder = mkdtempSync(path.join(tmpdir(), 'ipip-lab-gen-spec-'));
});

afterEach(() => {
  rmSync(folder, { recursive: true, force: true });
});

interface ComposeService {
  hostname: string;
  command: string[];
  image: string;
  build?: { context: string; dockerfile: string };
  networks: Record<string, { ipv4_address: string }>;
  volumes: ({ type: string; source: string; target: string } & Record<string, unknown>)[];
  healthcheck: { test: string[]; interval: string };
}

interface ComposeFile {
  name: string;
  services: Record<string, ComposeService>;
  networks: Record<string, { internal: boolean; ipam: { config: { subnet: string }[] } }>;
  volumes: Record<string, unknown>;
}

describe('ipip-lab gen-spec', () => {
  it('prints the spec on standard output, headed by the full command that makes it again', async () => {
    const result = await cli('gen-spec', '--nodes', '4', '--pods-per-node', '2');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const [first, ...rest] = result.stdout.split('\n');
    expect(first).toBe(
      '# Made by: ipip-lab gen-spec --nodes 4 --pods-per-node 2 --name kind --cidr 10.10.0.0/24 --pool 192.168.0.0/16',
    );
    expect(rest.join('\n')).toBe(generateSpec({ nodes: 4, podsPerNode: 2 }).text);
  });

  it('writes a spec the other commands read: get pods shows pods-per-node pods on every node', async () => {
    const spec = path.join(folder, 'lab.yaml');
    const made = await cli(
      'gen-spec',
      '--nodes',
      '5',
      '--pods-per-node',
      '3',
      '--name',
      'demo',
      '--cidr',
      '10.41.0.0/24',
      '-o',
      spec,
    );
    expect(made).toEqual({ code: 0, stdout: '', stderr: '' });
    const pods = JSON.parse((await cli('get', 'pods', '-o', 'json', '--spec', spec)).stdout) as { node: string }[];
    const perNode = new Map<string, number>();
    for (const pod of pods) perNode.set(pod.node, (perNode.get(pod.node) ?? 0) + 1);
    expect(Object.fromEntries(perNode)).toEqual({
      'demo-control-plane': 3,
      'demo-worker': 3,
      'demo-worker2': 3,
      'demo-worker3': 3,
      'demo-worker4': 3,
    });
    const nodes = JSON.parse((await cli('get', 'nodes', '-o', 'json', '--spec', spec)).stdout) as { ip: string }[];
    expect(nodes.map((node) => node.ip)).toEqual(['10.41.0.2', '10.41.0.3', '10.41.0.4', '10.41.0.5', '10.41.0.6']);
  });

  it('explains itself in --help: the names, the spread, the limits and an example', async () => {
    const result = await cli('gen-spec', '--help');
    expect(result.code).toBe(0);
    for (const text of [
      '--nodes <n>',
      '--pods-per-node <n>',
      '"10.10.0.0/24"',
      'kind-control-plane',
      'max-pods',
      '--compose',
    ]) {
      expect(result.stdout).toContain(text);
    }
  });

  it.each([
    [['--pods-per-node', '2'], /required option '--nodes <n>' not specified/],
    [['--nodes', 'many'], /--nodes <n>' argument 'many' is invalid\. expected a whole number/],
    [['--nodes', '-3'], /expected a whole number/],
    [['--nodes', '0'], /gen-spec: --nodes: 0: a cluster needs at least one node/],
    [
      ['--nodes', '3', '--pods-per-node', '200'],
      /gen-spec: --pods-per-node: 200 is more than kubelet's default --max-pods \(110\)/,
    ],
    [
      ['--nodes', '50', '--cidr', '10.41.0.0/27'],
      /gen-spec: --cidr: 10\.41\.0\.0\/27 has room for 29 node\(s\).*e\.g\. 10\.41\.0\.0\/26/,
    ],
    [['--nodes', '3', '--pool', '10.10.0.0/16'], /gen-spec: --pool: 10\.10\.0\.0\/16 overlaps the node network/],
    [['--nodes', '3', '--name', 'My_Lab'], /gen-spec: --name: "My_Lab" is not a DNS-1123 label/],
    [['--nodes', '3', '--compose', 'lab.compose.yml'], /--compose needs -o FILE too/],
    [['--nodes', '3', '-o', 'lab.yml', '--compose', './lab.yml'], /--compose and -o name the same file/],
    [['--nodes', '3', '--swarm', 'lab.stack.yml'], /--swarm needs -o FILE too/],
    [['--nodes', '3', '-o', 'lab.yml', '--datastore'], /--datastore shapes the Compose file: it needs --compose/],
    [['--nodes', '3', '-o', 'l.yml', '--swarm', 's.yml', '--compose', 'c.yml'], /--compose and --swarm: choose one/],
  ])('gen-spec %j exits 2 with a one-line reason', async (args, message) => {
    const result = await cli('gen-spec', ...args);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
  });

  it('says which file it cannot write', async () => {
    const result = await cli('gen-spec', '--nodes', '2', '-o', path.join(folder, 'missing', 'lab.yaml'));
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/cannot write .*missing\/lab\.yaml: ENOENT/);
  });
});

describe('ipip-lab gen-spec --compose', () => {
  async function generate(
    nodes: number,
    specName: string,
    composeName: string,
  ): Promise<{ compose: ComposeFile; composePath: string; specPath: string }> {
    const specPath = path.join(folder, specName);
    const composePath = path.join(folder, composeName);
    const result = await cli(
      'gen-spec',
      '--nodes',
      String(nodes),
      '--pods-per-node',
      '2',
      '--cidr',
      '10.41.0.0/24',
      '-o',
      specPath,
      '--compose',
      composePath,
    );
    expect(result).toEqual({ code: 0, stdout: '', stderr: '' });
    // Compose resolves `<<: *node` merge keys, so the test does too.
    return { compose: parse(readFileSync(composePath, 'utf8'), { merge: true }) as ComposeFile, composePath, specPath };
  }

  it('runs one service per node, pinned to its spec address on an internal network with the spec subnet', async () => {
    const { compose, specPath } = await generate(5, 'lab.yaml', 'lab.compose.yml');
    const spec = generateSpec({ nodes: 5, podsPerNode: 2, networkCidr: '10.41.0.0/24' }).spec;
    expect(compose.name).toBe('ipip-lab-kind');
    expect(compose.networks).toEqual({ lab: { internal: true, ipam: { config: [{ subnet: '10.41.0.0/24' }] } } });
    expect(Object.keys(compose.services)).toEqual(spec.nodes.map((node) => node.name));
    for (const node of spec.nodes) {
      const service = compose.services[node.name];
      expect(service.hostname).toBe(node.name);
      expect(service.command).toEqual(['node', '--name', node.name]);
      expect(service.networks).toEqual({ lab: { ipv4_address: node.ip.toString() } });
      expect(service.image).toBe('ipip-lab-node:dev');
      const seed = service.volumes.find((volume) => volume.target === '/etc/ipip-lab-seed.yaml');
      expect(seed).toMatchObject({ type: 'bind', read_only: true });
      expect(path.resolve(folder, seed!.source)).toBe(specPath);
      expect(service.volumes).toContainEqual({
        type: 'volume',
        source: 'spec',
        target: '/etc/ipip-lab',
        volume: { nocopy: true },
      });
    }
    expect(compose.volumes).toEqual({ spec: null });
  });

  it('builds the node image once, from this repository, in the first service only', async () => {
    const { compose } = await generate(3, 'lab.yaml', 'lab.compose.yml');
    const [first, ...others] = Object.values(compose.services);
    expect(first.build?.dockerfile).toBe('containers/Dockerfile');
    expect(path.resolve(folder, first.build!.context)).toBe(path.resolve(REPO_ROOT));
    expect(existsSync(path.join(folder, first.build!.context, first.build!.dockerfile))).toBe(true);
    expect(others.every((service) => service.build === undefined)).toBe(true);
  });

  it('refers to the spec and the repository by paths relative to the Compose file, wherever each is written', async () => {
    mkdirSync(path.join(folder, 'specs'));
    mkdirSync(path.join(folder, 'compose'));
    const { compose } = await generate(2, 'specs/lab.yaml', 'compose/lab.compose.yml');
    const first = Object.values(compose.services)[0];
    const seed = first.volumes.find((volume) => volume.target === '/etc/ipip-lab-seed.yaml');
    expect(seed?.source).toBe('../specs/lab.yaml');
    expect(path.resolve(folder, 'compose', first.build!.context)).toBe(path.resolve(REPO_ROOT));
  });
});

describe('ipip-lab gen-spec --compose --datastore', () => {
  it("writes the lab as kind create cluster runs it: an etcd at the network's last host, every agent pointed at it", async () => {
    const composePath = path.join(folder, 'lab.compose.yml');
    const args = [
      '--nodes',
      '3',
      '--cidr',
      '10.57.0.0/24',
      '-o',
      path.join(folder, 'lab.yaml'),
      '--compose',
      composePath,
    ];
    expect(await cli('gen-spec', ...args, '--datastore')).toEqual({ code: 0, stdout: '', stderr: '' });
    const compose = parse(readFileSync(composePath, 'utf8'), { merge: true }) as {
      services: Record<string, { environment?: Record<string, string>; cap_add?: string[]; networks?: unknown }>;
    };
    expect(compose.services.etcd.networks).toEqual({ lab: { ipv4_address: '10.57.0.254' } });
    expect(compose.services['kind-worker2'].environment).toMatchObject({
      IPIP_LAB_DATASTORE: 'http://10.57.0.254:2379',
    });
    expect(compose.services['kind-worker2'].cap_add).toEqual(['NET_ADMIN', 'SYS_ADMIN']);
    expect(readFileSync(composePath, 'utf8')).toMatch(/Made by:\n# {3}ipip-lab gen-spec .* --datastore\n/);
  });
});

describe('the Compose file of a kind create cluster lab (kernel dataplane, etcd)', () => {
  it('gives every node the kernel dataplane and the datastore, and runs etcd at the address it names', () => {
    const { spec } = generateSpec({ nodes: 3, podsPerNode: 0, name: 'lab', networkCidr: '172.18.0.0/16' });
    const datastore = Ipv4Address.parse('172.18.255.254');
    const file = parse(
      composeFileFor(
        spec,
        { specFile: './cluster.yaml', buildContext: '/src', command: 'x', controlPlane: { datastore } },
        'c.yml',
      ),
      { merge: true },
    ) as {
      services: Record<string, Record<string, unknown>>;
      volumes: Record<string, unknown>;
    };
    expect(Object.keys(file.services)).toEqual(['lab-control-plane', 'lab-worker', 'lab-worker2', 'etcd']);
    const node = file.services['lab-worker'];
    expect(node.cap_add).toEqual(['NET_ADMIN', 'SYS_ADMIN']);
    expect(node.devices).toEqual(['/dev/net/tun']);
    expect(node.environment).toMatchObject({
      IPIP_LAB_DATASTORE: 'http://172.18.255.254:2379',
      ETCDCTL_ENDPOINTS: 'http://172.18.255.254:2379',
    });
    expect(file.services.etcd).toMatchObject({
      image: 'ipip-lab-node:dev',
      networks: { lab: { ipv4_address: '172.18.255.254' } },
      volumes: ['etcd:/var/lib/etcd'],
    });
    expect(file.services.etcd.entrypoint).toContain('--advertise-client-urls=http://172.18.255.254:2379');
    expect(Object.keys(file.volumes)).toEqual(['spec', 'etcd']);
    // Without it: a large lab's userspace nodes, no etcd.
    const large = parse(composeFileFor(spec, { specFile: './s.yaml', buildContext: '/src', command: 'x' }, 'c.yml'), {
      merge: true,
    }) as {
      services: Record<string, Record<string, unknown>>;
    };
    expect(Object.keys(large.services)).not.toContain('etcd');
    expect(large.services['lab-worker'].cap_add).toEqual(['NET_ADMIN']);
  });
});

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import {
  parseDeployments,
  parseSpec,
  SpecError,
  underlayRouter,
  underlaySubnet,
  type ClusterSpec,
} from '../../src/calico/spec.js';

const DEPLOYMENT_YML = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello-world
spec:
  replicas: 3
  selector:
    matchLabels:
      app: hello-world
  template:
    metadata:
      labels:
        app: hello-world
    spec:
      containers:
      - name: hello-world
        image: gcr.io/google-samples/hello-app:1.0
        ports:
        - containerPort: 8080
`;

const SEED_SPEC = `apiVersion: ipip-lab/v1alpha1
kind: Cluster
metadata:
  name: cni-overview
kubernetesVersion: v1.21.4
network:
  cidr: 10.0.0.0/24
  mtu: 1500
clusterCIDR: 192.168.0.0/16
pool:
  name: default-ipv4-ippool
  cidr: 192.168.0.0/16
  blockSize: 26
  ipipMode: Always
nodes:
  - name: master-node
    ip: 10.0.0.10
    role: control-plane
  - name: worker-node01
    ip: 10.0.0.11
    role: worker
  - name: worker-node02
    ip: 10.0.0.12
    role: worker
workloads:
  - file: deployment.yml
  - apiVersion: apps/v1
    kind: Deployment
    metadata: { name: web, namespace: default }
    spec: { replicas: 2, selector: { matchLabels: { app: web } }, template: { metadata: { labels: { app: web } }, spec: { containers: [ { name: web, image: nginx, ports: [ { containerPort: 80 } ] } ] } } }
`;

type Files = Record<string, string>;

function parse(text: string, files: Files = { 'deployment.yml': DEPLOYMENT_YML }): ClusterSpec {
  return parseSpec(text, {
    source: 'cluster.yaml',
    readFile: (relative) => {
      if (!(relative in files)) throw new Error(`ENOENT: no such file, open '${relative}'`);
      return files[relative];
    },
  });
}

/** The seed spec as plain data, changed by `edit` and written back as YAML. */
function seedWith(edit: (spec: any) => void): string {
  const spec = parseYaml(SEED_SPEC);
  edit(spec);
  return stringifyYaml(spec);
}

function specError(run: () => unknown): SpecError {
  try {
    run();
  } catch (error) {
    if (error instanceof SpecError) return error;
    throw error;
  }
  throw new Error('expected a SpecError');
}

/** The spec is rejected at `field`, and the message names the field and every fragment (the value, the reason). */
function expectRejected(text: string, field: string, fragments: string[], files?: Files): void {
  const error = specError(() => parse(text, files));
  expect(error.field).toBe(field);
  expect(error.message).toContain(`${field}: `);
  for (const fragment of fragments) expect(error.message).toContain(fragment);
}

describe('parseSpec', () => {
  it('reads the seed spec into typed values', () => {
    const spec = parse(SEED_SPEC);
    expect(spec.name).toBe('cni-overview');
    expect(spec.kubernetesVersion).toBe('v1.21.4');
    expect(spec.network.cidr.toString()).toBe('10.0.0.0/24');
    expect(spec.network.mtu).toBe(1500);
    expect(spec.clusterCIDR.toString()).toBe('192.168.0.0/16');
    expect(spec.pool).toMatchObject({ name: 'default-ipv4-ippool', blockSize: 26, ipipMode: 'Always' });
    expect(spec.pool.cidr.toString()).toBe('192.168.0.0/16');
    expect(spec.nodes.map((n) => [n.name, n.ip.toString(), n.role])).toEqual([
      ['master-node', '10.0.0.10', 'control-plane'],
      ['worker-node01', '10.0.0.11', 'worker'],
      ['worker-node02', '10.0.0.12', 'worker'],
    ]);
    const [hello, web] = spec.workloads;
    expect(hello).toMatchObject({ name: 'hello-world', namespace: 'default', replicas: 3 });
    expect(hello.template.labels).toEqual({ app: 'hello-world' });
    expect(hello.template.containers).toEqual([
      {
        name: 'hello-world',
        image: 'gcr.io/google-samples/hello-app:1.0',
        ports: [{ containerPort: 8080, protocol: 'TCP' }],
      },
    ]);
    expect(hello.template.tolerations).toEqual([]);
    expect(hello.template.raw).toEqual(parseYaml(DEPLOYMENT_YML).spec.template);
    expect(web).toMatchObject({ name: 'web', namespace: 'default', replicas: 2 });
  });

  it('fills in the documented defaults', () => {
    const spec = parse(
      seedWith((s) => {
        delete s.kubernetesVersion;
        delete s.network.mtu;
        delete s.clusterCIDR;
        delete s.pool.name;
        delete s.pool.blockSize;
        delete s.workloads[1].spec.replicas;
        delete s.workloads[1].metadata.namespace;
      }),
    );
    expect(spec.kubernetesVersion).toBe('v1.21.4');
    expect(spec.network.mtu).toBe(1500);
    expect(spec.clusterCIDR.toString()).toBe('192.168.0.0/16');
    expect(spec.pool.name).toBe('default-ipv4-ippool');
    expect(spec.pool.blockSize).toBe(26);
    expect(spec.workloads[1]).toMatchObject({ namespace: 'default', replicas: 1 });
  });

  it('accepts a spec without workloads', () => {
    expect(parse(seedWith((s) => delete s.workloads)).workloads).toEqual([]);
  });

  it('tolerates Deployment fields it does not model', () => {
    const spec = parse(
      seedWith((s) => {
        s.workloads[1].metadata.labels = { tier: 'front' };
        s.workloads[1].spec.strategy = { type: 'RollingUpdate' };
        s.workloads[1].spec.template.spec.containers[0].resources = { limits: { cpu: '100m' } };
        s.workloads[1].spec.template.spec.restartPolicy = 'Always';
      }),
    );
    expect(spec.workloads[1].name).toBe('web');
  });

  it('parses the lab specs shipped in containers/', () => {
    for (const lab of ['cni-overview', 'networking']) {
      const file = path.resolve('containers', lab, 'cluster.yaml');
      const spec = parseSpec(readFileSync(file, 'utf8'), {
        source: file,
        readFile: (relative) => readFileSync(path.resolve(path.dirname(file), relative), 'utf8'),
      });
      expect(spec.name).toBe(lab);
      expect(spec.workloads.map((w) => w.name)).toEqual(['hello-world']);
    }
  });

  it('reads workload files with several documents and skips empty ones', () => {
    const second = DEPLOYMENT_YML.replace('name: hello-world\nspec', 'name: hello-again\nspec');
    const spec = parse(
      seedWith((s) => (s.workloads = [{ file: 'all.yml' }])),
      {
        'all.yml': `---\n${DEPLOYMENT_YML}---\n${second}---\n`,
      },
    );
    expect(spec.workloads.map((w) => w.name)).toEqual(['hello-world', 'hello-again']);
  });

  describe('rejects', () => {
    it('text that is not YAML, or empty', () => {
      const error = specError(() => parse('nodes: [\n'));
      expect(error.field).toBe('');
      expect(error.message).toMatch(/^cluster\.yaml: invalid YAML: .*line/);
      expect(specError(() => parse('')).message).toBe('cluster.yaml: is empty');
    });

    it('a wrong apiVersion or kind', () => {
      expectRejected(
        seedWith((s) => (s.apiVersion = 'v1')),
        'apiVersion',
        ['"v1"', 'ipip-lab/v1alpha1'],
      );
      expectRejected(
        seedWith((s) => (s.kind = 'Config')),
        'kind',
        ['"Config"', 'Cluster'],
      );
    });

    it('unknown fields at every level of the spec', () => {
      expectRejected(
        seedWith((s) => (s.workload = [])),
        'workload',
        ['unknown field'],
      );
      expectRejected(
        seedWith((s) => (s.metadata.labels = {})),
        'metadata.labels',
        ['unknown field'],
      );
      expectRejected(
        seedWith((s) => (s.network.gateway = '10.0.0.1')),
        'network.gateway',
        ['unknown field', 'cidr, mtu'],
      );
      expectRejected(
        seedWith((s) => (s.pool.natOutgoing = true)),
        'pool.natOutgoing',
        ['unknown field'],
      );
      expectRejected(
        seedWith((s) => (s.nodes[2].zone = 'a')),
        'nodes[2].zone',
        ['unknown field'],
      );
      expectRejected(
        seedWith((s) => (s.workloads[0].namespace = 'x')),
        'workloads[0].namespace',
        ['unknown field'],
      );
    });

    it('missing required fields', () => {
      const cases: [(s: any) => void, string][] = [
        [(s) => delete s.apiVersion, 'apiVersion'],
        [(s) => delete s.kind, 'kind'],
        [(s) => delete s.metadata, 'metadata'],
        [(s) => (s.metadata = {}), 'metadata.name'],
        [(s) => delete s.network, 'network'],
        [(s) => delete s.network.cidr, 'network.cidr'],
        [(s) => delete s.pool, 'pool'],
        [(s) => delete s.pool.cidr, 'pool.cidr'],
        [(s) => delete s.pool.ipipMode, 'pool.ipipMode'],
        [(s) => delete s.nodes, 'nodes'],
        [(s) => delete s.nodes[1].name, 'nodes[1].name'],
        [(s) => delete s.nodes[1].ip, 'nodes[1].ip'],
        [(s) => (s.nodes[1].ip = null), 'nodes[1].ip'],
        [(s) => delete s.nodes[1].role, 'nodes[1].role'],
        [(s) => delete s.workloads[1].metadata.name, 'workloads[1].metadata.name'],
        [(s) => delete s.workloads[1].spec.selector, 'workloads[1].spec.selector'],
        [(s) => delete s.workloads[1].spec.template, 'workloads[1].spec.template'],
        [
          (s) => delete s.workloads[1].spec.template.spec.containers[0].image,
          'workloads[1].spec.template.spec.containers[0].image',
        ],
      ];
      for (const [edit, field] of cases) expectRejected(seedWith(edit), field, ['is required']);
    });

    it('values of the wrong type', () => {
      expectRejected(
        seedWith((s) => (s.metadata = ['x'])),
        'metadata',
        ['["x"] is not a mapping'],
      );
      expectRejected(
        seedWith((s) => (s.nodes = { name: 'a' })),
        'nodes',
        ['is not a list'],
      );
      expectRejected(
        seedWith((s) => (s.network.mtu = '1500')),
        'network.mtu',
        ['"1500" is not an integer'],
      );
      expectRejected(
        seedWith((s) => (s.pool.blockSize = 26.5)),
        'pool.blockSize',
        ['26.5 is not an integer'],
      );
      expectRejected(
        seedWith((s) => (s.nodes[0].ip = 10)),
        'nodes[0].ip',
        ['10 is not a string'],
      );
      expectRejected(
        seedWith((s) => (s.nodes[0].name = '')),
        'nodes[0].name',
        ['must not be empty'],
      );
      expectRejected(
        seedWith((s) => (s.workloads[1].spec.template.metadata.labels.version = 2)),
        'workloads[1].spec.template.metadata.labels.version',
        ['2 is not a string'],
      );
    });

    it('invalid addresses and CIDRs', () => {
      expectRejected(
        seedWith((s) => (s.nodes[1].ip = '10.0.0.300')),
        'nodes[1].ip',
        ['"10.0.0.300" is not an IPv4 address'],
      );
      expectRejected(
        seedWith((s) => (s.nodes[1].ip = '10.0.0.11/24')),
        'nodes[1].ip',
        ['"10.0.0.11/24" is not an IPv4 address'],
      );
      expectRejected(
        seedWith((s) => (s.network.cidr = '10.0.0.0/33')),
        'network.cidr',
        ['"10.0.0.0/33" is not an IPv4 CIDR'],
      );
      expectRejected(
        seedWith((s) => (s.pool.cidr = '192.168.0.0')),
        'pool.cidr',
        ['"192.168.0.0" is not an IPv4 CIDR'],
      );
      expectRejected(
        seedWith((s) => (s.network.cidr = '10.0.0.1/24')),
        'network.cidr',
        ['"10.0.0.1/24" has host bits set', '10.0.0.0/24'],
      );
      expectRejected(
        seedWith((s) => (s.clusterCIDR = '10.244.0.0/33')),
        'clusterCIDR',
        ['"10.244.0.0/33"'],
      );
      expectRejected(
        seedWith((s) => (s.network.cidr = '10.0.0.0/31')),
        'network.cidr',
        ['"10.0.0.0/31" is too small'],
      );
    });

    it('duplicate node names and IPs', () => {
      expectRejected(
        seedWith((s) => (s.nodes[2].name = 'worker-node01')),
        'nodes[2].name',
        ['"worker-node01"', 'nodes[1]'],
      );
      expectRejected(
        seedWith((s) => (s.nodes[2].ip = '10.0.0.10')),
        'nodes[2].ip',
        ['"10.0.0.10"', 'nodes[0]', 'master-node'],
      );
    });

    it('node IPs outside the network, or its network or broadcast address', () => {
      expectRejected(
        seedWith((s) => (s.nodes[1].ip = '10.0.1.11')),
        'nodes[1].ip',
        ['"10.0.1.11" is outside network.cidr 10.0.0.0/24'],
      );
      expectRejected(
        seedWith((s) => (s.nodes[1].ip = '10.0.0.0')),
        'nodes[1].ip',
        ['"10.0.0.0" is the network address'],
      );
      expectRejected(
        seedWith((s) => (s.nodes[1].ip = '10.0.0.255')),
        'nodes[1].ip',
        ['"10.0.0.255" is the broadcast address'],
      );
    });

    it('node names that are not Kubernetes names', () => {
      for (const name of ['Worker-Node01', 'worker_node01', '-worker', 'worker.', 'a'.repeat(254)]) {
        expectRejected(
          seedWith((s) => (s.nodes[1].name = name)),
          'nodes[1].name',
          [JSON.stringify(name).slice(0, 20), 'DNS-1123 subdomain'],
        );
      }
      expect(parse(seedWith((s) => (s.nodes[1].name = 'worker.lab.local'))).nodes[1].name).toBe('worker.lab.local');
    });

    it('node labels that Kubernetes would refuse, or that kubelet owns', () => {
      const labelled = (labels: unknown) => seedWith((s) => (s.nodes[1].labels = labels));
      expectRejected(labelled(['worker']), 'nodes[1].labels', ['is not a mapping']);
      expectRejected(labelled({ 'bad key!': '' }), 'nodes[1].labels.bad key!', ['not a valid label key']);
      expectRejected(labelled({ 'Bad_Prefix/x': '' }), 'nodes[1].labels.Bad_Prefix/x', ['not a valid label key']);
      expectRejected(labelled({ tier: 'front end' }), 'nodes[1].labels.tier', [
        '"front end" is not a valid label value',
      ]);
      expectRejected(labelled({ tier: 1 }), 'nodes[1].labels.tier', ['1 is not a string']);
      expectRejected(labelled({ 'kubernetes.io/hostname': 'x' }), 'nodes[1].labels.kubernetes.io/hostname', [
        'set by kubelet',
      ]);
      const spec = parse(labelled({ 'node-role.kubernetes.io/worker': '', 'example.com/zone': 'a_1' }));
      expect(spec.nodes[1].labels).toEqual({ 'node-role.kubernetes.io/worker': '', 'example.com/zone': 'a_1' });
    });

    it('a role other than control-plane or worker', () => {
      expectRejected(
        seedWith((s) => (s.nodes[0].role = 'master')),
        'nodes[0].role',
        ['"master" is not one of control-plane, worker'],
      );
    });

    it('an MTU too small to carry IPv4 through the tunnel', () => {
      expectRejected(
        seedWith((s) => (s.network.mtu = 87)),
        'network.mtu',
        ['87 is outside 88..65535'],
      );
      expect(parse(seedWith((s) => (s.network.mtu = 9000))).network.mtu).toBe(9000);
    });

    it('a malformed kubernetesVersion', () => {
      expectRejected(
        seedWith((s) => (s.kubernetesVersion = '1.21')),
        'kubernetesVersion',
        ['"1.21"'],
      );
    });

    it('a pool that overlaps the node network', () => {
      expectRejected(
        seedWith((s) => {
          s.network.cidr = '192.168.0.0/24';
          s.nodes.forEach((n: any, i: number) => (n.ip = `192.168.0.${10 + i}`));
        }),
        'pool.cidr',
        ['"192.168.0.0/16" overlaps the node network 192.168.0.0/24'],
      );
    });

    it('a block size outside 20..32 or larger than the pool', () => {
      expectRejected(
        seedWith((s) => (s.pool.blockSize = 19)),
        'pool.blockSize',
        ['19 is outside 20..32'],
      );
      expectRejected(
        seedWith((s) => (s.pool.blockSize = 33)),
        'pool.blockSize',
        ['33 is outside 20..32'],
      );
      expectRejected(
        seedWith((s) => {
          s.pool.cidr = '192.168.0.0/24';
          s.clusterCIDR = '10.244.0.0/16';
          s.pool.blockSize = 22;
        }),
        'pool.blockSize',
        ["22 is shorter than the pool's own prefix /24"],
      );
    });

    it('an ipipMode outside Always, CrossSubnet, Never', () => {
      expectRejected(
        seedWith((s) => (s.pool.ipipMode = 'always')),
        'pool.ipipMode',
        ['"always" is not one of Always, CrossSubnet, Never'],
      );
    });

    it('a clusterCIDR without a /24 for every node', () => {
      expectRejected(
        seedWith((s) => (s.clusterCIDR = '10.244.0.0/23')),
        'clusterCIDR',
        ['"10.244.0.0/23" has room for 2 node PodCIDRs', '3 nodes'],
      );
      expectRejected(
        seedWith((s) => {
          delete s.clusterCIDR;
          s.pool.cidr = '192.168.0.0/25';
        }),
        'clusterCIDR',
        ['"192.168.0.0/25" (pool.cidr, the default clusterCIDR) has room for 0'],
      );
    });

    it('negative, fractional or non-numeric replicas', () => {
      const field = 'workloads[1].spec.replicas';
      expectRejected(
        seedWith((s) => (s.workloads[1].spec.replicas = -1)),
        field,
        ['-1 is outside 0..2147483647'],
      );
      expectRejected(
        seedWith((s) => (s.workloads[1].spec.replicas = 1.5)),
        field,
        ['1.5 is not an integer'],
      );
      expectRejected(
        seedWith((s) => (s.workloads[1].spec.replicas = '3')),
        field,
        ['"3" is not an integer'],
      );
    });

    it('errors inside a workload file, naming the file', () => {
      const broken = DEPLOYMENT_YML.replace('replicas: 3', 'replicas: -3');
      expectRejected(SEED_SPEC, 'workloads[0].spec.replicas', ['-3 is outside', '(in deployment.yml)'], {
        'deployment.yml': broken,
      });
      expectRejected(SEED_SPEC, 'workloads[0]', ['invalid YAML', '(in deployment.yml)'], { 'deployment.yml': 'a: [' });
      expectRejected(SEED_SPEC, 'workloads[0].file', ['"deployment.yml" cannot be read', 'ENOENT'], {});
      expectRejected(SEED_SPEC, 'workloads[0].file', ['"deployment.yml" holds no Deployment'], {
        'deployment.yml': '---\n',
      });
    });

    it('kinds other than apps/v1 Deployment, naming the kind', () => {
      const service = 'apiVersion: v1\nkind: Service\nmetadata:\n  name: hello-world\n';
      expectRejected(
        SEED_SPEC,
        'workloads[0][1].kind',
        ['"Service" is not supported', 'only apps/v1 Deployment', '(in deployment.yml)'],
        {
          'deployment.yml': `${DEPLOYMENT_YML}---\n${service}`,
        },
      );
      expectRejected(
        seedWith((s) => (s.workloads[1].kind = 'StatefulSet')),
        'workloads[1].kind',
        ['"StatefulSet" is not supported'],
      );
      expectRejected(
        seedWith((s) => (s.workloads[1].apiVersion = 'extensions/v1beta1')),
        'workloads[1].apiVersion',
        ['"extensions/v1beta1" is not supported'],
      );
    });

    it('duplicate Deployment names in a namespace, but not across namespaces', () => {
      const duplicate = (namespace: string) =>
        seedWith((s) => {
          s.workloads[1].metadata = { name: 'hello-world', namespace };
        });
      expectRejected(duplicate('default'), 'workloads[1].metadata.name', [
        '"hello-world"',
        'default/hello-world',
        'workloads[0]',
      ]);
      expect(parse(duplicate('lab')).workloads.map((w) => `${w.namespace}/${w.name}`)).toEqual([
        'default/hello-world',
        'lab/hello-world',
      ]);
    });

    it('more pods than the pool has addresses after the tunnel addresses', () => {
      // A /26 pool is one 64-address block; three tunnel addresses leave 61 for pods: hello-world's 3 and web's 58.
      const small = (replicas: number) =>
        seedWith((s) => {
          s.pool.cidr = '192.168.0.0/26';
          s.clusterCIDR = '10.244.0.0/16';
          s.workloads[1].spec.replicas = replicas;
        });
      expect(parse(small(58)).workloads[1].replicas).toBe(58);
      expectRejected(small(59), 'workloads[1].spec.replicas', [
        '59: the cluster would have 62 pods',
        'holds 61 pod addresses',
        '3 tunnel',
      ]);
    });

    it('a pool too small for the tunnel addresses alone', () => {
      const tiny = seedWith((s) => {
        s.pool.cidr = '192.168.0.0/31';
        s.pool.blockSize = 32;
        s.workloads = [];
      });
      expectRejected(tiny, 'pool.cidr', ['"192.168.0.0/31" holds 2 addresses, too few for 3 node tunnel addresses']);
      expect(parse(tiny.replace('ipipMode: Always', 'ipipMode: Never')).pool.ipipMode).toBe('Never');
    });

    it('a cluster without nodes', () => {
      expectRejected(
        seedWith((s) => (s.nodes = [])),
        'nodes',
        ['needs at least one node'],
      );
    });

    it('replicas that no node can run', () => {
      const masterOnly = seedWith((s) => (s.nodes = [s.nodes[0]]));
      expectRejected(masterOnly, 'workloads[0].spec.replicas', [
        '3: no node can run Deployment default/hello-world',
        'master-node: untolerated taint node-role.kubernetes.io/master:NoSchedule',
        '(in deployment.yml)',
      ]);
      const idle = DEPLOYMENT_YML.replace('replicas: 3', 'replicas: 0');
      expect(
        parse(
          seedWith((s) => ((s.nodes = [s.nodes[0]]), s.workloads.pop())),
          { 'deployment.yml': idle },
        ).workloads[0].replicas,
      ).toBe(0);
      const pinned = seedWith(
        (s) => (s.workloads[1].spec.template.spec.nodeSelector = { 'kubernetes.io/hostname': 'nowhere' }),
      );
      expectRejected(pinned, 'workloads[1].spec.replicas', [
        'worker-node01: nodeSelector kubernetes.io/hostname=nowhere does not match',
      ]);
    });

    it('a selector that does not match the template labels', () => {
      expectRejected(
        seedWith((s) => (s.workloads[1].spec.selector.matchLabels.app = 'other')),
        'workloads[1].spec.selector',
        ['matchLabels app=other'],
      );
    });

    it('pod templates Kubernetes would refuse', () => {
      const containers = 'workloads[1].spec.template.spec.containers';
      expectRejected(
        seedWith((s) => (s.workloads[1].spec.template.spec.containers = [])),
        containers,
        ['at least one container'],
      );
      expectRejected(
        seedWith((s) => s.workloads[1].spec.template.spec.containers.push({ name: 'web', image: 'busybox' })),
        `${containers}[1].name`,
        ['"web" is already used by containers[0]'],
      );
      expectRejected(
        seedWith((s) => (s.workloads[1].spec.template.spec.containers[0].ports[0].containerPort = 70000)),
        `${containers}[0].ports[0].containerPort`,
        ['70000 is outside 1..65535'],
      );
      expectRejected(
        seedWith((s) => (s.workloads[1].spec.template.spec.containers[0].ports[0].protocol = 'ICMP')),
        `${containers}[0].ports[0].protocol`,
        ['"ICMP"'],
      );
      expectRejected(
        seedWith((s) => (s.workloads[1].spec.template.spec.tolerations = [{ operator: 'Equal', value: 'x' }])),
        'workloads[1].spec.template.spec.tolerations[0].operator',
        ['needs a key'],
      );
      expectRejected(
        seedWith((s) => (s.workloads[1].spec.template.spec.tolerations = [{ key: 'k', effect: 'Never' }])),
        'workloads[1].spec.template.spec.tolerations[0].effect',
        ['"Never" is not one of NoSchedule, PreferNoSchedule, NoExecute'],
      );
      expectRejected(
        seedWith((s) => (s.workloads[1].metadata.namespace = 'Lab')),
        'workloads[1].metadata.namespace',
        ['"Lab"'],
      );
    });

    it('subnets that cannot be routed between, and nodes that fit none of them', () => {
      const routed = (edit: (spec: any) => void) =>
        seedWith((s) => {
          s.network = { cidr: '10.36.0.0/16', subnets: ['10.36.1.0/24', '10.36.2.0/24'] };
          s.nodes.forEach((node: { ip: string }, i: number) => (node.ip = `10.36.${i === 2 ? 2 : 1}.${10 + i}`));
          edit(s);
        });
      expectRejected(
        routed((s) => (s.pool.cidr = '10.36.2.0/23')),
        'pool.cidr',
        ['overlaps the node network 10.36.2.0/24 (network.subnets)'],
      );
      expectRejected(
        routed((s) => (s.network.subnets = ['10.36.1.0/24'])),
        'network.subnets',
        ['at least two subnets'],
      );
      expectRejected(
        routed((s) => s.network.subnets.push('10.37.0.0/24')),
        'network.subnets[2]',
        ['"10.37.0.0/24" is outside network.cidr 10.36.0.0/16'],
      );
      expectRejected(
        routed((s) => s.network.subnets.push('10.36.1.128/25')),
        'network.subnets[2]',
        ['overlaps subnets[0]'],
      );
      expectRejected(
        routed((s) => (s.nodes[1].ip = '10.36.3.11')),
        'nodes[1].ip',
        ['in none of network.subnets (10.36.1.0/24, 10.36.2.0/24)'],
      );
      expectRejected(
        routed((s) => (s.nodes[2].ip = '10.36.2.254')),
        'nodes[2].ip',
        ['the router that joins the subnets'],
      );
      expectRejected(
        routed((s) => (s.nodes[2].ip = '10.36.2.255')),
        'nodes[2].ip',
        ['the broadcast address of 10.36.2.0/24'],
      );
    });
  });

  it('reads routed subnets: each node on the one that holds its address, the router at its last host', () => {
    const spec = parse(
      seedWith((s) => {
        s.network = { cidr: '10.36.0.0/16', subnets: ['10.36.1.0/24', '10.36.2.0/24'] };
        s.nodes.forEach((node: { ip: string }, i: number) => (node.ip = `10.36.${i === 2 ? 2 : 1}.${10 + i}`));
        // The pool may take the address space the subnets leave.
        s.pool.cidr = '10.36.128.0/17';
      }),
    );
    expect(String(spec.pool.cidr)).toBe('10.36.128.0/17');
    expect(spec.network.subnets.map(String)).toEqual(['10.36.1.0/24', '10.36.2.0/24']);
    const subnets = spec.nodes.map((node) => String(underlaySubnet(spec.network, node.ip)));
    expect(subnets).toEqual(['10.36.1.0/24', '10.36.1.0/24', '10.36.2.0/24']);
    expect(String(underlayRouter(underlaySubnet(spec.network, spec.nodes[2].ip)))).toBe('10.36.2.254');
    // A flat network is its own subnet.
    const flat = parse(SEED_SPEC);
    expect(flat.network.subnets).toEqual([]);
    expect(String(underlaySubnet(flat.network, flat.nodes[0].ip))).toBe('10.0.0.0/24');
  });
});

describe('parseDeployments', () => {
  it('reads every document, as kubectl apply -f does', () => {
    const deployments = parseDeployments(
      `${DEPLOYMENT_YML}---\n${DEPLOYMENT_YML.replace('name: hello-world\nspec', 'name: two\nspec')}`,
      'app.yml',
    );
    expect(deployments.map((d) => [d.name, d.replicas])).toEqual([
      ['hello-world', 3],
      ['two', 3],
    ]);
  });

  it('reports fields relative to the file, indexing documents only when there are several', () => {
    const single = specError(() => parseDeployments(DEPLOYMENT_YML.replace('replicas: 3', 'replicas: x'), 'app.yml'));
    expect(single.field).toBe('spec.replicas');
    expect(single.message).toBe('app.yml: spec.replicas: "x" is not an integer');
    const multi = specError(() =>
      parseDeployments(`${DEPLOYMENT_YML}---\nkind: ConfigMap\napiVersion: v1\n`, 'app.yml'),
    );
    expect(multi.field).toBe('[1].kind');
    expect(multi.message).toContain('"ConfigMap" is not supported');
  });
});

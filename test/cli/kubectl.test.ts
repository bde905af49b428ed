/**
 * The node containers' kubectl, run in-process on the seed specs: the course's commands word for word, kubectl's
 * errors and exit codes, and apply/delete rewriting a spec (here a temporary copy; no agents to reload on the host).
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { labelSelector, parseKubectlArgs, runKubectl } from '../../src/cli/kubectl.js';
import { renderJsonPath } from '../../src/cli/kubectl-jsonpath.js';
import { loadCluster } from '../../src/cli/cluster-source.js';
import { REPO_ROOT, SEED_CNI_OVERVIEW, SEED_NETWORKING } from '../support/cli.js';

const DEPLOYMENT = `${REPO_ROOT}containers/cni-overview/deployment.yml`;
const LAB_CNI_OVERVIEW = `${REPO_ROOT}containers/cni-overview/lab.yaml`;
const LAB_NETWORKING = `${REPO_ROOT}containers/networking/lab.yaml`;

async function kubectl(spec: string, ...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runKubectl(argv, { out: (s) => (stdout += s), err: (s) => (stderr += s) }, { spec });
  return { code, stdout, stderr };
}

describe('reads, as the seeds type them', () => {
  it('get nodes -o wide: ROLES follow the spec (the first seed labelled its workers, kind does not)', async () => {
    const first = await kubectl(SEED_CNI_OVERVIEW, 'get', 'nodes', '-o', 'wide');
    expect(
      first.stdout
        .split('\n')
        .slice(1, 4)
        .map((line) => line.split(/\s+/).slice(0, 3)),
    ).toEqual([
      ['master-node', 'Ready', 'control-plane,master'],
      ['worker-node01', 'Ready', 'worker'],
      ['worker-node02', 'Ready', 'worker'],
    ]);
    const kind = await kubectl(SEED_NETWORKING, 'get', 'nodes', '-o', 'wide');
    expect(
      kind.stdout
        .split('\n')
        .slice(1, 5)
        .map((line) => line.split(/\s+/)[2]),
    ).toEqual(['control-plane,master', '<none>', '<none>', '<none>']);
  });

  it('get pods -A -o wide adds NAMESPACE and says on stderr that system pods are not emulated', async () => {
    const result = await kubectl(SEED_NETWORKING, 'get', 'pods', '-A', '-o', 'wide');
    expect(result.code).toBe(0);
    const [header, ...rows] = result.stdout.trimEnd().split('\n');
    expect(header.split(/\s{2,}/)).toEqual([
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
    expect(rows.map((row) => row.split(/\s+/)[0])).toEqual(['default', 'default', 'default']);
    expect(result.stderr).toContain('no kube-system pods');
  });

  it('lists pods sorted by name, as the API server does', async () => {
    const names = (await kubectl(SEED_CNI_OVERVIEW, 'get', 'pods')).stdout
      .trimEnd()
      .split('\n')
      .slice(1)
      .map((l) => l.split(' ')[0]);
    expect(names).toEqual([...names].sort());
  });

  it("the seed's PODNAME=$(kubectl get pods --selector=app=hello-world -o jsonpath=…) gives a name, no newline", async () => {
    const result = await kubectl(
      SEED_CNI_OVERVIEW,
      'get',
      'pods',
      '--selector=app=hello-world',
      '-o',
      'jsonpath={.items[0].metadata.name}',
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^hello-world-[a-z0-9]+-[a-z0-9]{5}$/);
    const cluster = loadCluster(SEED_CNI_OVERVIEW);
    expect(cluster.pods.map((pod) => pod.name)).toContain(result.stdout);
  });

  it("a selector matching nothing leaves jsonpath an empty list: kubectl's out-of-bounds error, exit 1", async () => {
    const result = await kubectl(
      SEED_CNI_OVERVIEW,
      'get',
      'pods',
      '-l',
      'app=nope',
      '-o',
      'jsonpath={.items[0].metadata.name}',
    );
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toBe(
      'error: error executing jsonpath "{.items[0].metadata.name}": Error executing template: array index out of bounds: index 0, length 0\n',
    );
    const table = await kubectl(SEED_CNI_OVERVIEW, 'get', 'pods', '-l', 'app=nope');
    expect(table).toMatchObject({ code: 0, stdout: '', stderr: 'No resources found in default namespace.\n' });
  });

  it('-o json is a v1 List of Pod objects; -o name prints pod/NAME', async () => {
    const list = JSON.parse((await kubectl(SEED_CNI_OVERVIEW, 'get', 'pods', '-o', 'json')).stdout);
    expect(list).toMatchObject({ apiVersion: 'v1', kind: 'List' });
    expect(list.items[0]).toMatchObject({
      kind: 'Pod',
      metadata: { namespace: 'default', labels: { app: 'hello-world' } },
      status: { phase: 'Running' },
    });
    expect((await kubectl(SEED_CNI_OVERVIEW, 'get', 'po', '-oname')).stdout).toMatch(/^(pod\/hello-world-\S+\n){3}$/);
  });

  it('describe node master, as the seed types it, describes master-node (kubectl matches a name prefix)', async () => {
    const result = await kubectl(SEED_CNI_OVERVIEW, 'describe', 'node', 'master');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Name: {15}master-node\n/);
    expect(result.stdout).toContain('                    projectcalico.org/IPv4IPIPTunnelAddr: 192.168.77.128\n');
    expect(result.stdout).toContain('Addresses:\n  InternalIP:  10.0.0.10\n  Hostname:    master-node\n');
    expect((await kubectl(SEED_CNI_OVERVIEW, 'describe', 'node', 'worker')).stdout.match(/^Name: /gm)).toHaveLength(2);
    expect(await kubectl(SEED_CNI_OVERVIEW, 'describe', 'node', 'nosuch')).toEqual({
      code: 1,
      stdout: '',
      stderr: 'Error from server (NotFound): nodes "nosuch" not found\n',
    });
  });

  it('exec -it POD -- ip addr shows the pod; -- /bin/sh is refused in one line that says what works', async () => {
    const pod = loadCluster(SEED_CNI_OVERVIEW).pods[0];
    const addr = await kubectl(SEED_CNI_OVERVIEW, 'exec', '-it', pod.name, '--', 'ip', 'addr');
    expect(addr.code).toBe(0);
    expect(addr.stdout).toContain(`    inet ${pod.ip}/32 brd ${pod.ip} scope global eth0\n`);
    const shell = await kubectl(SEED_CNI_OVERVIEW, 'exec', '-it', pod.name, '--', '/bin/sh');
    expect(shell.code).toBe(1);
    expect(shell.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(shell.stderr).toContain(`kubectl exec ${pod.name} -- ip addr | ip route`);
    expect((await kubectl(SEED_CNI_OVERVIEW, 'exec', 'nginx', '--', 'ip', 'addr')).stderr).toBe(
      'Error from server (NotFound): pods "nginx" not found\n',
    );
  });

  it.each([
    [['get', 'services']],
    [['logs', 'x']],
    [['get', 'pods', '--watch']],
    [['get', 'pods', '-o', 'custom-columns=NAME:.metadata.name']],
  ])('kubectl %j is refused in one line that lists what is supported', async (argv) => {
    const result = await kubectl(SEED_CNI_OVERVIEW, ...argv);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^error: unsupported: kubectl .*\(this lab's kubectl supports: get nodes\|pods .*apply -f FILE, delete -f FILE, scale deployment NAME --replicas=N\)\n$/,
    );
  });

  it('no arguments or --help teach the supported commands', async () => {
    const help = await kubectl(SEED_CNI_OVERVIEW, '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('kubectl apply -f deployment.yml');
  });
});

describe('argument grammar', () => {
  it("takes kubectl's spellings of flags anywhere", () => {
    for (const argv of [
      ['get', 'pods', '-o', 'wide'],
      ['get', '-owide', 'pods'],
      ['get', 'pods', '-o=wide'],
      ['get', 'pods', '--output=wide'],
    ]) {
      expect(parseKubectlArgs(argv).values.get('output')).toEqual(['wide']);
    }
    const exec = parseKubectlArgs(['exec', '-it', 'pod', '-nkube-system', '--', 'ip', '-o', 'addr']);
    expect([...exec.booleans]).toEqual(['stdin', 'tty']);
    expect(exec.values.get('namespace')).toEqual(['kube-system']);
    expect(exec.command).toEqual(['ip', '-o', 'addr']);
  });

  it('label selectors: =, ==, !=, exists, !exists; set-based ones are refused', () => {
    const labels = { app: 'hello-world', tier: 'web' };
    expect(labelSelector('app=hello-world,tier==web')(labels)).toBe(true);
    expect(labelSelector('app!=hello-world')(labels)).toBe(false);
    expect(labelSelector('tier,!zone')(labels)).toBe(true);
    expect(() => labelSelector('app in (a,b)')).toThrow('unable to parse requirement');
  });

  it('jsonpath: fields, [N], [*] and literal text; anything else by name', () => {
    const list = { items: [{ metadata: { name: 'a' } }, { metadata: { name: 'b' } }] };
    expect(renderJsonPath('{.items[*].metadata.name}', list)).toBe('a b');
    expect(renderJsonPath('first={.items[0].metadata.name} last={.items[-1].metadata.name}', list)).toBe(
      'first=a last=b',
    );
    expect(renderJsonPath('{.items[0].metadata}', list)).toBe('{"name":"a"}');
    expect(() => renderJsonPath('{.items[?(@.x)]}', list)).toThrow('only .field, [N] and [*] are supported');
    expect(() => renderJsonPath('{.items[0].spec}', list)).toThrow('spec is not found');
  });
});

describe('apply -f and delete -f on a spec', () => {
  let directory: string;
  let spec: string;

  beforeEach(() => {
    directory = mkdtempSync(path.join(tmpdir(), 'ipip-lab-kubectl-'));
    spec = path.join(directory, 'cluster.yaml');
    copyFileSync(LAB_CNI_OVERVIEW, spec);
  });

  afterEach(() => rmSync(directory, { recursive: true, force: true }));

  it("prints kubectl's lines, rewrites the spec self-contained, and exits 1 for what is not there", async () => {
    expect(await kubectl(spec, 'apply', '-f', DEPLOYMENT)).toEqual({
      code: 0,
      stdout: 'deployment.apps/hello-world created\n',
      stderr: '',
    });
    expect(loadCluster(spec).pods).toHaveLength(3);
    // The spec names no file: apply wrote the manifest inline, so the spec alone describes the lab.
    expect(readFileSync(spec, 'utf8')).not.toContain('file:');
    expect((await kubectl(spec, 'apply', '-f', DEPLOYMENT)).stdout).toBe('deployment.apps/hello-world unchanged\n');

    const scaled = path.join(directory, 'scaled.yml');
    writeFileSync(scaled, readFileSync(DEPLOYMENT, 'utf8').replace('replicas: 3', 'replicas: 5'));
    expect((await kubectl(spec, 'apply', '-f', scaled)).stdout).toBe('deployment.apps/hello-world configured\n');
    expect(loadCluster(spec).pods).toHaveLength(5);

    expect(await kubectl(spec, 'delete', '-f', DEPLOYMENT)).toEqual({
      code: 0,
      stdout: 'deployment.apps "hello-world" deleted\n',
      stderr: '',
    });
    expect(loadCluster(spec).pods).toHaveLength(0);
    expect(await kubectl(spec, 'delete', '-f', DEPLOYMENT)).toEqual({
      code: 1,
      stdout: '',
      stderr: `Error from server (NotFound): error when deleting "${DEPLOYMENT}": deployments.apps "hello-world" not found\n`,
    });
    // The rest of the spec is untouched, comments included.
    expect(readFileSync(spec, 'utf8')).toContain('# The course labelled its workers by hand');
  });

  it('scale deployment sets the replicas, newest pods going first, and refuses what it cannot do', async () => {
    await kubectl(spec, 'apply', '-f', DEPLOYMENT);
    const three = loadCluster(spec).pods.map((pod) => pod.name);
    expect(await kubectl(spec, 'scale', 'deployment', 'hello-world', '--replicas=30')).toEqual({
      code: 0,
      stdout: 'deployment.apps/hello-world scaled\n',
      stderr: '',
    });
    const thirty = loadCluster(spec).pods;
    expect(thirty).toHaveLength(30);
    expect(new Set(thirty.map((pod) => pod.ip.toString())).size).toBe(30);
    // The three that were there stay, with their addresses; scaling back removes the 27 that came.
    expect(thirty.slice(0, 3).map((pod) => pod.name)).toEqual(three);
    expect((await kubectl(spec, 'scale', 'deployment/hello-world', '--replicas', '3')).stdout).toBe(
      'deployment.apps/hello-world scaled\n',
    );
    expect(loadCluster(spec).pods.map((pod) => pod.name)).toEqual(three);

    const before = readFileSync(spec, 'utf8');
    expect(await kubectl(spec, 'scale', 'deploy', 'nope', '--replicas=2')).toEqual({
      code: 1,
      stdout: '',
      stderr: 'Error from server (NotFound): deployments.apps "nope" not found\n',
    });
    expect((await kubectl(spec, 'scale', 'deployment', 'hello-world', '--replicas=-1')).stderr).toBe(
      'error: The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0\n',
    );
    expect((await kubectl(spec, 'scale', 'deployment', 'hello-world')).code).toBe(1);
    const tooMany = await kubectl(spec, 'scale', 'deployment', 'hello-world', '--replicas=70000');
    expect(tooMany.stderr).toContain('the lab cannot run deployment hello-world with 70000 replicas, nothing changed');
    expect((await kubectl(spec, 'scale', 'statefulset', 'web', '--replicas=1')).stderr).toContain(
      'unsupported: kubectl scale statefulset',
    );
    expect(readFileSync(spec, 'utf8')).toBe(before);
  });

  it("apply -f of Calico's manifest URL says in one line that Calico is built in, and changes nothing", async () => {
    const before = readFileSync(spec, 'utf8');
    const url = 'https://docs.projectcalico.org/v3.21/manifests/calico.yaml';
    expect(await kubectl(spec, 'apply', '-f', url)).toEqual({
      code: 0,
      stdout:
        "ipip-lab: Calico is built into this lab (calico-node's IPAM, BGP and Felix run in every node's agent, etcd is " +
        `its datastore): nothing to apply from ${url}\n`,
      stderr: '',
    });
    const other = await kubectl(spec, 'apply', '-f', 'https://example.com/app.yaml');
    expect(other.code).toBe(1);
    expect(other.stderr).toBe(
      'error: the lab fetches nothing from the internet: download https://example.com/app.yaml and apply the file (kubectl apply -f FILE)\n',
    );
    expect(readFileSync(spec, 'utf8')).toBe(before);
  });

  it('refuses a manifest the lab cannot run and a change the cluster cannot take, leaving the spec as it was', async () => {
    const before = readFileSync(spec, 'utf8');
    const service = path.join(directory, 'service.yml');
    writeFileSync(service, 'apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n');
    const refused = await kubectl(spec, 'apply', '-f', service);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(
      `error: error validating "${service}": kind: "Service" is not supported (only apps/v1 Deployment)\n`,
    );

    const huge = path.join(directory, 'huge.yml');
    writeFileSync(huge, readFileSync(DEPLOYMENT, 'utf8').replace('replicas: 3', 'replicas: 70000'));
    const tooBig = await kubectl(spec, 'apply', '-f', huge);
    expect(tooBig.code).toBe(1);
    expect(tooBig.stderr).toContain(`the lab cannot run ${huge}, nothing changed`);
    expect((await kubectl(spec, 'apply', '-f', path.join(directory, 'missing.yml'))).stderr).toContain(
      'does not exist',
    );
    expect(readFileSync(spec, 'utf8')).toBe(before);
  });
});

describe('the compose labs start from the seed clusters without workloads', () => {
  it.each([
    [LAB_CNI_OVERVIEW, SEED_CNI_OVERVIEW],
    [LAB_NETWORKING, SEED_NETWORKING],
  ])('%s has the nodes, network and pool of %s, and no pods', (lab, seed) => {
    const labCluster = loadCluster(lab);
    const seedCluster = loadCluster(seed);
    expect(labCluster.pods).toEqual([]);
    expect(labCluster.nodes).toEqual(seedCluster.nodes);
    expect({ ...labCluster.spec, workloads: [] }).toEqual({ ...seedCluster.spec, workloads: [] });
  });
});

/**
 * The second seed's first step with this lab: `ipip-lab kind create cluster --name … --config kind-config.yaml` brings
 * up kind's nodes (kind's names, .2 onwards) with Calico built in and etcd as its datastore; Calico's manifest URL
 * changes nothing; `kind delete cluster` leaves nothing behind.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { cli, REPO_ROOT } from '../support/cli.js';

const run = promisify(execFile);
const NAME = 'kindtest';
const PROJECT = `ipip-lab-kind-${NAME}`;
/** Not the seed labs' subnets, nor another test's. */
const SUBNET = '172.22.0.0/16';
const NODES = ['kindtest-control-plane', 'kindtest-worker', 'kindtest-worker2', 'kindtest-worker3'];

let folder: string;

async function exec(service: string, ...argv: string[]): Promise<string> {
  const file = path.join(folder, NAME, 'docker-compose.yml');
  const { stdout } = await run('docker', ['compose', '-f', file, '-p', PROJECT, 'exec', '-T', service, ...argv]);
  return stdout;
}

async function projectContainers(): Promise<string[]> {
  const { stdout } = await run('docker', ['ps', '-aq', '--filter', `label=com.docker.compose.project=${PROJECT}`]);
  return stdout.split('\n').filter(Boolean);
}

describe("ipip-lab kind create cluster with the second seed's kind config", () => {
  beforeAll(async () => {
    folder = mkdtempSync(path.join(tmpdir(), 'ipip-lab-kind-'));
    const created = await cli(
      'kind',
      'create',
      'cluster',
      '--name',
      NAME,
      '--config',
      `${REPO_ROOT}containers/networking/kind-config.yaml`,
      '--subnet',
      SUBNET,
      '--dir',
      folder,
    );
    expect(created.stderr).toContain(`Creating cluster "${NAME}" ...`);
    expect(created.code, created.stderr).toBe(0);
  });

  afterAll(async () => {
    const deleted = await cli('kind', 'delete', 'cluster', '--name', NAME, '--dir', folder);
    rmSync(folder, { recursive: true, force: true });
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(await projectContainers()).toEqual([]);
  });

  test("kubectl get nodes -o wide: kind's node names at .2, .3, … of the network", async () => {
    const rows = (await exec(NODES[0], 'kubectl', 'get', 'nodes', '-o', 'wide')).trimEnd().split('\n').slice(1);
    expect(rows.map((row) => row.split(/\s+/)[0])).toEqual(NODES);
    expect(rows.map((row) => row.split(/\s+/)[5])).toEqual(['172.22.0.2', '172.22.0.3', '172.22.0.4', '172.22.0.5']);
  });

  test("the nodes registered in etcd and meshed over BGP; the pool is the config's podSubnet", async () => {
    const keys = (
      await exec(NODES[0], 'etcdctl', 'get', '--prefix', '/calico/resources/v3/projectcalico.org/nodes', '--keys-only')
    )
      .split('\n')
      .filter(Boolean);
    expect(keys).toEqual(NODES.map((node) => `/calico/resources/v3/projectcalico.org/nodes/${node}`));
    const deadline = Date.now() + 20_000;
    let status = '';
    while (Date.now() < deadline) {
      status = await exec(NODES[0], 'calicoctl', 'node', 'status');
      if ((status.match(/\| Established \|/g) ?? []).length === 3) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect(status.match(/node-to-node mesh \| up +\| \S+ \| Established \|/g)).toHaveLength(3);
    expect(await exec(NODES[0], 'calicoctl', 'get', 'ippool', '-o', 'wide')).toContain('192.168.0.0/16');
  });

  test("kubectl apply -f Calico's manifest URL: one line, and nothing changes", async () => {
    const url = 'https://docs.projectcalico.org/v3.21/manifests/calico.yaml';
    expect(await exec(NODES[0], 'kubectl', 'apply', '-f', url)).toContain('Calico is built into this lab');
    expect(JSON.parse(await exec(NODES[0], 'kubectl', 'get', 'pods', '-o', 'json'))).toMatchObject({ items: [] });
  });

  test('a second create of the same name is refused, as kind refuses it', async () => {
    const again = await cli('kind', 'create', 'cluster', '--name', NAME, '--dir', folder);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain(`node(s) already exist for a cluster with the name "${NAME}"`);
  });
});

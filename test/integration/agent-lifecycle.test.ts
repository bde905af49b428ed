/**
 * The agent as a process in its container: refusing to be a node it cannot be (exit code 2, a message that says
 * why), serving its API, and stopping on SIGTERM within a second.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startLab, type Lab, type LabNodeHandle } from '../../src/testing/index.js';
import { SEED_CNI_OVERVIEW } from '../support/cli.js';

let lab: Lab;
let node01: LabNodeHandle;

beforeAll(async () => {
  lab = await startLab({ spec: SEED_CNI_OVERVIEW, name: 'lifecycle', dataplane: 'userspace' });
  node01 = lab.node('worker-node01');
});

afterAll(async () => {
  await lab?.stop();
});

test('the API reports the node, its system and its pods', async () => {
  const info = await node01.info();
  expect(info).toMatchObject({
    name: 'worker-node01',
    ip: '10.0.0.11',
    tunnelAddress: '192.168.87.192',
    apiPort: 9440,
  });
  expect(info.system.osImage).toMatch(/^Debian GNU\/Linux 12/);
  expect(info.pods.map((pod) => pod.name)).toEqual(lab.podsOn('worker-node01').map((pod) => pod.name));
});

test('an unknown node name is refused with exit code 2', async () => {
  const result = await node01.ipipLab(['node', '--name', 'worker-node09']);
  expect(result.exitCode).toBe(2);
  expect(result.stderr).toContain(
    'no node named "worker-node09" in the cluster (nodes: master-node, worker-node01, worker-node02)',
  );
});

test('without SYS_ADMIN and /dev/net/tun, --dataplane kernel is refused with exit code 2 and auto says why in one line', async () => {
  // This lab's containers have NET_ADMIN only (the userspace dataplane's needs).
  // A second agent in a node container: port 179 is the first one's speaker's, so this one computes its routes.
  const elsewhere = ['--api-port', '9555', '--socket', '/tmp/second-agent.sock', '--routes', 'spec'];
  const kernel = await node01.ipipLab(['node', '--name', 'worker-node01', '--dataplane', 'kernel', ...elsewhere]);
  expect(kernel.exitCode).toBe(2);
  expect(kernel.stderr).toContain('--dataplane kernel: the container lacks SYS_ADMIN (cap_add, or privileged)');
  const auto = await node01.exec([
    'timeout',
    '3',
    'ipip-lab',
    'node',
    '--name',
    'worker-node01',
    '--dataplane',
    'auto',
    '--no-pin-neighbours',
    ...elsewhere,
  ]);
  const said = auto.stdout.split('\n').filter((line) => line.includes('kernel dataplane unavailable'));
  expect(said).toEqual([
    'worker-node01: kernel dataplane unavailable (the container lacks SYS_ADMIN (cap_add, or privileged)): running the userspace node',
  ]);
  expect(auto.stdout).toContain('listening on 10.0.0.11:9555');
});

test('a node whose address is not on this machine is refused with exit code 2, naming what is here', async () => {
  const result = await node01.ipipLab(['node', '--name', 'worker-node02']);
  expect(result.exitCode).toBe(2);
  expect(result.stderr).toContain("worker-node02's address 10.0.0.12 is not on any interface of this machine");
  expect(result.stderr).toContain('eth0 10.0.0.11');
});

test('a bad spec is refused with exit code 2, naming the field', async () => {
  const written = await node01.exec([
    'sh',
    '-c',
    "sed 's/blockSize: 26/blockSize: 40/' /etc/ipip-lab/cluster.yaml > /tmp/bad.yaml",
  ]);
  expect(written.exitCode).toBe(0);
  const result = await node01.ipipLab(['node', '--name', 'worker-node01', '--spec', '/tmp/bad.yaml']);
  expect(result.exitCode).toBe(2);
  expect(result.stderr).toMatch(/invalid spec: .*blockSize/);
});

test('from another node container the CLI reaches a remote agent over the lab network', async () => {
  const result = await node01.json<{ name: string }>(['api', 'GET', '/v1/node', '--node', 'worker-node02']);
  expect(result.name).toBe('worker-node02');
});

test('SIGTERM stops the agent cleanly in under a second', async () => {
  const master = lab.node('master-node');
  const started = performance.now();
  // testcontainers takes the grace period in milliseconds; past it Docker would SIGKILL (exit 137).
  await master.container.stop({ timeout: 5_000, remove: false });
  const elapsedMs = performance.now() - started;

  const { stdout: exitCode } = await promisify(execFile)('docker', [
    'inspect',
    '--format',
    '{{.State.ExitCode}}',
    master.container.getId(),
  ]);
  expect(exitCode.trim()).toBe('0');
  const logs = await master.logs();
  expect(logs).toContain('master-node: SIGTERM: stopping');
  expect(logs).toContain('master-node: stopped');
  expect(elapsedMs).toBeLessThan(1000);
  console.info(`docker stop of master-node took ${elapsedMs.toFixed(0)} ms`);
});

/**
 * Inside a node container the read views come from the running agents: the same cluster as `--spec` mode prints
 * (every agent computes it from the spec it serves), plus what only agents know: that they answer, since when, and
 * on what system.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startLab, type Lab, type LabNodeHandle } from '../../src/testing/index.js';
import { cli, REPO_ROOT } from '../support/cli.js';

const SPEC = `${REPO_ROOT}test/fixtures/live-views.yaml`;

let lab: Lab;
let node01: LabNodeHandle;

beforeAll(async () => {
  lab = await startLab({ spec: SPEC, name: 'live-views', dataplane: 'kernel' });
  node01 = lab.node('worker-node01');
});

afterAll(async () => {
  await lab?.stop();
});

/** The same view printed by the host from the spec alone. */
async function fromSpec(command: string, ...args: string[]): Promise<string> {
  const result = await cli(command, '--spec', SPEC, ...args);
  expect(result.code).toBe(0);
  return result.stdout;
}

describe('node views inside a node container', () => {
  test.each([[['route']], [['route', '-n']], [['ip', 'addr']], [['ip', 'route']]])(
    'ipip-lab %j shows this node as --spec mode does',
    async (args) => {
      const live = await node01.ipipLab(args);
      expect(live.stderr).toBe('');
      expect(live.stdout).toBe(await fromSpec(args[0], ...args.slice(1), '--node', 'worker-node01'));
    },
  );

  test("the course's bare `route` is net-tools' own, on a kernel table that holds every route of ipip-lab's view", async () => {
    const real = (await node01.exec(['route', '-n'])).stdout.split('\n');
    const emulated = (await node01.ipipLab(['route', '-n'])).stdout.split('\n').filter(Boolean);
    // The kernel's table has Docker's default route besides; every line of the view is in it, the header included.
    for (const line of emulated) expect(real).toContain(line);
    expect((await node01.exec(['ifconfig', 'tunl0'])).stdout).toMatch(
      /^tunl0: flags=\d+<UP,POINTOPOINT,RUNNING,NOARP,MULTICAST> {2}mtu 1480\n/,
    );
  });

  test('--node reaches another node over the lab network', async () => {
    const live = await node01.ipipLab(['route', '--node', 'master-node']);
    expect(live.stdout).toBe(await fromSpec('route', '--node', 'master-node'));
    expect(live.stdout).toContain('192.168.87.192  worker-node01   255.255.255.192 UG    0      0        0 tunl0\n');
  });

  test("exec POD -- ip addr runs the real ip in that pod's namespace, on its node, with the address the spec gives it", async () => {
    const [pod] = lab.podsOn('worker-node02');
    const live = await node01.ipipLab(['exec', pod.name, '--', 'ip', '-4', '-o', 'addr', 'show', 'eth0']);
    expect(live.stdout).toMatch(new RegExp(`^\\d+: eth0 +inet ${pod.ip.toString().replace(/\./g, '\\.')}/32 brd `));
    expect(await fromSpec('exec', pod.name, '--', 'ip', 'addr')).toContain(`inet ${pod.ip}/32`);
  });
});

describe('kubectl views from the agents', () => {
  test('get nodes -o wide: every agent answers, with its age and the container system', async () => {
    const live = await node01.ipipLab(['get', 'nodes', '-o', 'wide']);
    const rows = live.stdout.trimEnd().split('\n').slice(1);
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      const [name, status, , age] = row.split(/\s{2,}/);
      expect(status, name).toBe('Ready');
      expect(age).toMatch(/^\d+s$/);
      expect(row).toContain('Debian GNU/Linux 12 (bookworm)');
    }
  });

  test('get pods -o wide lists the pods the spec schedules, aged with their node', async () => {
    const live = await node01.ipipLab(['get', 'pods', '-o', 'wide']);
    const names = live.stdout
      .trimEnd()
      .split('\n')
      .slice(1)
      .map((row) => row.split(/\s+/));
    expect(names.map(([name]) => name).sort()).toEqual(
      lab
        .podsOn('worker-node01')
        .concat(lab.podsOn('worker-node02'))
        .map((p) => p.name)
        .sort(),
    );
    for (const cells of names) expect(cells[4]).toMatch(/^\d+s$/);
  });

  test('a node whose agent is down shows NotReady', async () => {
    // Only the agent stops (the container's main process); the container, and so its address, stays.
    await lab.node('master-node').exec(['sh', '-c', 'kill -TERM 1']);
    const live = await node01.ipipLab(['get', 'nodes']);
    expect(live.stdout).toMatch(/\nmaster-node +NotReady +control-plane,master +<unknown> +v1\.21\.4\n/);
    expect(live.stdout).toMatch(/\nworker-node01 +Ready +/);
  });
});

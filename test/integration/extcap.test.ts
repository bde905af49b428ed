/**
 * Wireshark's interface list shows the lab: after `ipip-lab extcap install` (into the personal extcap folder of a
 * home of its own, so the machine's Wireshark is not touched), `tshark -D` lists every node's interfaces, a tshark
 * capture of worker-node01's tunl0 records a cross-node ping's inner ICMP, and uninstall takes it out of the list.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startLab, type Lab } from '../../src/testing/index.js';
import { REPO_ROOT, SEED_CNI_OVERVIEW } from '../support/cli.js';

const run = promisify(execFile);
const CLI = path.join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

let lab: Lab;
let home: string;
const environment = (): NodeJS.ProcessEnv => ({ ...process.env, HOME: home });

async function tsharkInterfaces(): Promise<string[]> {
  const { stdout } = await run('tshark', ['-D'], { env: environment() });
  return stdout.split('\n').filter((line) => line.includes('ipip-lab:'));
}

beforeAll(async () => {
  home = mkdtempSync(path.join(os.tmpdir(), 'ipip-lab-extcap-'));
  lab = await startLab({ spec: SEED_CNI_OVERVIEW, name: 'extcap' });
});

afterAll(async () => {
  await lab?.stop();
  rmSync(home, { recursive: true, force: true });
});

test('after install, tshark -D lists every node interface of the lab; a capture of tunl0 records the inner ICMP; uninstall removes them', async () => {
  const installed = await run(process.execPath, [CLI, 'extcap', 'install'], { env: environment() });
  expect(installed.stdout).toMatch(/^installed .*\/extcap\/ipip-lab: /);

  const listed = await tsharkInterfaces();
  for (const node of ['master-node', 'worker-node01', 'worker-node02']) {
    for (const iface of ['eth0', 'tunl0', 'any']) {
      expect(listed.some((line) => line.endsWith(`(extcap ${node} ${iface})`))).toBe(true);
    }
  }
  const [podA] = lab.podsOn('worker-node01');
  const [podB] = lab.podsOn('worker-node02');
  expect(listed.some((line) => line.includes(`(extcap worker-node01 ${podA.hostInterface} (${podA.name}))`))).toBe(
    true,
  );
  const tunl0 = listed.find((line) => line.endsWith('(extcap worker-node01 tunl0)'))!;
  const value = /^\d+\. (\S+) /.exec(tunl0)![1];

  const file = path.join(home, 'tunl0.pcapng');
  const capturing = run('tshark', ['-i', value, '-a', 'duration:8', '-w', file], { env: environment() });
  // The extcap reaches the node through docker exec: the ping goes once the agent's capture is armed.
  const node01 = lab.node('worker-node01');
  const deadline = Date.now() + 8_000;
  while (Date.now() < deadline) {
    const { stdout: open } = await node01.exec(['ipip-lab', 'api', 'GET', '/v1/captures']);
    if ((JSON.parse(open) as unknown[]).length > 0) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const report = await node01.ping({ from: podA.name, to: podB.name, count: 3, intervalMs: 200 });
  expect(report.received).toBe(3);
  await capturing;
  const { stdout } = await run('tshark', [
    '-r',
    file,
    '-T',
    'fields',
    '-e',
    'ip.src',
    '-e',
    'ip.dst',
    '-e',
    'icmp.type',
  ]);
  const rows = stdout.trim().split('\n');
  expect(rows).toContain(`${podA.ip}\t${podB.ip}\t8`);
  expect(rows).toContain(`${podB.ip}\t${podA.ip}\t0`);

  await run(process.execPath, [CLI, 'extcap', 'uninstall'], { env: environment() });
  expect(await tsharkInterfaces()).toEqual([]);
});

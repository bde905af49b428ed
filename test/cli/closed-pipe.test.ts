import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const CLI = 'dist/src/cli/main.js';
const KUBECTL = 'dist/src/cli/kubectl-main.js';
const directory = mkdtempSync(join(tmpdir(), 'ipip-lab-pipe-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

/** Runs a built command whose reader takes the first chunk and goes away, as `| head -1` does. */
function readFirstChunkOnly(
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...args], { env: { ...process.env, ...env } });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.once('data', () => child.stdout.destroy());
    child.on('close', (status) => resolve({ status, stderr }));
  });
}

describe('a reader that closes the pipe early', () => {
  // Big enough that the view cannot fit in the pipe's buffer before the reader leaves.
  const spec = join(directory, 'big.yaml');
  const generated = spawnSync(process.execPath, [
    CLI,
    'gen-spec',
    '--nodes',
    '200',
    '--pods-per-node',
    '100',
    '-o',
    spec,
  ]);

  it('ends kubectl get pods as SIGPIPE ends the real one: status 141, nothing on stderr', async () => {
    expect(generated.status).toBe(0);
    const result = await readFirstChunkOnly(KUBECTL, ['get', 'pods', '-o', 'wide'], { IPIP_LAB_SPEC: spec });
    expect(result).toEqual({ status: 141, stderr: '' });
  });

  it('ends ipip-lab views the same way', async () => {
    const result = await readFirstChunkOnly(CLI, ['get', 'pods', '-o', 'wide', '--spec', spec], {});
    expect(result).toEqual({ status: 141, stderr: '' });
  });
});

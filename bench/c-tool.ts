/*
 * Builds bench/c/ipip-bench.c, the forwarding benchmark's load generator and C relay baseline, for the node image.
 * The image (node:20-bookworm-slim) has no compiler, so the tool is linked statically and copied in: on this
 * machine with `cc` when it can, else inside node:20-bookworm (the node image's own build stage), with no network.
 */
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
/** The compiled bench lives in dist/bench; its C source stays in the repository's bench/c. */
const SOURCE = fileURLToPath(new URL('../../bench/c/ipip-bench.c', import.meta.url));
const OUTPUT_DIRECTORY = fileURLToPath(new URL('./c/', import.meta.url));
const BUILD_IMAGE = 'node:20-bookworm';
const FLAGS = ['-O2', '-static', '-Wall', '-Wextra', '-Werror'];

export interface CTool {
  /** The static binary on this machine. */
  readonly path: string;
  /** How it was built, for the report. */
  readonly compiler: string;
}

export async function buildCTool(log: (line: string) => void): Promise<CTool> {
  mkdirSync(OUTPUT_DIRECTORY, { recursive: true });
  const output = path.join(OUTPUT_DIRECTORY, 'ipip-bench');
  try {
    await run('cc', [...FLAGS, '-o', output, SOURCE]);
    return { path: output, compiler: 'cc on this machine' };
  } catch (error) {
    log(`ipip-bench: no static build with this machine's cc (${firstLine(error)}); building in ${BUILD_IMAGE}`);
  }
  const sourceDirectory = path.dirname(SOURCE);
  await run('docker', [
    'run',
    '--rm',
    '--network',
    'none',
    '-v',
    `${sourceDirectory}:/src:ro`,
    '-v',
    `${OUTPUT_DIRECTORY}:/out`,
    BUILD_IMAGE,
    'cc',
    ...FLAGS,
    '-o',
    '/out/ipip-bench',
    `/src/${path.basename(SOURCE)}`,
  ]);
  return { path: output, compiler: `cc in ${BUILD_IMAGE}` };
}

function firstLine(error: unknown): string {
  const { stderr, message } = error as { stderr?: string; message?: string };
  return (stderr?.trim() || message || String(error)).split('\n')[0];
}

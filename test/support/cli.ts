import { runCli } from '../../src/cli/program.js';

export const REPO_ROOT = new URL('../../', import.meta.url).pathname;
export const SEED_CNI_OVERVIEW = `${REPO_ROOT}containers/cni-overview/cluster.yaml`;
export const SEED_NETWORKING = `${REPO_ROOT}containers/networking/cluster.yaml`;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in-process with its output captured. */
export async function cli(...argv: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, { out: (s) => (stdout += s), err: (s) => (stderr += s) });
  return { code, stdout, stderr };
}

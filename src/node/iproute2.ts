/**
 * iproute2, as the node's programs drive it: the kernel's neighbour table, routes, links and network namespaces are
 * changed by `ip` itself, in batches, rather than by hand-made netlink messages, so that what the agent does is what
 * a user would type and every error is iproute2's own words.
 */
import { execFile } from 'node:child_process';

/** Runs `ip -batch -` with these lines on its standard input; rejects with what ip printed when it fails. */
export type IpBatchRunner = (lines: readonly string[]) => Promise<void>;

const IP_TIMEOUT_MS = 10_000;

/** The first line ip wrote to stderr, or the process error: what a log line or an exception should say. */
function failure(error: Error, stderr: string): Error {
  const said = stderr
    .trim()
    .split('\n')
    .find((line) => line.length > 0);
  return new Error(said ?? error.message);
}

/** `ip ARGS…`, resolving with its standard output. */
export function runIp(args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'ip',
      args,
      { timeout: IP_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) reject(failure(error, stderr));
        else resolve(stdout);
      },
    );
    // An ip that exits early (killed at the timeout, say) closes its end: the exit above reports that, and the write's
    // EPIPE must not become an uncaught error that ends the agent.
    child.stdin?.on('error', () => {});
    child.stdin?.end(input ?? '');
  });
}

/**
 * `-force`: one refused line (a peer that is not on this link, a route already gone) must not keep the others from
 * being applied; ip still exits non-zero and says which line failed.
 */
export const runIpBatch: IpBatchRunner = async (lines) => {
  await runIp(['-force', '-batch', '-'], lines.map((line) => `${line}\n`).join(''));
};

/** The same, with every line applied inside the network namespace `netns` (`ip -n NETNS -batch -`). */
export async function runIpBatchIn(netns: string, lines: readonly string[]): Promise<void> {
  await runIp(['-n', netns, '-force', '-batch', '-'], lines.map((line) => `${line}\n`).join(''));
}

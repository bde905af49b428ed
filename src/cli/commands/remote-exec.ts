/**
 * A command run through an agent (`kubectl exec`, `kubectl debug node/…`) with this process's standard streams. With
 * a terminal asked for and present, the terminal is raw meanwhile, so that every key reaches the remote shell and its
 * pseudo-terminal does the echo and the line editing.
 */
import { Readable } from 'node:stream';
import type { AgentClient } from './agent-client.js';

export async function runThroughAgent(
  agent: AgentClient,
  /** undefined: on the node itself. */
  pod: string | undefined,
  command: readonly string[],
  options: { stdin: boolean; tty: boolean },
): Promise<number> {
  const terminal = options.tty && process.stdin.isTTY;
  if (options.tty && !terminal) {
    // kubectl's own words, and like kubectl it goes on without one.
    process.stderr.write('Unable to use a TTY - input is not a terminal or the right kind of file\n');
  }
  const input = options.stdin ? process.stdin : Readable.from([]);
  if (terminal) process.stdin.setRawMode(true);
  try {
    return await agent.exec(pod, command, terminal, { input, output: process.stdout, errors: process.stderr });
  } finally {
    if (terminal) process.stdin.setRawMode(false);
    if (options.stdin) process.stdin.pause();
  }
}

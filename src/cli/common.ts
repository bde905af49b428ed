/** What every command shares: where its text goes, the --spec and -o json options, and JSON printing. */
import { InvalidArgumentError, Option } from 'commander';
import type { Range } from '../node/api-protocol.js';

/** Where a command's text goes; tests pass their own to capture it. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
}

/** SIGPIPE's exit status in a shell: what kubectl and ip exit with when their reader is gone. */
const CLOSED_PIPE_STATUS = 128 + 13;

/**
 * A reader that goes away (`kubectl get pods | head -1`) ends a command as it ends kubectl or ip: quietly, instead
 * of an unhandled EPIPE stack. A command that streams (capture) handles its output's errors itself and is left to.
 */
export function endQuietlyWhenStdoutCloses(): void {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (process.stdout.listenerCount('error') > 1) return;
    if (error.code !== 'EPIPE') throw error;
    process.exit(CLOSED_PIPE_STATUS);
  });
}

export const processIo: Io = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

export interface CommonOptions {
  spec?: string;
  output?: string;
}

export function specOption(): Option {
  return new Option(
    '--spec <file>',
    'print from this cluster spec instead of asking the running agents (default inside a node container: the agents; ' +
      'elsewhere: $IPIP_LAB_SPEC)',
  );
}

export function jsonOutputOption(): Option {
  return new Option('-o, --output <format>', 'json: structured output for scripts and tests').choices(['json']);
}

export function printJson(io: Io, value: unknown): void {
  io.out(`${JSON.stringify(value, null, 2)}\n`);
}

/** A commander argument parser for an integer option within the range. */
export function integer(name: string, { min, max }: Range): (text: string) => number {
  return (text) => {
    const value = Number(text);
    if (!/^\d+$/.test(text) || value < min || value > max)
      throw new InvalidArgumentError(`${name} must be an integer ${min}..${max}`);
    return value;
  };
}

/** Seconds as ping and curl take them (`-i 0.2`, `-m 5`), to whole milliseconds within the range. */
export function seconds(name: string, { min: minMs, max: maxMs }: Range): (text: string) => number {
  return (text) => {
    const ms = Math.round(Number(text) * 1000);
    if (!/^\d*\.?\d+$/.test(text) || ms < minMs || ms > maxMs) {
      throw new InvalidArgumentError(`${name} must be ${minMs / 1000}..${maxMs / 1000} seconds`);
    }
    return ms;
  };
}

/** What every command shares: where its text goes, the --spec and -o json options, and JSON printing. */
import { Option } from 'commander';

/** Where a command's text goes; tests pass their own to capture it. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
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

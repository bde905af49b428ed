/** A mistake in how the command was called: printed as one line, exit code 2 (as the issue asks of the agent too). */
export class UsageError extends Error {
  readonly exitCode: number = 2;
}

/**
 * A command that finished and printed its output but must exit non-zero, as ping does (1: no reply) and curl does
 * (7: could not connect, 28: timeout). Nothing more is printed for it.
 */
export class ExitStatus extends Error {
  constructor(readonly exitCode: number) {
    super(`exit status ${exitCode}`);
  }
}

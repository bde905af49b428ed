/** A mistake in how the command was called: printed as one line, exit code 2 (as the issue asks of the agent too). */
export class UsageError extends Error {
  readonly exitCode = 2;
}

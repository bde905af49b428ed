/** The failures both underlay implementations report the same way, so the agent can tell setup from machine. */

/** The implementation cannot be loaded here (not built, not installed): a setup problem, not a machine one. */
export class UnderlayUnavailableError extends Error {}

/** The socket itself could not be opened; names the usual cause. */
export function rawSocketOpenError(error: unknown): Error {
  const message = error instanceof Error ? error.message : String(error);
  const denied = /EPERM|EACCES|not permitted|permission denied/i.test(message);
  return new Error(
    `cannot open a raw IPIP socket (${message})` +
      (denied ? ': the agent needs CAP_NET_RAW, which Docker grants by default' : ''),
  );
}

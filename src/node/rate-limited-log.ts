/**
 * The node's log for lines that packets cause. Anyone who can send to the node can make it log, so these lines are
 * limited as Linux's `net_ratelimit()` limits its own: a burst of 10 per 5 s, then a count of what was held back.
 */

const BURST = 10;
const INTERVAL_NS = 5_000_000_000n;

export class RateLimitedLog {
  private windowStart: bigint | undefined;
  private linesInWindow = 0;
  private suppressed = 0;

  constructor(
    private readonly output: (line: string) => void,
    /** Nanoseconds, any origin. */
    private readonly now: () => bigint,
  ) {}

  write(line: string): void {
    const now = this.now();
    if (this.windowStart === undefined || now - this.windowStart >= INTERVAL_NS) {
      if (this.suppressed > 0) this.output(`net_ratelimit: ${this.suppressed} callbacks suppressed`);
      this.windowStart = now;
      this.linesInWindow = 0;
      this.suppressed = 0;
    }
    if (this.linesInWindow < BURST) {
      this.linesInWindow++;
      this.output(line);
    } else {
      this.suppressed++;
    }
  }

  /** `<failing> failed: <error>`, the one shape of every failure line. */
  failure(failing: string, error: unknown): void {
    this.write(`${failing} failed: ${String(error)}`);
  }

  /**
   * Calls `callback(argument)`, code the node does not control (a pod, a listener). What it throws must not unwind a
   * packet's trip through the node half done, so it is logged instead; the result says whether the call returned.
   * `failing` names the callee in that line: a constant, so that a call that returns builds no string.
   */
  call<T>(callback: (argument: T) => void, argument: T, failing: string): boolean {
    try {
      callback(argument);
      return true;
    } catch (error) {
      this.failure(failing, error);
      return false;
    }
  }
}

/**
 * Time for a simulated pod. Everything a pod does later (retransmissions, reassembly expiry, ping intervals) goes
 * through one `TimerSet`, so `SimulatedPod.close()` can stop it all and tests can drive time by hand.
 */

export interface Timer {
  cancel(): void;
}

export type SetTimer = (callback: () => void, delayMs: number) => Timer;

export interface Clock {
  /** Milliseconds since the Unix epoch, with sub-millisecond precision. */
  now: () => number;
  setTimer: SetTimer;
}

/**
 * Wall-clock based on the monotonic clock: RTTs must not jump when NTP steps the system clock, yet ping's embedded
 * timeval, TCP timestamps and the HTTP Date header want epoch time.
 */
export const systemClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  setTimer: (callback, delayMs) => {
    const handle = setTimeout(callback, Math.max(0, delayMs));
    return { cancel: () => clearTimeout(handle) };
  },
};

/** Tracks every live timer so they can all be cancelled at once. */
export class TimerSet {
  private readonly live = new Set<Timer>();

  constructor(private readonly setTimer: SetTimer) {}

  start(callback: () => void, delayMs: number): Timer {
    // Assigned once, below, but read by cancel() first when a scheduler that runs due timers at once has one of
    // them cancel everything: a const would not exist yet there.
    let inner: Timer | undefined = undefined;
    const timer: Timer = {
      cancel: () => {
        if (this.live.delete(timer)) inner?.cancel();
      },
    };
    // Registered before scheduling, in case the scheduler runs a zero delay at once.
    this.live.add(timer);
    inner = this.setTimer(() => {
      if (this.live.delete(timer)) callback();
    }, delayMs);
    return timer;
  }

  cancelAll(): void {
    for (const timer of [...this.live]) timer.cancel();
  }
}

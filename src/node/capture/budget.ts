/**
 * How much CPU a capture may take from forwarding. A capture runs on the thread that forwards, so every record it
 * writes is time a packet does not get. It may spend `share` of the CPU time this process uses (forwarding
 * included), and a short burst beyond that. Past it, the capture drops records (and counts them) until the budget
 * refills, as tcpdump loses packets when its ring fills: at full forwarding speed the capture keeps what its share
 * pays for. On a node with headroom, whose event loop waited for work most of the time, it may also use half of that
 * waiting, which no packet needed: there it keeps everything. Not on a busy node: with requests in flight, the loop
 * also waits between packets a closed loop sends back, and time spent capturing then delays the next ones.
 *
 * CPU time rather than wall time, because a node that shares its CPU with others gets less than the time that
 * passes, and a share of the time that passes would then be a larger share of what forwarding gets.
 */

import { performance } from 'node:perf_hooks';

export interface BudgetClock {
  /** Monotonic milliseconds, to time records and flushes. */
  now(): number;
  /** The CPU time this process has used, in milliseconds (every thread, user and system). */
  cpuMs(): number;
  /** The time the event loop has spent waiting for work, in milliseconds. */
  idleMs(): number;
}

export const systemClock: BudgetClock = {
  now: () => performance.now(),
  cpuMs: () => {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  },
  idleMs: () => performance.eventLoopUtilization().idle,
};

/** Capture time that may be spent at once beyond the share: ~15k small records, a burst of pings kept whole. */
const BURST_NS = 5_000_000;
/** Of the time the loop waits idle, what a capture may use: all of it would leave no slack for the next packets. */
const IDLE_SHARE = 0.5;
/** A node whose loop waited for at least this share of the time has headroom. */
const HEADROOM = 0.5;
/** A clock read costs ~50 ns here and a record ~300: one record in this many is timed. */
const SAMPLE_EVERY = 32;
/** What a record is assumed to cost until one has been timed. */
const FIRST_RECORD_COST_NS = 1000;
/** The weight of each newly timed record in the running estimate. */
const COST_SMOOTHING = 1 / 8;
/**
 * The most a timed record counts for. The largest record costs a few µs; a sample far longer means the thread was
 * preempted in the middle (a busy machine), which is not the capture's cost, and would starve it of its budget.
 */
const MAX_RECORD_SAMPLE_NS = 100_000;

export class CpuBudget {
  /** Capture time that may still be spent, in ns; below zero, records are dropped until a refill. */
  private remainingNs = BURST_NS;
  private recordCostNs = FIRST_RECORD_COST_NS;
  private records = 0;
  private cpuMsAtRefill: number;
  private idleMsAtRefill: number;
  private refilledAt: number;

  constructor(
    private readonly share: number,
    private readonly clock: BudgetClock = systemClock,
  ) {
    this.cpuMsAtRefill = clock.cpuMs();
    this.idleMsAtRefill = clock.idleMs();
    this.refilledAt = clock.now();
  }

  get exhausted(): boolean {
    return this.remainingNs < 0;
  }

  /** Before a record is written: the time, when this record is one of those timed. */
  recordStarts(): number | undefined {
    return ++this.records % SAMPLE_EVERY === 0 ? this.clock.now() : undefined;
  }

  /** After it: charges the record at the running estimate, which a timed record updates first. */
  recordEnds(startedAt: number | undefined): void {
    if (startedAt !== undefined) {
      const costNs = Math.min((this.clock.now() - startedAt) * 1e6, MAX_RECORD_SAMPLE_NS);
      this.recordCostNs += (costNs - this.recordCostNs) * COST_SMOOTHING;
    }
    this.remainingNs -= this.recordCostNs;
  }

  /**
   * Charges the CPU time used since `cpuMsAtStart` (a `cpuMs()`), for work done in one piece, like a flush: its
   * system calls are CPU time, and the wall time would also count whatever preempted it.
   */
  chargeCpuSince(cpuMsAtStart: number): void {
    this.remainingNs -= (this.clock.cpuMs() - cpuMsAtStart) * 1e6;
  }

  now(): number {
    return this.clock.now();
  }

  cpuMs(): number {
    return this.clock.cpuMs();
  }

  /** Adds the share of what the process has spent since the last refill, and of the loop's idle time if it had headroom. */
  refill(): void {
    const now = this.clock.now();
    const cpuMs = this.clock.cpuMs();
    const idleMs = this.clock.idleMs();
    const idle = idleMs - this.idleMsAtRefill;
    const headroom = idle >= (now - this.refilledAt) * HEADROOM;
    const earnedMs = (cpuMs - this.cpuMsAtRefill) * this.share + (headroom ? idle * IDLE_SHARE : 0);
    this.remainingNs = Math.min(BURST_NS, this.remainingNs + earnedMs * 1e6);
    this.refilledAt = now;
    this.cpuMsAtRefill = cpuMs;
    this.idleMsAtRefill = idleMs;
  }
}

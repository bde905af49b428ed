import { describe, expect, it } from 'vitest';
import { CpuBudget } from '../../../src/node/capture/budget.js';

/** A clock the test moves by hand. */
function manualClock() {
  const clock = { nowMs: 0, cpuMs: 0, idleMs: 0 };
  return { clock, source: { now: () => clock.nowMs, cpuMs: () => clock.cpuMs, idleMs: () => clock.idleMs } };
}

/** Charges `records` untimed records at the first estimate (1 µs each) and says whether the budget ran out. */
function spend(budget: CpuBudget, records: number): boolean {
  for (let i = 0; i < records; i++) budget.recordEnds(undefined);
  return budget.exhausted;
}

describe('CpuBudget', () => {
  it('starts with a 5 ms burst and refills by its share of the CPU time the process used', () => {
    const { clock, source } = manualClock();
    const budget = new CpuBudget(0.05, source);
    expect(spend(budget, 5000)).toBe(false);
    expect(spend(budget, 1)).toBe(true);
    clock.nowMs += 10;
    clock.cpuMs += 10;
    budget.refill();
    // 5 % of 10 ms: 500 µs, enough for the one record over and 499 more.
    expect(spend(budget, 499)).toBe(false);
    expect(spend(budget, 1)).toBe(true);
  });

  it('never holds more than the burst, however long the process ran', () => {
    const { clock, source } = manualClock();
    const budget = new CpuBudget(0.05, source);
    clock.nowMs += 60_000;
    clock.cpuMs += 60_000;
    budget.refill();
    expect(spend(budget, 5000)).toBe(false);
    expect(spend(budget, 1)).toBe(true);
  });

  it("adds half the idle time of a loop that waited most of the time, and none of a busy loop's", () => {
    const { clock, source } = manualClock();
    const quiet = new CpuBudget(0.05, source);
    const busy = new CpuBudget(0.05, source);
    spend(quiet, 5001);
    spend(busy, 5001);
    clock.nowMs += 10;
    clock.idleMs += 6;
    quiet.refill();
    expect(spend(quiet, 2999)).toBe(false); // 3 ms earned, 1 µs of it owed
    expect(spend(quiet, 1)).toBe(true);

    clock.nowMs += 10;
    clock.idleMs += 4;
    busy.refill(); // over 20 ms it idled 10: still half, so it counts
    expect(busy.exhausted).toBe(false);
    clock.nowMs += 10;
    clock.idleMs += 4;
    spend(busy, 10_000);
    busy.refill(); // 4 ms idle of 10: busy
    expect(busy.exhausted).toBe(true);
  });

  it('charges a timed record what it took, and later records the running estimate', () => {
    const { clock, source } = manualClock();
    const budget = new CpuBudget(0.05, source);
    let started: number | undefined;
    for (let i = 0; i < 32; i++) started = budget.recordStarts();
    expect(started).toBe(0);
    clock.nowMs += 0.009; // the 32nd record took 9 µs: the estimate moves an eighth of the way, 1 → 2 µs
    budget.recordEnds(started);
    expect(spend(budget, 2499)).toBe(false); // 5 ms less 2 µs, less 2,499 × 2 µs: nothing left, nothing owed
    expect(spend(budget, 1)).toBe(true);
  });

  it('counts a timed record preempted midway as 100 µs at most, and charges a flush its CPU time, not its wall time', () => {
    const { clock, source } = manualClock();
    const budget = new CpuBudget(0.05, source);
    let started: number | undefined;
    for (let i = 0; i < 32; i++) started = budget.recordStarts();
    clock.nowMs += 10; // 10 ms of wall time for one record: another thread had the CPU
    budget.recordEnds(started);
    // The estimate moved an eighth of the way to 100 µs (1 → 13.4 µs), not to 10 ms: 5 ms still pays for ~370.
    expect(spend(budget, 350)).toBe(false);
    const fresh = new CpuBudget(0.05, source);
    const cpuAtStart = clock.cpuMs;
    clock.nowMs += 20;
    clock.cpuMs += 0.5;
    fresh.chargeCpuSince(cpuAtStart);
    expect(spend(fresh, 4499)).toBe(false); // 5 ms less the flush's 0.5 ms of CPU
    expect(spend(fresh, 2)).toBe(true);
  });
});

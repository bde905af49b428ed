import { describe, expect, it } from 'vitest';
import { TimerSet, type SetTimer } from '../../../../src/node/userspace/pod/clock.js';

describe('TimerSet', () => {
  it('runs a timer its scheduler fires at once, and never a cancelled one', () => {
    const immediate: SetTimer = (callback) => {
      callback();
      return { cancel: () => undefined };
    };
    const fired: string[] = [];
    new TimerSet(immediate).start(() => fired.push('now'), 0);
    expect(fired).toEqual(['now']);
  });

  it('cancels everything at once', () => {
    const scheduled: Array<() => void> = [];
    const later: SetTimer = (callback) => {
      scheduled.push(callback);
      return { cancel: () => undefined };
    };
    const timers = new TimerSet(later);
    const fired: number[] = [];
    timers.start(() => fired.push(1), 10);
    timers.start(() => fired.push(2), 20).cancel();
    timers.cancelAll();
    for (const callback of scheduled) callback();
    expect(fired).toEqual([]);
  });
});

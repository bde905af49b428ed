/** The log for lines packets cause: net_ratelimit()'s burst and window, and callbacks whose throws it contains. */
import { describe, expect, it } from 'vitest';
import { RateLimitedLog } from '../../../../src/node/rate-limited-log.js';

const SECOND = 1_000_000_000n;

function logAt(start: bigint) {
  const lines: string[] = [];
  const clock = { now: start };
  return {
    lines,
    clock,
    log: new RateLimitedLog(
      (line) => void lines.push(line),
      () => clock.now,
    ),
  };
}

describe('RateLimitedLog', () => {
  it('writes 10 lines per 5 s window, then the count it held back when the next window opens', () => {
    const { lines, clock, log } = logAt(7n * SECOND);
    for (let i = 0; i < 25; i++) log.write(`line ${i}`);
    expect(lines).toEqual(Array.from({ length: 10 }, (_, i) => `line ${i}`));

    clock.now += 5n * SECOND - 1n;
    log.write('still held back');
    expect(lines).toHaveLength(10);

    clock.now += 1n;
    log.write('next window');
    expect(lines.slice(10)).toEqual(['net_ratelimit: 16 callbacks suppressed', 'next window']);
  });

  it('a window with nothing held back opens without a count', () => {
    const { lines, clock, log } = logAt(0n);
    log.write('a');
    clock.now += 6n * SECOND;
    log.write('b');
    expect(lines).toEqual(['a', 'b']);
  });

  it('call: a callback that returns says so; one that throws is logged as a failure, not thrown', () => {
    const { lines, log } = logAt(0n);
    const seen: number[] = [];
    expect(log.call((value: number) => void seen.push(value), 1, 'n: listener')).toBe(true);
    expect(
      log.call(
        () => {
          throw new Error('boom');
        },
        2,
        'n: listener',
      ),
    ).toBe(false);
    expect(seen).toEqual([1]);
    expect(lines).toEqual(['n: listener failed: Error: boom']);
  });
});

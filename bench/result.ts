/**
 * One measured figure. These machines are noisy, so no figure stands alone: each carries a baseline measured in the
 * same run, in the same unit, and the ratio between the two.
 */
export interface BenchResult {
  /** What was measured, e.g. `LpmTable.lookup, 100k routes`. */
  readonly name: string;
  readonly unit: string;
  readonly value: number;
  readonly baseline: { readonly name: string; readonly value: number };
  /**
   * value / baseline, or null when the baseline is 0 (a ratio to nothing means nothing). Figures measured in pairs
   * (each run of ours next to a run of the baseline) give the median of the pairs' ratios instead, which a machine
   * that changes speed between pairs leaves alone.
   */
  readonly ratio: number | null;
  /** The goal this figure is held to, if any, e.g. `>= 5M lookups/s`. */
  readonly target?: { readonly text: string; readonly pass: boolean };
  /** How the figure came about, where that is too long for its name (printed under the table). */
  readonly note?: string;
}

export interface Benchmark {
  readonly name: string;
  readonly run: () => Promise<BenchResult[]>;
}

export function resultOf(
  name: string,
  unit: string,
  value: number,
  baseline: BenchResult['baseline'],
  target?: BenchResult['target'],
  extras: { readonly note?: string; readonly pairedRatio?: number } = {},
): BenchResult {
  const ratio = extras.pairedRatio ?? (baseline.value === 0 ? null : value / baseline.value);
  return { name, unit, value, baseline, ratio, target, note: extras.note };
}

/** The middle value (the upper one of an even count): what a noisy figure is summarised by across runs. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of no values');
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
}

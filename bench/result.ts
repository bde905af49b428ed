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
  /** value / baseline, or null when the baseline is 0 (a ratio to nothing means nothing). */
  readonly ratio: number | null;
  /** The goal this figure is held to, if any, e.g. `>= 5M lookups/s`. */
  readonly target?: { readonly text: string; readonly pass: boolean };
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
): BenchResult {
  return { name, unit, value, baseline, ratio: baseline.value === 0 ? null : value / baseline.value, target };
}

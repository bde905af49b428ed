/**
 * The part of kubectl's JSONPath templates (`-o jsonpath='{.items[0].metadata.name}'`) that scripts use to pick
 * fields: literal text, and `{…}` paths of `.field`, `[N]` and `[*]`. Anything else (range, filters, recursive
 * descent) is refused by name rather than half-evaluated.
 */
import { UsageError } from './errors.js';

type Step = { field: string } | { index: number } | { all: true };

const STEP = /^(?:\.([A-Za-z0-9_-]+)|\[(-?\d+)\]|\[\*\])/;

function parsePath(expression: string, template: string): Step[] {
  let rest = expression.trim().replace(/^\$/, '');
  const steps: Step[] = [];
  while (rest !== '') {
    const match = STEP.exec(rest);
    if (!match) {
      throw new UsageError(
        `jsonpath ${JSON.stringify(template)}: only .field, [N] and [*] are supported here (not ${JSON.stringify(rest)})`,
      );
    }
    if (match[1] !== undefined) steps.push({ field: match[1] });
    else if (match[2] !== undefined) steps.push({ index: Number(match[2]) });
    else steps.push({ all: true });
    rest = rest.slice(match[0].length);
  }
  return steps;
}

function evaluate(value: unknown, steps: readonly Step[], template: string): unknown[] {
  let values = [value];
  const fail = (detail: string): never => {
    throw new UsageError(`error executing jsonpath ${JSON.stringify(template)}: Error executing template: ${detail}`);
  };
  for (const step of steps) {
    values = values.flatMap((current) => {
      if ('field' in step) {
        if (current === null || typeof current !== 'object' || Array.isArray(current) || !(step.field in current)) {
          return fail(`${step.field} is not found`);
        }
        return [(current as Record<string, unknown>)[step.field]];
      }
      if (!Array.isArray(current)) return fail(`${JSON.stringify(current)} is not array or slice`);
      if ('all' in step) return current as unknown[];
      const index = step.index < 0 ? current.length + step.index : step.index;
      if (index < 0 || index >= current.length) {
        return fail(`array index out of bounds: index ${step.index}, length ${current.length}`);
      }
      return [current[index] as unknown];
    });
  }
  return values;
}

function print(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** The template's output for `object`, with no newline added (kubectl adds none). */
export function renderJsonPath(template: string, object: unknown): string {
  let out = '';
  let rest = template;
  while (rest !== '') {
    const open = rest.indexOf('{');
    if (open < 0) return out + rest;
    const close = rest.indexOf('}', open);
    if (close < 0) throw new UsageError(`jsonpath ${JSON.stringify(template)}: unclosed action`);
    out += rest.slice(0, open);
    out += evaluate(object, parsePath(rest.slice(open + 1, close), template), template)
      .map(print)
      .join(' ');
    rest = rest.slice(close + 1);
  }
  return out;
}

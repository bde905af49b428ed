/** Calico's label selectors, by example and against an evaluator of the expression tree they were printed from. */
import { describe, expect, test } from 'vitest';
import { parseSelector, SelectorError, type Labels } from '../../src/calico/selector.js';

const RR = { 'route-reflector': 'true', 'kubernetes.io/hostname': 'worker-node01', rack: 'r1' };
const WORKER = { 'kubernetes.io/hostname': 'worker-node02', rack: 'r2' };

describe('parseSelector', () => {
  test.each([
    ['all()', true, true],
    ["route-reflector == 'true'", true, false],
    ['route-reflector == "true"', true, false],
    ["route-reflector != 'true'", false, true],
    ['has(route-reflector)', true, false],
    ['!has(route-reflector)', false, true],
    ["rack in {'r1', 'r3'}", true, false],
    ["rack not in {'r1'}", false, true],
    ["kubernetes.io/hostname starts with 'worker'", true, true],
    ["kubernetes.io/hostname ends with '02'", false, true],
    ["kubernetes.io/hostname contains 'node0'", true, true],
    ["has(rack) && rack != 'r1'", false, true],
    ["rack == 'r1' || rack == 'r2' && has(route-reflector)", true, false],
    ["(rack == 'r1' || rack == 'r2') && !has(route-reflector)", false, true],
    ["absent not in {'x'}", true, true],
    ["absent in {'x'}", false, false],
  ])('%s', (text, onReflector, onWorker) => {
    const selector = parseSelector(text);
    expect([selector.matches(RR), selector.matches(WORKER)]).toEqual([onReflector, onWorker]);
  });

  test.each([
    ['route-reflector = true', 'expected an operator after "route-reflector" at character 17'],
    ['rack == r1', 'expected a quoted string at character 9'],
    ['has(rack', 'expected ")" at character 9'],
    ["rack == 'r1' &&", 'expected a label key at character 16'],
    ["rack == 'r1' extra", 'unexpected text at character 14'],
    ["rack in {'r1'", 'expected "}" at character 14'],
    ['', 'expected a label key at character 1'],
  ])('refuses %j: %s', (text, why) => {
    expect(() => parseSelector(text)).toThrow(SelectorError);
    expect(() => parseSelector(text)).toThrow(`selector ${JSON.stringify(text)}: ${why}`);
  });
});

type Tree =
  | { op: 'all' }
  | { op: 'has'; key: string }
  | { op: '==' | '!='; key: string; value: string }
  | { op: 'in' | 'not in'; key: string; values: string[] }
  | { op: '!'; operand: Tree }
  | { op: '&&' | '||'; left: Tree; right: Tree };

const KEYS = ['a', 'b', 'x.io/c'];
const VALUES = ['1', '2', ''];

function random(seed: number) {
  let state = seed;
  const next = () => (state = (state * 1103515245 + 12345) & 0x7fffffff) / 0x80000000;
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)];
  return { next, pick };
}

function randomTree(r: ReturnType<typeof random>, depth: number): Tree {
  const leaf = depth <= 0 || r.next() < 0.35;
  if (leaf) {
    const op = r.pick(['all', 'has', '==', '!=', 'in', 'not in'] as const);
    if (op === 'all') return { op };
    if (op === 'has') return { op, key: r.pick(KEYS) };
    if (op === 'in' || op === 'not in') return { op, key: r.pick(KEYS), values: VALUES.filter(() => r.next() < 0.5) };
    return { op, key: r.pick(KEYS), value: r.pick(VALUES) };
  }
  const op = r.pick(['!', '&&', '||'] as const);
  if (op === '!') return { op, operand: randomTree(r, depth - 1) };
  return { op, left: randomTree(r, depth - 1), right: randomTree(r, depth - 1) };
}

/** Fully parenthesised, so the text's meaning is the tree's whatever the precedence. */
function print(tree: Tree): string {
  switch (tree.op) {
    case 'all':
      return 'all()';
    case 'has':
      return `has(${tree.key})`;
    case '==':
    case '!=':
      return `${tree.key} ${tree.op} '${tree.value}'`;
    case 'in':
    case 'not in':
      return `${tree.key} ${tree.op} {${tree.values.map((v) => `'${v}'`).join(', ')}}`;
    case '!':
      return `!(${print(tree.operand)})`;
    default:
      return `(${print(tree.left)}) ${tree.op} (${print(tree.right)})`;
  }
}

function evaluate(tree: Tree, labels: Labels): boolean {
  switch (tree.op) {
    case 'all':
      return true;
    case 'has':
      return tree.key in labels;
    case '==':
      return labels[tree.key] === tree.value;
    case '!=':
      return labels[tree.key] !== tree.value;
    case 'in':
      return tree.key in labels && tree.values.includes(labels[tree.key]);
    case 'not in':
      return !(tree.key in labels && tree.values.includes(labels[tree.key]));
    case '!':
      return !evaluate(tree.operand, labels);
    case '&&':
      return evaluate(tree.left, labels) && evaluate(tree.right, labels);
    case '||':
      return evaluate(tree.left, labels) || evaluate(tree.right, labels);
  }
}

test('2,000 random selectors match exactly the label sets their trees do', () => {
  const r = random(4456);
  const labelSets: Labels[] = Array.from({ length: 27 }, (_, i) =>
    Object.fromEntries(
      KEYS.flatMap((key, k) => {
        const digit = Math.floor(i / 3 ** k) % 3;
        return digit === 0 ? [] : [[key, VALUES[digit - 1]]];
      }),
    ),
  );
  for (let i = 0; i < 2000; i++) {
    const tree = randomTree(r, 4);
    const selector = parseSelector(print(tree));
    for (const labels of labelSets) expect(selector.matches(labels), print(tree)).toBe(evaluate(tree, labels));
  }
});

test('&& binds tighter than ||, and ! tighter than both, without parentheses', () => {
  const text = "!has(a) || a == '1' && b == '2'";
  const tree: Tree = {
    op: '||',
    left: { op: '!', operand: { op: 'has', key: 'a' } },
    right: { op: '&&', left: { op: '==', key: 'a', value: '1' }, right: { op: '==', key: 'b', value: '2' } },
  };
  const labelSets: Record<string, string>[] = [{}, { a: '1' }, { a: '1', b: '2' }, { a: '2', b: '2' }];
  for (const labels of labelSets) {
    expect(parseSelector(text).matches(labels)).toBe(evaluate(tree, labels));
  }
});

/**
 * Issue 7, point 4: bad specs. Each mistake the issue names is refused with a SpecError whose field is the one at
 * fault (test/calico/spec.test.ts covers the whole grammar; here is the list, on the robustness lab's own
 * spec), and text mutated at random ends in a SpecError or a cluster, never in another exception: the agent and the
 * CLI turn a SpecError into exit code 2 with the field named, anything else into a stack trace.
 *
 * That the agent also refuses before touching the network is checked on the real image, in lab.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { buildCluster, parseSpec, SpecError } from '../../src/calico/index.js';
import { loadSpecFile } from '../../src/testing/spec-file.js';
import { mulberry32, randomInt } from '../support/random.js';
import { BAD_SPECS, ROBUSTNESS_SPEC } from './support/specs.js';

/** The lab's spec with its workload files inlined, so every variant is one self-contained text. */
const bundled = loadSpecFile(ROBUSTNESS_SPEC).bundled;

function parse(text: string) {
  // The bundled text names no workload file.
  return buildCluster(parseSpec(text, { source: 'robustness.yaml', readFile: () => '' }));
}

function refusal(text: string): SpecError {
  try {
    parse(text);
  } catch (error) {
    if (error instanceof SpecError) return error;
    throw error;
  }
  throw new Error('the spec was accepted');
}

describe("the issue's bad specs", () => {
  it('the spec they start from is valid', () => {
    expect(parse(bundled).pods).toHaveLength(3);
  });

  for (const bad of BAD_SPECS) {
    it(`${bad.name}: refused at ${bad.field}`, () => {
      const error = refusal(bad.edit(bundled));
      expect(error.field).toBe(bad.field);
      expect(error.message).toContain(`robustness.yaml: ${bad.field}: `);
      for (const fragment of bad.says) expect(error.message).toContain(fragment);
    });
  }
});

describe('YAML the parser library refuses by throwing', () => {
  const spec = parseYaml(bundled) as Record<string, unknown>;
  const cases: [string, string, string][] = [
    [
      'an alias bomb',
      'a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n',
      'Excessive alias count',
    ],
    ['an alias without its anchor', bundled.replace(/^nodes:\n/m, 'nodes:\n  - *nowhere\n'), 'Unresolved alias'],
    [
      'an alias inside its own anchor',
      bundled.replace(/^nodes:\n/m, 'nodes: &nodes\n  - *nodes\n'),
      'an alias refers to a node that contains it',
    ],
    [
      'a circular pod template',
      bundled.replace(/^(\s+)template:\n/m, '$1template: &t\n$1  loop: *t\n'),
      'an alias refers to a node that contains it',
    ],
  ];
  for (const [name, text, says] of cases) {
    it(`${name}: a SpecError, "invalid YAML"`, () => {
      const error = refusal(text);
      expect(error.message).toContain('invalid YAML');
      expect(error.message).toContain(says);
    });
  }

  it('.nan and .inf are shown as such, not as null', () => {
    const nan = stringifyYaml({ ...spec, pool: { ...(spec.pool as object), blockSize: Number.NaN } });
    expect(refusal(nan).message).toContain('pool.blockSize: NaN is not an integer');
    const inf = stringifyYaml({ ...spec, network: { ...(spec.network as object), mtu: Number.POSITIVE_INFINITY } });
    expect(refusal(inf).message).toContain('network.mtu: Infinity is not an integer');
  });
});

describe('specs mutated at random', () => {
  /** YAML that changes meaning: anchors, aliases, tags, special numbers, flow brackets, merge keys. */
  const TOKENS = [
    '*a',
    '&a',
    '!!binary aGk=',
    '!!str',
    '!!int',
    '.nan',
    '.inf',
    '-.inf',
    '~',
    'null',
    '[',
    ']',
    '{',
    '}',
    '<<:',
    '0x1f',
    '1e400',
    '-0',
    '"',
    "'",
    '|',
    '>',
    '- ',
    ': ',
    '#',
    '%',
    '@',
    '`',
    '\t',
    '10.32.0.11',
    '192.168.0.0/16',
    '26',
    '33',
    '0',
    '-1',
    '99999999999999999999',
    'Always',
    'worker',
    'true',
    'nodes',
    '__proto__',
    'constructor',
    '\u0000',
    '\ufeff',
  ];
  const ROUNDS = 4000;

  it(`${ROUNDS} mutations: a cluster or a SpecError naming where, never another exception`, () => {
    const random = mulberry32(0x5bec);
    const lines = bundled.split('\n');
    const outcomes = { accepted: 0, refused: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const mutated = [...lines];
      for (let edits = 1 + randomInt(random, 3); edits > 0; edits--) {
        const at = randomInt(random, mutated.length);
        const line = mutated[at];
        switch (randomInt(random, 6)) {
          case 0:
            mutated.splice(at, 1);
            break;
          case 1:
            mutated.splice(at, 0, mutated[randomInt(random, mutated.length)]);
            break;
          case 2: {
            const column = randomInt(random, line.length + 1);
            mutated[at] = `${line.slice(0, column)}${TOKENS[randomInt(random, TOKENS.length)]}${line.slice(column)}`;
            break;
          }
          case 3: {
            // A value swapped for another line's value.
            const other = mutated[randomInt(random, mutated.length)];
            mutated[at] = `${line.split(':')[0]}:${other.split(':').slice(1).join(':')}`;
            break;
          }
          case 4:
            mutated[at] = line.replace(/^\s*/, (indent) => (random() < 0.5 ? indent.slice(1) : `${indent} `));
            break;
          default:
            mutated[at] = line.slice(0, randomInt(random, line.length + 1));
        }
      }
      const text = mutated.join('\n');
      try {
        parse(text);
        outcomes.accepted++;
      } catch (error) {
        if (!(error instanceof SpecError)) {
          throw new Error(`round ${round}: ${String(error)}\n--- spec ---\n${text}`);
        }
        expect(error.message.startsWith('robustness.yaml: ')).toBe(true);
        outcomes.refused++;
      }
    }
    console.info(`spec fuzz: ${outcomes.refused} refused with a SpecError, ${outcomes.accepted} still valid`);
    expect(outcomes.refused).toBeGreaterThan(ROUNDS / 2);
  });
});

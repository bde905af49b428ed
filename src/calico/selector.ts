/**
 * Calico's label selectors (libcalico-go/lib/selector), as BGPPeer's `nodeSelector` and `peerSelector` and IPPool's
 * `nodeSelector` take them: `all()`, `has(k)`, `k == 'v'`, `k != 'v'`, `k in {'a', 'b'}`, `k not in {…}`,
 * `k contains 's'`, `k starts with 's'`, `k ends with 's'`, `!`, `&&`, `||` and parentheses. `&&` binds tighter
 * than `||`, as in Calico's parser. A selector that does not parse is refused with where and why.
 */

export type Labels = Readonly<Record<string, string>>;

export interface Selector {
  /** The selector's text as given. */
  readonly text: string;
  matches(labels: Labels): boolean;
}

export class SelectorError extends Error {}

type Matcher = (labels: Labels) => boolean;

/** Label keys as Calico's tokenizer reads them: a DNS prefix, a slash, a name (`projectcalico.org/name`). */
const LABEL = /^[a-zA-Z0-9_./-]+/;
const STRING = /^("[^"]*"|'[^']*')/;
const SPACE = /^\s+/;

export function parseSelector(text: string): Selector {
  const parser = new Parser(text);
  const matcher = parser.expression();
  parser.end();
  return { text, matches: matcher };
}

/** An absent label is in no set, so `k not in {…}` holds for it, as `k != 'v'` does. */
const isIn = (value: string | undefined, set: ReadonlySet<string>): boolean => value !== undefined && set.has(value);

class Parser {
  private at = 0;

  constructor(private readonly text: string) {}

  expression(): Matcher {
    const terms = [this.conjunction()];
    while (this.take('||')) terms.push(this.conjunction());
    return terms.length === 1 ? terms[0] : (labels) => terms.some((term) => term(labels));
  }

  end(): void {
    this.skipSpace();
    if (this.at < this.text.length) this.fail('unexpected text');
  }

  private conjunction(): Matcher {
    const factors = [this.unary()];
    while (this.take('&&')) factors.push(this.unary());
    return factors.length === 1 ? factors[0] : (labels) => factors.every((factor) => factor(labels));
  }

  private unary(): Matcher {
    if (this.take('!')) {
      const operand = this.unary();
      return (labels) => !operand(labels);
    }
    if (this.take('(')) {
      const inner = this.expression();
      this.expect(')');
      return inner;
    }
    if (this.take('all()')) return () => true;
    if (this.take('has(')) {
      const key = this.label();
      this.expect(')');
      return (labels) => key in labels;
    }
    return this.comparison();
  }

  private comparison(): Matcher {
    const key = this.label();
    const value = (labels: Labels) => labels[key];
    if (this.take('==')) {
      const wanted = this.string();
      return (labels) => value(labels) === wanted;
    }
    if (this.take('!=')) {
      const unwanted = this.string();
      return (labels) => value(labels) !== unwanted;
    }
    if (this.takeWord('not')) {
      this.expectWord('in');
      const set = this.set();
      return (labels) => !isIn(value(labels), set);
    }
    if (this.takeWord('in')) {
      const set = this.set();
      return (labels) => isIn(value(labels), set);
    }
    if (this.takeWord('contains')) {
      const part = this.string();
      return (labels) => value(labels)?.includes(part) ?? false;
    }
    if (this.takeWord('starts')) {
      this.expectWord('with');
      const prefix = this.string();
      return (labels) => value(labels)?.startsWith(prefix) ?? false;
    }
    if (this.takeWord('ends')) {
      this.expectWord('with');
      const suffix = this.string();
      return (labels) => value(labels)?.endsWith(suffix) ?? false;
    }
    return this.fail(`expected an operator after ${JSON.stringify(key)}`);
  }

  private set(): Set<string> {
    this.expect('{');
    const members = new Set<string>();
    if (!this.take('}')) {
      do members.add(this.string());
      while (this.take(','));
      this.expect('}');
    }
    return members;
  }

  private label(): string {
    this.skipSpace();
    const match = LABEL.exec(this.text.slice(this.at));
    if (!match) return this.fail('expected a label key');
    this.at += match[0].length;
    return match[0];
  }

  private string(): string {
    this.skipSpace();
    const match = STRING.exec(this.text.slice(this.at));
    if (!match) return this.fail('expected a quoted string');
    this.at += match[0].length;
    return match[0].slice(1, -1);
  }

  private skipSpace(): void {
    const match = SPACE.exec(this.text.slice(this.at));
    if (match) this.at += match[0].length;
  }

  private take(token: string): boolean {
    this.skipSpace();
    if (!this.text.startsWith(token, this.at)) return false;
    this.at += token.length;
    return true;
  }

  /** A keyword operator, not the start of a longer label (`in` is not `inner`). */
  private takeWord(word: string): boolean {
    this.skipSpace();
    if (!this.text.startsWith(word, this.at) || LABEL.test(this.text.slice(this.at + word.length))) return false;
    this.at += word.length;
    return true;
  }

  private expect(token: string): void {
    if (!this.take(token)) this.fail(`expected ${JSON.stringify(token)}`);
  }

  private expectWord(word: string): void {
    if (!this.takeWord(word)) this.fail(`expected ${JSON.stringify(word)}`);
  }

  private fail(why: string): never {
    throw new SelectorError(`selector ${JSON.stringify(this.text)}: ${why} at character ${this.at + 1}`);
  }
}

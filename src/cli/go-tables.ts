/**
 * The Go printers calicoctl's output goes through, reproduced byte for byte: olekukonko/tablewriter v0.0.5 (the boxed
 * tables of `calicoctl node status` and `calicoctl ipam show`), text/tabwriter as calicoctl's resource printer
 * configures it (`calicoctl get … -o wide`), and fmt's `%.5g` and `%.f` for the IPAM numbers.
 */

/** tablewriter's MAX_ROW_WIDTH: a cell wider than this is word-wrapped. */
const TABLEWRITER_MAX_WIDTH = 30;
const WRAP_PENALTY = 1e5;
/** tablewriter's `decimal` pattern: such cells are right-aligned under ALIGN_DEFAULT. */
const DECIMAL = /^-?(?:\d{1,3}(?:,\d{3})*|\d+)(?:\.\d+)?$/;

/**
 * tablewriter's WrapWords: splits words into lines of at most `limit` columns with minimal raggedness (the sum of the
 * squared gaps at each line's end, the last line free; a line over the limit costs the penalty more).
 */
function wrapWords(words: readonly string[], limit: number): string[][] {
  const n = words.length;
  const length = (i: number, j: number): number =>
    words.slice(i, j + 1).reduce((sum, word) => sum + word.length, 0) + (j - i);
  const cost = new Array<number>(n).fill(2 ** 31 - 1);
  const breakAt = new Array<number>(n).fill(0);
  for (let i = n - 1; i >= 0; i--) {
    if (length(i, n - 1) <= limit) {
      cost[i] = 0;
      breakAt[i] = n;
      continue;
    }
    for (let j = i + 1; j < n; j++) {
      const gap = limit - length(i, j - 1);
      let c = gap * gap + cost[j];
      if (length(i, j - 1) > limit) c += WRAP_PENALTY;
      if (c < cost[i]) {
        cost[i] = c;
        breakAt[i] = j;
      }
    }
  }
  const lines: string[][] = [];
  for (let i = 0; i < n; i = breakAt[i]) lines.push(words.slice(i, breakAt[i]));
  return lines;
}

/** tablewriter's WrapString: words split on single spaces; a word wider than the limit raises the limit to it. */
function wrapString(text: string, limit: number): string[] {
  const words = text.replace(/\n/g, ' ').split(' ');
  let lim = limit;
  for (const word of words) if (word.length > lim) lim = word.length;
  return wrapWords(words, lim).map((line) => line.join(' '));
}

/** tablewriter's parseDimension with autoWrap and reflow on: the cell's lines and the width it asks of its column. */
function cellLines(text: string): { lines: string[]; width: number } {
  const raw = text.split('\n');
  const widest = Math.min(Math.max(...raw.map((line) => line.length)), TABLEWRITER_MAX_WIDTH);
  const lines = wrapString(raw.join(' '), widest);
  return { lines, width: Math.max(widest, ...lines.map((line) => line.length)) };
}

/** tablewriter's Title: header text uppercased, `_` (and a `.` not between digits) read as a space. */
function title(name: string): string {
  const chars = [...name];
  const numOrSpace = (c: string | undefined): boolean => c !== undefined && /[0-9 ]/.test(c);
  const mapped = chars.map((c, i) => {
    if (c === '_') return ' ';
    if (c === '.' && ((i !== 0 && !numOrSpace(chars[i - 1])) || (i !== chars.length - 1 && !numOrSpace(chars[i + 1]))))
      return ' ';
    return c;
  });
  const trimmed = mapped.join('').trim();
  return (trimmed.length === 0 && name.length > 0 ? ' ' : trimmed).toUpperCase();
}

/** tablewriter's Pad: centred, the odd space on the right. */
function centre(text: string, width: number): string {
  const gap = width - text.length;
  if (gap <= 0) return text;
  const left = Math.floor(gap / 2);
  return ' '.repeat(left) + text + ' '.repeat(gap - left);
}

/**
 * A table as `tablewriter.NewWriter(os.Stdout)` with SetHeader, Append and Render and no other setting prints it:
 * borders, centred upper-case headers, cells left-aligned unless they are numbers, wrapped at 30 columns.
 */
export function renderTablewriter(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  const measure = (cells: readonly string[]): string[][] =>
    cells.map((cell, column) => {
      const { lines, width } = cellLines(cell);
      widths[column] = Math.max(widths[column] ?? 0, width);
      return lines;
    });
  const headerLines = measure(header);
  const rowLines = rows.map(measure);
  const rule = `+${widths.map((width) => '-'.repeat(width + 2)).join('+')}+\n`;
  const out: string[] = [rule];
  const headerHeight = Math.max(...headerLines.map((lines) => lines.length));
  for (let line = 0; line < headerHeight; line++) {
    const cells = widths.map((width, column) => centre(title(headerLines[column]?.[line] ?? ''), width));
    out.push(`| ${cells.join(' | ')} |\n`);
  }
  out.push(rule);
  for (const row of rowLines) {
    const height = Math.max(...row.map((lines) => lines.length));
    for (let line = 0; line < height; line++) {
      // tablewriter fills a shorter cell's missing lines with two spaces.
      const cells = row.map((lines, column) => {
        const text = lines[line] ?? '  ';
        const gap = ' '.repeat(Math.max(0, widths[column] - text.length));
        return DECIMAL.test(text.trim()) ? gap + text : text + gap;
      });
      out.push(`| ${cells.join(' | ')} |\n`);
    }
  }
  out.push(rule);
  return out.join('');
}

/**
 * `tabwriter.NewWriter(os.Stdout, 5, 1, 3, ' ', 0)` over lines whose every cell, the last too, ends in a tab, as
 * calicoctl's table templates write them: each column as wide as its widest cell plus 3, at least 5, trailing
 * padding included.
 */
export function renderCalicoctlTabwriter(rows: readonly (readonly string[])[]): string {
  const widths = rows[0].map((_, column) => Math.max(5, ...rows.map((row) => row[column].length + 3)));
  return rows.map((row) => `${row.map((cell, column) => cell.padEnd(widths[column])).join('')}\n`).join('');
}

/** Rounds a non-negative integer's decimal digits to `precision` significant ones, ties to even (Go's strconv). */
function roundDigits(digits: string, precision: number): { digits: string; exponent: number } {
  let exponent = digits.length - 1;
  if (digits.length <= precision) return { digits, exponent };
  const kept = digits.slice(0, precision);
  const rest = digits.slice(precision);
  const half = rest[0] > '5' || (rest[0] === '5' && /[1-9]/.test(rest.slice(1)));
  const tie = rest[0] === '5' && !/[1-9]/.test(rest.slice(1));
  const up = half || (tie && Number(kept[kept.length - 1]) % 2 === 1);
  if (!up) return { digits: kept, exponent };
  const bumped = (BigInt(kept) + 1n).toString();
  if (bumped.length > precision) exponent += 1;
  return { digits: bumped.slice(0, precision), exponent };
}

/** Go's `%.<precision>g` of a non-negative integer: `65536`, `1.0486e+06`, trailing zeros dropped. */
export function goFormatG(value: number, precision = 5): string {
  if (!Number.isInteger(value) || value < 0) throw new RangeError(`goFormatG takes a non-negative integer: ${value}`);
  if (value === 0) return '0';
  const { digits, exponent } = roundDigits(String(value), precision);
  if (exponent < precision)
    return (digits + '0'.repeat(Math.max(0, exponent + 1 - digits.length))).slice(0, exponent + 1);
  const mantissa = `${digits[0]}.${digits.slice(1)}`.replace(/0+$/, '').replace(/\.$/, '');
  return `${mantissa}e+${String(exponent).padStart(2, '0')}`;
}

/** Go's `%.f`: the float rounded to an integer, an exact half to even. */
export function goFormatF0(value: number): string {
  const floor = Math.floor(value);
  const fraction = value - floor;
  const rounded = fraction > 0.5 || (fraction === 0.5 && floor % 2 !== 0) ? floor + 1 : floor;
  return String(rounded);
}

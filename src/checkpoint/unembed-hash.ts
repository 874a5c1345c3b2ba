// tuned-lens's `unembed_hash`: sha256 of `np.array_str(W.float().numpy(), precision=1)` over the
// unembedding matrix (tuned_lens.utils.tensor_hash). Reproducing it means reproducing NumPy's
// printing of a float32 array: summarised to its 3 leading/trailing rows and columns (size > 1000),
// values rounded to one digit (round-half-even on the exact binary value, as Dragon4 does), padded
// to common widths, and scientific notation when the shown values span more than 1000x or dip
// below 1e-4. Written by hand because no npm package prints arrays the NumPy way; checked in the
// tests against strings NumPy printed.
import { createHash } from 'node:crypto';

const EDGE = 3;
const LINE_WIDTH = 75;

/** Exact decimal digits of |x| (a double: float32 values are exact in it) and where the point goes. */
function exactDigits(x: number): { digits: string; point: number } {
  const [ip, fp] = Math.abs(x).toFixed(100).split('.');
  return { digits: ip + fp, point: ip.length };
}

/** digits[0, cut) rounded half-to-even on everything after the cut; may grow by one leading digit. */
function roundAt(digits: string, cut: number): string {
  const kept = digits.slice(0, Math.max(cut, 0)).split('').map(Number);
  const rest = digits.slice(Math.max(cut, 0));
  const first = Number(rest[0] ?? 0);
  const tail = /[1-9]/.test(rest.slice(1));
  const lastOdd = kept.length ? kept[kept.length - 1] % 2 === 1 : false;
  if (first > 5 || (first === 5 && (tail || lastOdd))) {
    let i = kept.length - 1;
    while (i >= 0 && kept[i] === 9) kept[i--] = 0;
    if (i < 0) kept.unshift(1);
    else kept[i]++;
  }
  return kept.join('');
}

const isNeg = (x: number) => x < 0 || Object.is(x, -0);

/**
 * Dragon4 positional, unique, trimmed ('.'): the shortest-unique digits are never longer than the
 * one-digit rounding keeps, so the half-even rounding of the exact value decides.
 */
function positional(x: number, precision: number): { int: string; frac: string } {
  const { digits, point } = exactDigits(x);
  const r = roundAt(digits, point + precision);
  const intLen = r.length - precision;
  const int = r.slice(0, intLen).replace(/^0+(?=\d)/, '') || '0';
  return { int: (isNeg(x) ? '-' : '') + int, frac: r.slice(intLen).replace(/0+$/, '') };
}

/** Dragon4 scientific, unique, trimmed: `precision` digits after the leading one. */
function scientific(x: number, precision: number): { int: string; frac: string; exp: number } {
  const sign = isNeg(x) ? '-' : '';
  if (x === 0) return { int: `${sign}0`, frac: '', exp: 0 };
  const { digits, point } = exactDigits(x);
  const first = digits.search(/[1-9]/);
  let exp = point - first - 1;
  let sig = roundAt(digits.slice(first), precision + 1);
  if (sig.length > precision + 1) {
    exp += 1; // 9.96 → 1.0e+01
    sig = sig.slice(0, precision + 1);
  }
  return { int: sign + sig[0], frac: sig.slice(1).replace(/0+$/, ''), exp };
}

function expString(e: number, width: number): string {
  return (e < 0 ? 'e-' : 'e+') + String(Math.abs(e)).padStart(width, '0');
}

/** NumPy's FloatingFormat for floatmode 'maxprec', sign '-', finite values. */
function floatFormatter(shown: number[], precision: number): (x: number) => string {
  const nonZero = shown.filter((v) => v !== 0).map(Math.abs);
  let expFormat = false;
  if (nonZero.length) {
    const max = Math.max(...nonZero);
    const min = Math.min(...nonZero);
    expFormat = max >= 1e8 || min < 0.0001 || max / min > 1000;
  }
  if (expFormat) {
    const parts = shown.map((v) => scientific(v, precision));
    const expSize = Math.max(2, ...parts.map((p) => String(Math.abs(p.exp)).length));
    const prec = Math.max(...parts.map((p) => p.frac.length));
    const padLeft = Math.max(...parts.map((p) => p.int.length));
    return (x) => {
      const p = scientific(x, prec);
      return `${p.int.padStart(padLeft)}.${p.frac.padEnd(prec, '0')}${expString(p.exp, expSize)}`;
    };
  }
  const parts = shown.map((v) => positional(v, precision));
  const padLeft = Math.max(...parts.map((p) => p.int.length));
  const padRight = Math.max(...parts.map((p) => p.frac.length));
  return (x) => {
    const p = positional(x, precision);
    return `${p.int.padStart(padLeft)}.${p.frac.padEnd(padRight)}`;
  };
}

function extendLine(s: string, line: string, word: string, width: number, prefix: string): [string, string] {
  let wrap = line.length + word.length > width;
  if (line.length <= prefix.length) wrap = false;
  if (wrap) {
    s += `${line.trimEnd()}\n`;
    line = prefix;
  }
  return [s, line + word];
}

/**
 * `np.array_str(a, precision)` for a float32 array of shape [rows, cols]; `at(r, c)` reads one value
 * (a summarised print reads only its 36 corner values, so callers can avoid loading the matrix).
 */
export function numpyArrayStr(at: (r: number, c: number) => number, rows: number, cols: number, precision = 1): string {
  const summarise = rows * cols > 1000;
  const pick = (n: number) => (summarise && n > 2 * EDGE ? [...Array(EDGE).keys(), ...Array.from({ length: EDGE }, (_, i) => n - EDGE + i)] : [...Array(n).keys()]);
  const R = pick(rows);
  const C = pick(cols);
  const shown: number[] = [];
  for (const r of R) for (const c of C) shown.push(at(r, c));
  const fmt = floatFormatter(shown, precision);
  const rowGap = summarise && rows > 2 * EDGE;
  const colGap = summarise && cols > 2 * EDGE;
  const rowStr = (r: number) => {
    const hanging = '  ';
    const width = LINE_WIDTH - 1 - 1;
    let s = '';
    let line = hanging;
    C.forEach((c, i) => {
      const last = i === C.length - 1;
      [s, line] = extendLine(s, line, fmt(at(r, c)), width, hanging);
      if (!last) line += ' ';
      if (colGap && i === EDGE - 1) {
        [s, line] = extendLine(s, line, '...', width, hanging);
        line += ' ';
      }
    });
    s += line;
    return `[${s.slice(hanging.length)}]`;
  };
  let s = '';
  R.forEach((r, i) => {
    s += ` ${rowStr(r)}`;
    if (i < R.length - 1) s += '\n';
    if (rowGap && i === EDGE - 1) s += ' ...\n';
  });
  return `[${s.slice(1)}]`;
}

/** Rows of a [rows, cols] matrix that its NumPy print shows (all of them when it is not summarised). */
export function shownRows(rows: number, cols: number): number[] {
  if (rows * cols <= 1000 || rows <= 2 * EDGE) return [...Array(rows).keys()];
  return [0, 1, 2, rows - 3, rows - 2, rows - 1];
}

/** tuned-lens's unembed_hash of a [V, D] unembedding; `row(r)` returns row r as float32 values. */
export function unembedHash(row: (r: number) => ArrayLike<number>, vocab: number, dModel: number): string {
  const cache = new Map<number, ArrayLike<number>>();
  const at = (r: number, c: number) => {
    let v = cache.get(r);
    if (!v) cache.set(r, (v = row(r)));
    return v[c];
  };
  return createHash('sha256').update(numpyArrayStr(at, vocab, dModel, 1), 'utf8').digest('hex');
}

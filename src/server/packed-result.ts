// A LensResult as flat typed arrays, for keeping many of them: nested JS arrays cost an object
// header per row and 8 bytes per id, while the packed form is 4 bytes per id and 8 per probability
// (kept float64, so a result read back equals the one computed), plus exact byte accounting.
// Stores keep PackedResult; packResult/unpackResult convert without loss, a row at a time (one
// native TypedArray.set / Array.from per row) and between event-loop turns: a 128-token result with
// top-100 over both read points is ~100k numbers, and walking them value by value in one piece held
// the loop for ~100 ms on a busy machine.

import { LoopTurns } from '../lens/loop-turns.js';
import type { CellStats, LensResult, TrackedPosition } from '../lens/types.js';

/** [layerIndex][position][k] (or [layerIndex][position]) as one flat array plus its shape. */
export interface Grid<A extends Int32Array | Float64Array> {
  shape: number[];
  data: A;
}

export interface PackedTracked {
  /** position → offset into tokenIds; tokenIds of position p are tokenIds[offsets[p], offsets[p+1]). */
  offsets: Int32Array;
  tokenIds: Int32Array;
  /** Per position p: [layerIndex][j] flattened, starting at layers × offsets[p]. */
  probs: Float64Array;
  positions: Int32Array;
}

export interface PackedStats {
  entropy: Grid<Float64Array>;
  klToFinal: Grid<Float64Array>;
  finalTop1Rank: Grid<Int32Array>;
}

export interface PackedReads {
  topIndices: Grid<Int32Array>;
  topProbs: Grid<Float64Array>;
  tracked: PackedTracked | null;
  stats: PackedStats | null;
}

export interface PackedResult {
  meta: Omit<LensResult, 'topIndices' | 'topProbs' | 'tracked' | 'stats' | 'attention'>;
  block: PackedReads;
  attention: PackedReads | null;
}

type Nested = number | Nested[];

function shapeOf(value: Nested[]): number[] {
  const shape: number[] = [];
  let level: Nested = value;
  while (Array.isArray(level)) {
    shape.push(level.length);
    if (level.length === 0) break;
    level = level[0];
  }
  return shape;
}

/** Rows handled between two looks at the clock. */
const ROWS_PER_CHECK = 32;

/** The innermost rows of a rectangular nested array, in order (a rank-1 array is its own row). */
function rowsOf(value: Nested[], shape: number[]): number[][] {
  const rows: number[][] = [];
  const walk = (v: Nested, depth: number) => {
    if (!Array.isArray(v) || v.length !== shape[depth]) throw new Error('packGrid: ragged array');
    if (depth === shape.length - 1) rows.push(v as number[]);
    else for (const x of v) walk(x, depth + 1);
  };
  if (shape.length > 0 && !shape.includes(0)) walk(value, 0);
  return rows;
}

async function packGrid<A extends Int32Array | Float64Array>(value: Nested[], make: (n: number) => A, turns: LoopTurns): Promise<Grid<A>> {
  const shape = shapeOf(value);
  const data = make(shape.reduce((a, b) => a * b, 1));
  const rows = rowsOf(value, shape);
  let at = 0;
  for (let r = 0; r < rows.length; r++) {
    data.set(rows[r], at);
    at += rows[r].length;
    if (r % ROWS_PER_CHECK === ROWS_PER_CHECK - 1) await turns.check();
  }
  return { shape, data };
}

async function unpackGrid(grid: Grid<Int32Array | Float64Array>, turns: LoopTurns): Promise<Nested[]> {
  const { shape, data } = grid;
  if (shape.length === 0 || shape.includes(0)) return [];
  const width = shape[shape.length - 1];
  const rows: number[][] = [];
  for (let at = 0, r = 0; at < data.length; at += width, r++) {
    rows.push(Array.from(data.subarray(at, at + width)));
    if (r % ROWS_PER_CHECK === ROWS_PER_CHECK - 1) await turns.check();
  }
  // Regroup the rows into the outer dimensions (cheap: no numbers are touched).
  let level: Nested[] = rows;
  for (let d = shape.length - 2; d >= 1; d--) {
    const outer: Nested[] = [];
    for (let i = 0; i < level.length; i += shape[d]) outer.push(level.slice(i, i + shape[d]));
    level = outer;
  }
  return shape.length === 1 ? (rows[0] ?? []) : level;
}

async function packTracked(tracked: TrackedPosition[], layers: number, turns: LoopTurns): Promise<PackedTracked> {
  const offsets = new Int32Array(tracked.length + 1);
  tracked.forEach((t, p) => (offsets[p + 1] = offsets[p] + t.tokenIds.length));
  const tokenIds = new Int32Array(offsets[tracked.length]);
  const probs = new Float64Array(offsets[tracked.length] * layers);
  for (let p = 0; p < tracked.length; p++) {
    const t = tracked[p];
    tokenIds.set(t.tokenIds, offsets[p]);
    t.probs.forEach((row, li) => probs.set(row, layers * offsets[p] + li * t.tokenIds.length));
    await turns.check();
  }
  return { offsets, tokenIds, probs, positions: Int32Array.from(tracked.map((t) => t.position)) };
}

async function unpackTracked(t: PackedTracked, layers: number, turns: LoopTurns): Promise<TrackedPosition[]> {
  const out: TrackedPosition[] = [];
  for (let p = 0; p < t.positions.length; p++) {
    const n = t.offsets[p + 1] - t.offsets[p];
    const base = layers * t.offsets[p];
    out.push({
      position: t.positions[p],
      tokenIds: Array.from(t.tokenIds.subarray(t.offsets[p], t.offsets[p + 1])),
      probs: Array.from({ length: layers }, (_, li) => Array.from(t.probs.subarray(base + li * n, base + (li + 1) * n))),
    });
    await turns.check();
  }
  return out;
}

async function packReads(r: Pick<LensResult, 'topIndices' | 'topProbs' | 'tracked' | 'stats'>, layers: number, turns: LoopTurns): Promise<PackedReads> {
  return {
    topIndices: await packGrid(r.topIndices, (n) => new Int32Array(n), turns),
    topProbs: await packGrid(r.topProbs, (n) => new Float64Array(n), turns),
    tracked: r.tracked ? await packTracked(r.tracked, layers, turns) : null,
    stats: r.stats
      ? {
          entropy: await packGrid(r.stats.entropy, (n) => new Float64Array(n), turns),
          klToFinal: await packGrid(r.stats.klToFinal, (n) => new Float64Array(n), turns),
          finalTop1Rank: await packGrid(r.stats.finalTop1Rank, (n) => new Int32Array(n), turns),
        }
      : null,
  };
}

async function unpackReads(p: PackedReads, layers: number, turns: LoopTurns): Promise<Pick<LensResult, 'topIndices' | 'topProbs' | 'tracked' | 'stats'>> {
  return {
    topIndices: (await unpackGrid(p.topIndices, turns)) as number[][][],
    topProbs: (await unpackGrid(p.topProbs, turns)) as number[][][],
    tracked: p.tracked ? await unpackTracked(p.tracked, layers, turns) : null,
    stats: p.stats
      ? ({
          entropy: await unpackGrid(p.stats.entropy, turns),
          klToFinal: await unpackGrid(p.stats.klToFinal, turns),
          finalTop1Rank: await unpackGrid(p.stats.finalTop1Rank, turns),
        } as CellStats)
      : null,
  };
}

export async function packResult(result: LensResult): Promise<PackedResult> {
  const { topIndices, topProbs, tracked, stats, attention, ...meta } = result;
  const layers = result.layers.length;
  const turns = new LoopTurns();
  return {
    meta: { ...meta, tokens: meta.tokens.map((t) => ({ ...t })), layers: [...meta.layers] },
    block: await packReads({ topIndices, topProbs, tracked, stats }, layers, turns),
    attention: attention ? await packReads(attention, layers, turns) : null,
  };
}

export async function unpackResult(packed: PackedResult): Promise<LensResult> {
  const layers = packed.meta.layers.length;
  const turns = new LoopTurns();
  return {
    ...packed.meta,
    ...(await unpackReads(packed.block, layers, turns)),
    attention: packed.attention ? await unpackReads(packed.attention, layers, turns) : null,
  };
}

function readsBytes(r: PackedReads): number {
  const grids = [r.topIndices, r.topProbs, ...(r.stats ? [r.stats.entropy, r.stats.klToFinal, r.stats.finalTop1Rank] : [])];
  let bytes = grids.reduce((sum, g) => sum + g.data.byteLength + 64, 0);
  if (r.tracked) bytes += r.tracked.offsets.byteLength + r.tracked.tokenIds.byteLength + r.tracked.probs.byteLength + r.tracked.positions.byteLength + 256;
  return bytes;
}

/** Heap bytes a packed result holds: typed array payloads, token texts (UTF-16) and a fixed overhead per object. */
export function packedBytes(packed: PackedResult, prompt: string): number {
  const tokens = packed.meta.tokens.reduce((sum, t) => sum + 64 + 2 * t.text.length, 0);
  return 1024 + 2 * prompt.length + tokens + readsBytes(packed.block) + (packed.attention ? readsBytes(packed.attention) : 0);
}

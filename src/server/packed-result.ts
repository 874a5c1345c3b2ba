// A LensResult as flat typed arrays, for keeping many of them: nested JS arrays cost an object
// header per row and 8 bytes per id, while the packed form is 4 bytes per id and 8 per probability
// (kept float64, so a result read back equals the one computed), plus exact byte accounting.
// Stores keep PackedResult; packResult/unpackResult convert without loss.

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

function packGrid<A extends Int32Array | Float64Array>(value: Nested[], make: (n: number) => A): Grid<A> {
  const shape = shapeOf(value);
  const data = make(shape.reduce((a, b) => a * b, 1));
  let i = 0;
  const walk = (v: Nested, depth: number) => {
    if (depth === shape.length) {
      data[i++] = v as number;
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) throw new Error('packGrid: ragged array');
    for (const x of v) walk(x, depth + 1);
  };
  walk(value, 0);
  return { shape, data };
}

function unpackGrid(grid: Grid<Int32Array | Float64Array>): Nested[] {
  const { shape, data } = grid;
  let i = 0;
  const build = (depth: number): Nested[] =>
    depth === shape.length - 1
      ? Array.from(data.subarray(i, (i += shape[depth])))
      : Array.from({ length: shape[depth] }, () => build(depth + 1));
  return shape.length === 0 || shape.includes(0) ? [] : build(0);
}

function packTracked(tracked: TrackedPosition[], layers: number): PackedTracked {
  const offsets = new Int32Array(tracked.length + 1);
  tracked.forEach((t, p) => (offsets[p + 1] = offsets[p] + t.tokenIds.length));
  const tokenIds = new Int32Array(offsets[tracked.length]);
  const probs = new Float64Array(offsets[tracked.length] * layers);
  tracked.forEach((t, p) => {
    tokenIds.set(t.tokenIds, offsets[p]);
    t.probs.forEach((row, li) => probs.set(row, layers * offsets[p] + li * t.tokenIds.length));
  });
  return { offsets, tokenIds, probs, positions: Int32Array.from(tracked.map((t) => t.position)) };
}

function unpackTracked(t: PackedTracked, layers: number): TrackedPosition[] {
  return Array.from(t.positions, (position, p) => {
    const n = t.offsets[p + 1] - t.offsets[p];
    const base = layers * t.offsets[p];
    return {
      position,
      tokenIds: Array.from(t.tokenIds.subarray(t.offsets[p], t.offsets[p + 1])),
      probs: Array.from({ length: layers }, (_, li) => Array.from(t.probs.subarray(base + li * n, base + (li + 1) * n))),
    };
  });
}

function packReads(r: Pick<LensResult, 'topIndices' | 'topProbs' | 'tracked' | 'stats'>, layers: number): PackedReads {
  return {
    topIndices: packGrid(r.topIndices, (n) => new Int32Array(n)),
    topProbs: packGrid(r.topProbs, (n) => new Float64Array(n)),
    tracked: r.tracked ? packTracked(r.tracked, layers) : null,
    stats: r.stats
      ? {
          entropy: packGrid(r.stats.entropy, (n) => new Float64Array(n)),
          klToFinal: packGrid(r.stats.klToFinal, (n) => new Float64Array(n)),
          finalTop1Rank: packGrid(r.stats.finalTop1Rank, (n) => new Int32Array(n)),
        }
      : null,
  };
}

function unpackReads(p: PackedReads, layers: number): Pick<LensResult, 'topIndices' | 'topProbs' | 'tracked' | 'stats'> {
  return {
    topIndices: unpackGrid(p.topIndices) as number[][][],
    topProbs: unpackGrid(p.topProbs) as number[][][],
    tracked: p.tracked ? unpackTracked(p.tracked, layers) : null,
    stats: p.stats
      ? ({
          entropy: unpackGrid(p.stats.entropy),
          klToFinal: unpackGrid(p.stats.klToFinal),
          finalTop1Rank: unpackGrid(p.stats.finalTop1Rank),
        } as CellStats)
      : null,
  };
}

export function packResult(result: LensResult): PackedResult {
  const { topIndices, topProbs, tracked, stats, attention, ...meta } = result;
  const layers = result.layers.length;
  return {
    meta: { ...meta, tokens: meta.tokens.map((t) => ({ ...t })), layers: [...meta.layers] },
    block: packReads({ topIndices, topProbs, tracked, stats }, layers),
    attention: attention ? packReads(attention, layers) : null,
  };
}

export function unpackResult(packed: PackedResult): LensResult {
  const layers = packed.meta.layers.length;
  return {
    ...packed.meta,
    ...unpackReads(packed.block, layers),
    attention: packed.attention ? unpackReads(packed.attention, layers) : null,
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

// The PACKED wire encoding of lens results: little-endian typed arrays in base64, probabilities as
// 16-bit log-linear codes. Pure (no GraphQL, no Node-only API), so the server encodes with it and
// browsers and the typed client decode with it. The byte-level specification, the error bound and
// the measurements that chose this code are in docs/wire-format.md; keep the two in step.
//
// Probability code P16 (parameters S = `scale`, C = `maxCode`, both sent with every array):
//   code c ≥ S: p = exp((c − C) / S)        log region: p = 1 ↔ c = C, one code per 1/S in ln p
//   code c < S: p = c · exp((S − C) / S) / S linear region below p0 = exp((S − C) / S) ≤ floor
// so |p' − p| ≤ relativeError · max(p, floor), p = 0 and p = 1 decode exactly. Format version 2
// (dtype `P16v2`): the codes are stored with the first axis varying fastest, so that each
// trajectory along the layers is contiguous; each code as its difference from the previous layer's
// (mod 2^16), zigzag-mapped so small changes either way have a zero high byte; then as two byte
// planes (all low bytes, then all high bytes). That is what gzip compresses best (measured,
// docs/wire-format.md). Version 1 (`P16`) stored layer-major deltas without zigzag.

import { LensError } from '../errors.js';
import type { LayerEvent, LensResult, TrackedPosition } from './types.js';

export type PackedDtype = 'U8' | 'U16' | 'U32' | 'F32' | 'P16v2';

/** One array: row-major `shape`, `data` = base64 of the bytes described by `dtype`. */
export interface PackedArray {
  dtype: PackedDtype;
  shape: number[];
  data: string;
  /** P16v2 only: codes per unit of ln p (S). */
  scale: number | null;
  /** P16v2 only: the code of p = 1 (C). */
  maxCode: number | null;
}

export interface PackOptions {
  /** Relative error bound for p ≥ floor; default 1e-3. */
  relativeError?: number;
  /** Below this, the error is at most relativeError · floor; default 5e-3. */
  floor?: number;
}

// Relative 1e-3 for p ≥ 0.5 %, absolute ≤ 5e-6 below: the widget format's own rounding (5 decimals),
// and within one unit of every digit the viewer shows for p ≥ 1e-4 (one decimal of a percent, two
// significant digits under 0.1 %). Why not 1e-4 (version 1's floor): docs/wire-format.md,
// "Choosing the default bound".
export const DEFAULT_PACK: Required<PackOptions> = { relativeError: 1e-3, floor: 5e-3 };

/** One read point; the tracked* and stats arrays are null when they were not requested. */
export interface PackedRead {
  topIndices: PackedArray; // U32 [layers, positions, k]
  topProbs: PackedArray; // P16v2 [layers, positions, k]
  trackedCounts: PackedArray | null; // U32 [positions]: ids tracked per position
  trackedIds: PackedArray | null; // U32 [N]: every position's ascending ids, concatenated (N = sum of counts)
  trackedProbs: PackedArray | null; // P16v2 [layers, N]
  // U8 (U16 when a position tracks more than 256 ids) [layers, positions, k]: where each top-k id sits
  // among its position's tracked ids. With the tracked arrays it replaces topIndices and topProbs.
  topLocal: PackedArray | null;
  entropy: PackedArray | null; // F32 [layers, positions]
  klToFinal: PackedArray | null; // F32 [layers, positions]
  finalTop1Rank: PackedArray | null; // U32 [layers, positions]
}

export interface PackedLens extends PackedRead {
  attention: PackedRead | null;
}

export interface PackedLayer {
  topIndices: PackedArray; // U32 [positions, k]
  topProbs: PackedArray; // P16v2 [positions, k]
}

// ---------------------------------------------------------------------------------------------
// Probability codes

export interface ProbCode {
  scale: number;
  maxCode: number;
}

/** The code for a bound; BAD_USER_INPUT when the bound is out of range or needs more than 16 bits. */
export function probCode(options: PackOptions = {}): ProbCode {
  const { relativeError: eps, floor } = { ...DEFAULT_PACK, ...options };
  if (!(eps >= 1e-5 && eps <= 0.5)) throw new LensError('BAD_USER_INPUT', `relativeError must be in [1e-5, 0.5], got ${eps}`);
  if (!(floor >= 1e-30 && floor <= 0.5)) throw new LensError('BAD_USER_INPUT', `floor must be in [1e-30, 0.5], got ${floor}`);
  // Half a code step in ln p must stay within ln(1 + eps); the log region must reach down to floor.
  const scale = Math.ceil(0.5 / Math.log1p(eps));
  const maxCode = scale + Math.ceil(scale * -Math.log(floor));
  if (maxCode > 0xffff) {
    throw new LensError('BAD_USER_INPUT', `relativeError ${eps} down to floor ${floor} needs ${maxCode + 1} codes, more than 16 bits hold; raise one of them`);
  }
  return { scale, maxCode };
}

export function encodeProb(p: number, { scale, maxCode }: ProbCode): number {
  if (Number.isNaN(p)) throw new RangeError('cannot encode NaN as a probability');
  if (p <= 0) return 0;
  const t = Math.log(p) * scale + maxCode;
  if (t >= scale) return Math.min(maxCode, Math.round(t));
  return Math.round((p * scale) / Math.exp((scale - maxCode) / scale));
}

export function decodeProb(code: number, { scale, maxCode }: ProbCode): number {
  return code >= scale ? Math.exp((code - maxCode) / scale) : (code * Math.exp((scale - maxCode) / scale)) / scale;
}

// ---------------------------------------------------------------------------------------------
// Base64 (Buffer where there is one, atob/btoa in browsers)

type BufferLike = { from(data: ArrayBufferLike | string, a?: number | string, b?: number): Uint8Array & { toString(enc: string): string } };
const NodeBuffer = (globalThis as { Buffer?: BufferLike }).Buffer;

export function toBase64(bytes: Uint8Array): string {
  if (NodeBuffer) return NodeBuffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function fromBase64(text: string): Uint8Array {
  if (NodeBuffer) {
    const b = NodeBuffer.from(text, 'base64');
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  }
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Arrays

const size = (shape: readonly number[]) => shape.reduce((a, d) => a * d, 1);

function checkLength(values: ArrayLike<number>, shape: readonly number[]): void {
  if (values.length !== size(shape)) throw new RangeError(`${values.length} values do not fill shape [${shape.join(', ')}]`);
}

/** Unsigned integers of 1 or 2 bytes (U8, U16), little-endian. */
export function packSmall(values: ArrayLike<number>, shape: number[], dtype: 'U8' | 'U16'): PackedArray {
  checkLength(values, shape);
  const max = dtype === 'U8' ? 0xff : 0xffff;
  const bytes = dtype === 'U8' ? new Uint8Array(values.length) : new Uint8Array(values.length * 2);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!(Number.isInteger(v) && v >= 0 && v <= max)) throw new RangeError(`${v} does not fit ${dtype}`);
    if (dtype === 'U8') bytes[i] = v;
    else {
      bytes[2 * i] = v & 0xff;
      bytes[2 * i + 1] = v >>> 8;
    }
  }
  return { dtype, shape, data: toBase64(bytes), scale: null, maxCode: null };
}

export function packU32(values: ArrayLike<number>, shape: number[]): PackedArray {
  checkLength(values, shape);
  const view = new DataView(new ArrayBuffer(values.length * 4));
  for (let i = 0; i < values.length; i++) view.setUint32(i * 4, values[i], true);
  return { dtype: 'U32', shape, data: toBase64(new Uint8Array(view.buffer)), scale: null, maxCode: null };
}

export function packF32(values: ArrayLike<number>, shape: number[]): PackedArray {
  checkLength(values, shape);
  const view = new DataView(new ArrayBuffer(values.length * 4));
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true);
  return { dtype: 'F32', shape, data: toBase64(new Uint8Array(view.buffer)), scale: null, maxCode: null };
}

// Zigzag on 16-bit differences: 0, −1, 1, −2, … → 0, 1, 2, 3, … (small changes either way stay small).
const zigzag = (d: number) => ((d << 1) ^ ((d << 16) >> 31)) & 0xffff; // d: 16-bit difference
const unzigzag = (z: number) => ((z >>> 1) ^ -(z & 1)) & 0xffff;

export function packP16(values: ArrayLike<number>, shape: number[], code: ProbCode): PackedArray {
  checkLength(values, shape);
  const n = values.length;
  const rows = shape.length > 0 ? shape[0] : 1;
  const cols = n / Math.max(1, rows); // R: the product of shape[1:]
  const bytes = new Uint8Array(2 * n);
  let s = 0;
  for (let r = 0; r < cols; r++) {
    let prev = 0;
    for (let l = 0; l < rows; l++, s++) {
      const c = encodeProb(values[l * cols + r], code);
      const z = zigzag((c - prev) & 0xffff);
      prev = c;
      bytes[s] = z & 0xff;
      bytes[n + s] = z >>> 8;
    }
  }
  return { dtype: 'P16v2', shape, data: toBase64(bytes), ...code };
}

const WIDTH: Record<PackedDtype, number> = { U8: 1, U16: 2, U32: 4, F32: 4, P16v2: 2 };

/** U8/U16/U32 → Uint8Array/Uint16Array/Uint32Array, F32 → Float32Array, P16v2 → Float64Array of probabilities. */
export function unpackArray(a: PackedArray): Uint8Array | Uint16Array | Uint32Array | Float32Array | Float64Array {
  const width = WIDTH[a.dtype];
  if (!width) throw new RangeError(`unknown dtype ${String(a.dtype)} (this decoder reads packed format version 2)`);
  const bytes = fromBase64(a.data);
  const n = size(a.shape);
  if (bytes.length !== n * width) throw new RangeError(`${a.dtype} [${a.shape.join(', ')}] needs ${n * width} bytes, got ${bytes.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (a.dtype === 'U8') return Uint8Array.from(bytes);
  if (a.dtype === 'U16') {
    const out = new Uint16Array(n);
    for (let i = 0; i < n; i++) out[i] = view.getUint16(i * 2, true);
    return out;
  }
  if (a.dtype === 'U32') {
    const out = new Uint32Array(n);
    for (let i = 0; i < n; i++) out[i] = view.getUint32(i * 4, true);
    return out;
  }
  if (a.dtype === 'F32') {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
    return out;
  }
  if (a.scale == null || a.maxCode == null) throw new RangeError('P16v2 array without scale/maxCode');
  const code: ProbCode = { scale: a.scale, maxCode: a.maxCode };
  const rows = a.shape.length > 0 ? a.shape[0] : 1;
  const cols = n / Math.max(1, rows);
  const out = new Float64Array(n);
  // A table of every code's probability is faster than exp() per element once n exceeds the codes.
  const table = n > a.maxCode ? Float64Array.from({ length: a.maxCode + 1 }, (_, c) => decodeProb(c, code)) : null;
  let s = 0;
  for (let r = 0; r < cols; r++) {
    let c = 0;
    for (let l = 0; l < rows; l++, s++) {
      c = (c + unzigzag(bytes[s] | (bytes[n + s] << 8))) & 0xffff;
      if (c > a.maxCode) throw new RangeError(`P16v2 code ${c} above maxCode ${a.maxCode}`);
      out[l * cols + r] = table ? table[c] : decodeProb(c, code);
    }
  }
  return out;
}

export function unpackU32(a: PackedArray): Uint32Array {
  if (a.dtype !== 'U32') throw new RangeError(`expected U32, got ${a.dtype}`);
  return unpackArray(a) as Uint32Array;
}

export function unpackF32(a: PackedArray): Float32Array {
  if (a.dtype !== 'F32') throw new RangeError(`expected F32, got ${a.dtype}`);
  return unpackArray(a) as Float32Array;
}

export function unpackP16(a: PackedArray): Float64Array {
  if (a.dtype !== 'P16v2') throw new RangeError(`expected P16v2, got ${a.dtype}`);
  return unpackArray(a) as Float64Array;
}

// ---------------------------------------------------------------------------------------------
// Lens results

function flat3(x: number[][][]): number[] {
  const out: number[] = [];
  for (const a of x) for (const b of a) for (const v of b) out.push(v);
  return out;
}

function flat2(x: number[][]): number[] {
  const out: number[] = [];
  for (const a of x) for (const v of a) out.push(v);
  return out;
}

/** Every position's trajectories side by side: [layer][N], N = all positions' ids in position order. */
export function trackedMatrix(tracked: TrackedPosition[], nLayers: number): { counts: number[]; ids: number[]; probs: Float64Array } {
  const counts = tracked.map((t) => t.tokenIds.length);
  const n = counts.reduce((a, b) => a + b, 0);
  const probs = new Float64Array(nLayers * n);
  let offset = 0;
  for (const t of tracked) {
    for (let l = 0; l < nLayers; l++) probs.set(t.probs[l], l * n + offset);
    offset += t.tokenIds.length;
  }
  return { counts, ids: tracked.flatMap((t) => t.tokenIds), probs };
}

/**
 * topLocal: each top-k id as its index among its position's tracked ids ([layers, positions, k]);
 * U8 while every position tracks at most 256 ids, else U16. Every top-k id is tracked (the tracked
 * ids are the top-k ids of every requested layer), so this is never null for an engine result; it
 * is null for arrays that do not have that shape.
 */
export function packTopLocal(topIndices: number[][][], tracked: TrackedPosition[]): PackedArray | null {
  const where = tracked.map((t) => new Map(t.tokenIds.map((id, j) => [id, j])));
  const [L, T, k] = [topIndices.length, tracked.length, topIndices[0]?.[0]?.length ?? 0];
  if (topIndices.some((layer) => layer.length !== T)) return null;
  const out = new Array<number>(L * T * k);
  for (let l = 0; l < L; l++) {
    for (let p = 0; p < T; p++) {
      for (let j = 0; j < k; j++) {
        const local = where[p].get(topIndices[l][p][j]);
        if (local === undefined) return null;
        out[(l * T + p) * k + j] = local;
      }
    }
  }
  const widest = Math.max(0, ...tracked.map((t) => t.tokenIds.length));
  return packSmall(out, [L, T, k], widest <= 256 ? 'U8' : 'U16');
}

function packTracked(tracked: TrackedPosition[], nLayers: number, code: ProbCode): Pick<PackedRead, 'trackedCounts' | 'trackedIds' | 'trackedProbs'> {
  const m = trackedMatrix(tracked, nLayers);
  return {
    trackedCounts: packU32(m.counts, [m.counts.length]),
    trackedIds: packU32(m.ids, [m.ids.length]),
    trackedProbs: packP16(m.probs, [nLayers, m.ids.length], code),
  };
}

type Read = Pick<LensResult, 'topIndices' | 'topProbs' | 'tracked' | 'stats'>;

function packRead(r: Read, shape: [number, number, number], code: ProbCode): PackedRead {
  const cells = [shape[0], shape[1]];
  const none = { trackedCounts: null, trackedIds: null, trackedProbs: null };
  return {
    topIndices: packU32(flat3(r.topIndices), shape),
    topProbs: packP16(flat3(r.topProbs), shape, code),
    ...(r.tracked ? packTracked(r.tracked, shape[0], code) : none),
    topLocal: r.tracked ? packTopLocal(r.topIndices, r.tracked) : null,
    entropy: r.stats ? packF32(flat2(r.stats.entropy), cells) : null,
    klToFinal: r.stats ? packF32(flat2(r.stats.klToFinal), cells) : null,
    finalTop1Rank: r.stats ? packU32(flat2(r.stats.finalTop1Rank), cells) : null,
  };
}

export function packLens(r: Pick<LensResult, 'layers' | 'tokens' | 'topK' | 'attention'> & Read, options: PackOptions = {}): PackedLens {
  const code = probCode(options);
  const shape: [number, number, number] = [r.layers.length, r.tokens.length, r.topK];
  return { ...packRead(r, shape, code), attention: r.attention ? packRead(r.attention, shape, code) : null };
}

export function packLayer(e: Pick<LayerEvent, 'topIndices' | 'topProbs'>, options: PackOptions = {}): PackedLayer {
  const code = probCode(options);
  const shape = [e.topIndices.length, e.topIndices[0]?.length ?? 0];
  return { topIndices: packU32(flat2(e.topIndices), shape), topProbs: packP16(flat2(e.topProbs), shape, code) };
}

// ---------------------------------------------------------------------------------------------
// Decoded (plain typed arrays), for front ends

export interface UnpackedTracked {
  /** Position p's ids are tokenIds[offsets[p] .. offsets[p + 1]). */
  offsets: Uint32Array;
  tokenIds: Uint32Array;
  /** [layer][N], row-major: probs[layer * N + j]. */
  probs: Float64Array;
}

export interface UnpackedStats {
  entropy: Float32Array;
  klToFinal: Float32Array;
  finalTop1Rank: Uint32Array;
}

export interface UnpackedRead {
  layers: number;
  positions: number;
  k: number;
  /** [layer][position][k], row-major. */
  topIndices: Uint32Array;
  topProbs: Float64Array;
  tracked: UnpackedTracked | null;
  stats: UnpackedStats | null;
}

export interface UnpackedLens extends UnpackedRead {
  attention: UnpackedRead | null;
}

/**
 * What a decoder reads: a GraphQL selection may leave out the optional arrays, and may replace
 * topIndices and topProbs by topLocal with the tracked arrays (the top-k are then read from them).
 */
export type PackedReadIn = { [K in keyof PackedRead]?: PackedRead[K] | null };
export type PackedLensIn = PackedReadIn & { attention?: PackedReadIn | null };

export function unpackTracked(counts: PackedArray, ids: PackedArray, probs: PackedArray): UnpackedTracked {
  const n = unpackU32(counts);
  const offsets = new Uint32Array(n.length + 1);
  for (let p = 0; p < n.length; p++) offsets[p + 1] = offsets[p] + n[p];
  const tokenIds = unpackU32(ids);
  if (offsets[n.length] !== tokenIds.length) throw new RangeError(`trackedCounts sum to ${offsets[n.length]}, trackedIds has ${tokenIds.length}`);
  return { offsets, tokenIds, probs: unpackP16(probs) };
}

/** topIndices and topProbs from topLocal: the j-th best id of (l, p) is tracked id offsets[p] + local. */
function topFromLocal(local: Uint8Array | Uint16Array, shape: number[], t: UnpackedTracked): { topIndices: Uint32Array; topProbs: Float64Array } {
  const [layers, positions, k] = shape;
  const n = t.tokenIds.length;
  const topIndices = new Uint32Array(local.length);
  const topProbs = new Float64Array(local.length);
  for (let l = 0; l < layers; l++) {
    for (let p = 0; p < positions; p++) {
      for (let j = 0; j < k; j++) {
        const i = (l * positions + p) * k + j;
        const col = t.offsets[p] + local[i];
        if (col >= t.offsets[p + 1]) throw new RangeError(`topLocal ${local[i]} at layer ${l}, position ${p} is past the position's tracked ids`);
        topIndices[i] = t.tokenIds[col];
        topProbs[i] = t.probs[l * n + col];
      }
    }
  }
  return { topIndices, topProbs };
}

function unpackRead(r: PackedReadIn): UnpackedRead {
  const tracked = r.trackedCounts && r.trackedIds && r.trackedProbs ? unpackTracked(r.trackedCounts, r.trackedIds, r.trackedProbs) : null;
  let top: { topIndices: Uint32Array; topProbs: Float64Array };
  let shape: number[];
  if (r.topIndices && r.topProbs) {
    shape = r.topIndices.shape;
    top = { topIndices: unpackU32(r.topIndices), topProbs: unpackP16(r.topProbs) };
  } else if (r.topLocal && tracked) {
    if (r.topLocal.dtype !== 'U8' && r.topLocal.dtype !== 'U16') throw new RangeError(`topLocal must be U8 or U16, got ${r.topLocal.dtype}`);
    shape = r.topLocal.shape;
    top = topFromLocal(unpackArray(r.topLocal) as Uint8Array | Uint16Array, shape, tracked);
  } else {
    throw new RangeError('select topIndices and topProbs, or topLocal with trackedCounts, trackedIds and trackedProbs');
  }
  const [layers, positions, k] = shape;
  return {
    layers,
    positions,
    k,
    ...top,
    tracked,
    stats:
      r.entropy && r.klToFinal && r.finalTop1Rank
        ? { entropy: unpackF32(r.entropy), klToFinal: unpackF32(r.klToFinal), finalTop1Rank: unpackU32(r.finalTop1Rank) }
        : null,
  };
}

export function unpackLens(p: PackedLensIn): UnpackedLens {
  return { ...unpackRead(p), attention: p.attention ? unpackRead(p.attention) : null };
}

export interface UnpackedLayer {
  positions: number;
  k: number;
  /** [position][k], row-major. */
  topIndices: Uint32Array;
  topProbs: Float64Array;
}

export function unpackLayer(p: PackedLayer): UnpackedLayer {
  const [positions, k] = p.topIndices.shape;
  return { positions, k, topIndices: unpackU32(p.topIndices), topProbs: unpackP16(p.topProbs) };
}

// ---------------------------------------------------------------------------------------------
// JSON precision

/** `x` rounded to `digits` significant digits (1…17); 17 keeps every float64 exactly. */
export function roundSignificant(x: number, digits: number): number {
  return Number.isFinite(x) && x !== 0 ? Number(x.toPrecision(digits)) : x;
}

export function checkPrecision(digits: number): void {
  if (!Number.isInteger(digits) || digits < 1 || digits > 17) {
    throw new LensError('BAD_USER_INPUT', `precision must be a whole number of significant digits in 1…17, got ${digits}`);
  }
}

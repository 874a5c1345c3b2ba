// The PACKED encoding against the exact float64 values: the stated bound
// |p' − p| ≤ relativeError · max(p, floor) on random and real results, edge cases, and exact
// round trips of ids, stats and shapes.

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openModel } from '../../src/lens/index.js';
import {
  DEFAULT_PACK,
  decodeProb,
  encodeProb,
  packF32,
  packLayer,
  packLens,
  packP16,
  packSmall,
  packU32,
  probCode,
  roundSignificant,
  unpackArray,
  unpackLayer,
  unpackLens,
  unpackP16,
  type PackedRead,
  type PackOptions,
  type UnpackedRead,
} from '../../src/lens/packed.js';
import { pct } from '../../src/viewer/format.js';
import type { LayerEvent, LensModel, LensResult } from '../../src/lens/types.js';
import { makeCheckpoint, RECIPES } from '../helpers/fixtures.js';

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

/** Worst ratio |p' − p| / (eps · max(p, floor)); ≤ 1 means the bound holds. */
function worstRatio(exact: ArrayLike<number>, decoded: ArrayLike<number>, { relativeError, floor }: Required<PackOptions>): number {
  let worst = 0;
  for (let i = 0; i < exact.length; i++) {
    worst = Math.max(worst, Math.abs(decoded[i] - exact[i]) / (relativeError * Math.max(exact[i], floor)));
  }
  return worst;
}

const EDGES = [0, 1, 5e-324, 1e-310, 2.2250738585072014e-308, 1e-45, 1e-30, 1e-12, 1e-8, 9.99e-5, 1e-4, 1.0001e-4, 0.5, 1 - 1e-12, 1 - 1e-16];

function randomProbs(n: number, seed: number): Float64Array {
  const r = rng(seed);
  // Log-uniform over [1e-40, 1] with every edge case mixed in.
  return Float64Array.from({ length: n }, (_, i) => (i < EDGES.length ? EDGES[i] : Math.exp(-92 * r())));
}

const BOUNDS: Array<Required<PackOptions>> = [
  { relativeError: 1e-3, floor: 1e-4 },
  { relativeError: 1e-2, floor: 1e-3 },
  { relativeError: 1e-4, floor: 1e-2 },
  { relativeError: 0.05, floor: 1e-30 },
];

describe('P16 probability codes', () => {
  test.each(BOUNDS)('|p′ − p| ≤ %o · max(p, floor) over 200k random values and edge cases', (bound) => {
    const exact = randomProbs(200_000, 7);
    const decoded = unpackP16(packP16(exact, [400, 500], probCode(bound)));
    expect(worstRatio(exact, decoded, bound)).toBeLessThanOrEqual(1);
  });

  test('p = 0 and p = 1 decode exactly; denormals and values below the linear step decode to 0', () => {
    const code = probCode();
    expect(decodeProb(encodeProb(1, code), code)).toBe(1);
    expect(encodeProb(1, code)).toBe(code.maxCode);
    expect(decodeProb(encodeProb(0, code), code)).toBe(0);
    expect(encodeProb(5e-324, code)).toBe(0);
    expect(encodeProb(1e-310, code)).toBe(0);
    // Float noise just above 1 is still 1.
    expect(decodeProb(encodeProb(1 + 1e-15, code), code)).toBe(1);
  });

  test('the default bound is relative 1e-3 for p ≥ 5e-3 and absolute 5e-6 below, and fits 12 bits', () => {
    const code = probCode();
    expect(DEFAULT_PACK).toEqual({ relativeError: 1e-3, floor: 5e-3 });
    expect(code).toEqual({ scale: 501, maxCode: 3156 });
    expect(code.maxCode).toBeLessThan(2 ** 12);
    const ps = randomProbs(100_000, 11);
    const decoded = unpackP16(packP16(ps, [ps.length], code));
    let [rel, abs] = [0, 0];
    ps.forEach((p, i) => {
      if (p >= 5e-3) rel = Math.max(rel, Math.abs(decoded[i] - p) / p);
      else abs = Math.max(abs, Math.abs(decoded[i] - p));
    });
    expect(rel).toBeLessThanOrEqual(1e-3);
    expect(rel).toBeGreaterThan(9e-4); // the bound is tight, not loose by construction
    expect(abs).toBeLessThanOrEqual(5e-6);
    expect(abs).toBeGreaterThan(4.5e-6);
  });

  test('the default bound keeps what the viewer and the widget format show', () => {
    // The viewer prints pct(p): one decimal of a percent from 0.1 %, two significant digits below.
    // Decoded values differ by at most one unit of that last digit for p ≥ 1e-4 (up to six units in
    // [1e-5, 1e-4), values only a near-flat top-k shows); the widget format rounds to 5 decimals
    // (±5e-6), and below the floor the code is no coarser than that rounding.
    const code = probCode();
    const unit = (p: number) => (p >= 0.995 ? 0.01 : p >= 1e-3 ? 1e-3 : 10 ** (Math.floor(Math.log10(p)) - 1));
    const shown = (text: string) => (text.endsWith('%') ? Number(text.slice(0, -1)) / 100 : Number(text));
    const ps = randomProbs(100_000, 13).filter((p) => p >= 1e-5);
    const decoded = unpackP16(packP16(ps, [ps.length], code));
    let [worstUnits, worstUnitsSmall] = [0, 0];
    ps.forEach((p, i) => {
      const units = Math.abs(shown(pct(decoded[i])) - shown(pct(p))) / unit(p);
      if (p >= 1e-4) worstUnits = Math.max(worstUnits, units);
      else worstUnitsSmall = Math.max(worstUnitsSmall, units);
      if (p < 5e-3) expect(Math.abs(decoded[i] - p)).toBeLessThanOrEqual(5e-6);
    });
    expect(worstUnits).toBeLessThanOrEqual(1 + 1e-6);
    expect(worstUnitsSmall).toBeLessThanOrEqual(6 + 1e-6);
    // A bound 10x looser would move what the viewer shows for p ≥ 1e-4 by several units.
    const loose = unpackP16(packP16(ps, [ps.length], probCode({ relativeError: 1e-2, floor: 5e-3 })));
    expect(Math.max(...ps.map((p, i) => (p >= 1e-4 ? Math.abs(shown(pct(loose[i])) - shown(pct(p))) / unit(p) : 0)))).toBeGreaterThan(2);
  });

  test('codes are monotonic in p (ranks survive quantization up to ties)', () => {
    const code = probCode();
    const ps = Array.from(randomProbs(20_000, 3)).sort((a, b) => a - b);
    const codes = ps.map((p) => encodeProb(p, code));
    expect(codes.findIndex((c, i) => i > 0 && c < codes[i - 1])).toBe(-1);
  });

  test('bounds that need more than 16 bits, or are out of range, are BAD_USER_INPUT', () => {
    expect(() => probCode({ relativeError: 1e-5, floor: 1e-30 })).toThrow(expect.objectContaining({ code: 'BAD_USER_INPUT' }));
    expect(() => probCode({ relativeError: 0 })).toThrow(expect.objectContaining({ code: 'BAD_USER_INPUT' }));
    expect(() => probCode({ relativeError: Number.NaN })).toThrow(expect.objectContaining({ code: 'BAD_USER_INPUT' }));
    expect(() => probCode({ floor: 0 })).toThrow(expect.objectContaining({ code: 'BAD_USER_INPUT' }));
    expect(() => probCode({ floor: 0.9 })).toThrow(expect.objectContaining({ code: 'BAD_USER_INPUT' }));
  });

  test('NaN is refused; a corrupt code or length is detected', () => {
    expect(() => packP16([Number.NaN], [1], probCode())).toThrow(RangeError);
    const a = packP16([0.5, 0.25], [2], probCode());
    expect(() => unpackArray({ ...a, data: a.data.slice(0, 4) })).toThrow(RangeError);
    expect(() => unpackArray({ ...a, data: Buffer.from([0xff, 0xff, 0xff, 0xff]).toString('base64') })).toThrow(/above maxCode/);
  });
});

describe('byte layout', () => {
  test('U32 and F32 are little-endian, row-major', () => {
    const u = packU32([1, 0x01020304, 2 ** 32 - 1], [3]);
    expect([...Buffer.from(u.data, 'base64')]).toEqual([1, 0, 0, 0, 4, 3, 2, 1, 255, 255, 255, 255]);
    const f = packF32([1.5, -2], [2]);
    expect([...Buffer.from(f.data, 'base64')]).toEqual([0, 0, 0xc0, 0x3f, 0, 0, 0, 0xc0]);
    expect([...unpackArray(u)]).toEqual([1, 0x01020304, 2 ** 32 - 1]);
    expect([...unpackArray(f)]).toEqual([1.5, -2]);
  });

  test('P16v2: first axis fastest, zigzag deltas along it (mod 2^16), two byte planes', () => {
    const code = probCode();
    // shape [3, 2]: rows are layers; stored order (0,0) (1,0) (2,0) (0,1) (1,1) (2,1).
    const ps = [1, 0, 0.5, 1, 0.25, 0.9];
    const a = packP16(ps, [3, 2], code);
    expect(a.dtype).toBe('P16v2');
    const c = ps.map((p) => encodeProb(p, code));
    const zig = (d: number) => (d >= 0 ? 2 * d : -2 * d - 1);
    const stored = [c[0], c[2] - c[0], c[4] - c[2], c[1], c[3] - c[1], c[5] - c[3]].map(zig);
    expect([...Buffer.from(a.data, 'base64')]).toEqual([...stored.map((d) => d & 0xff), ...stored.map((d) => d >> 8)]);
    expect([a.scale, a.maxCode]).toEqual([code.scale, code.maxCode]);
    expect([...unpackP16(a)].map((p) => encodeProb(p, code))).toEqual(c);
  });

  test('U8 and U16 are little-endian; values that do not fit are refused', () => {
    const b = packSmall([0, 255, 7], [3], 'U8');
    expect([...Buffer.from(b.data, 'base64')]).toEqual([0, 255, 7]);
    const w = packSmall([0x0102, 65535], [2], 'U16');
    expect([...Buffer.from(w.data, 'base64')]).toEqual([2, 1, 255, 255]);
    expect([...unpackArray(w)]).toEqual([0x0102, 65535]);
    expect(() => packSmall([256], [1], 'U8')).toThrow(RangeError);
    expect(() => unpackArray({ ...b, dtype: 'P16' as 'U8' })).toThrow(/format version 2/);
  });

  test('empty arrays and shapes with a zero dimension round-trip', () => {
    expect(unpackArray(packP16([], [0, 5], probCode())).length).toBe(0);
    expect(unpackArray(packU32([], [0])).length).toBe(0);
    expect(() => packU32([1, 2], [3])).toThrow(RangeError);
  });
});

function expectLensRoundTrip(r: LensResult, bound: Required<PackOptions> = DEFAULT_PACK): void {
  const packed = JSON.parse(JSON.stringify(packLens(r, bound)));
  const u = unpackLens(packed);
  if (r.tracked) {
    // topLocal + the tracked arrays give the same top-k ids as topIndices, and their probabilities
    // within the bound of the trajectories' values (the same probabilities, computed in a second
    // pass: in the engine they agree with topProbs to float32 rounding, not to the bit).
    const strip = (x: PackedRead) => ({ ...x, topIndices: null, topProbs: null });
    const v = unpackLens({ ...strip(packed), attention: packed.attention ? strip(packed.attention) : null });
    expect(packed.topLocal.dtype).toBe('U8');
    for (const [a, b, src] of [[u, v, r], [u.attention, v.attention, r.attention]] as const) {
      if (!a || !b || !src) continue;
      expect([...b.topIndices]).toEqual([...a.topIndices]);
      const exact = src.topIndices.flatMap((layer, l) =>
        layer.flatMap((ids, p) => ids.map((id) => src.tracked![p].probs[l][src.tracked![p].tokenIds.indexOf(id)])),
      );
      expect(worstRatio(exact, b.topProbs, bound)).toBeLessThanOrEqual(1);
      expect(worstRatio(src.topProbs.flat(2), exact, { relativeError: 1e-5, floor: 0 })).toBeLessThanOrEqual(1);
    }
  } else expect(packed.topLocal).toBeNull();
  const [L, T, K] = [r.layers.length, r.tokens.length, r.topK];
  expect([u.layers, u.positions, u.k]).toEqual([L, T, K]);
  const pairs: Array<[UnpackedRead, Pick<LensResult, 'topIndices' | 'topProbs' | 'tracked' | 'stats'>]> = [[u, r]];
  if (r.attention) pairs.push([u.attention!, r.attention]);
  for (const [read, src] of pairs) {
    expect([...read.topIndices]).toEqual(src.topIndices.flat(2));
    expect(worstRatio(src.topProbs.flat(2), read.topProbs, bound)).toBeLessThanOrEqual(1);
    if (src.tracked) {
      const t = read.tracked!;
      const N = t.tokenIds.length;
      src.tracked.forEach((tp, p) => {
        expect([...t.tokenIds.subarray(t.offsets[p], t.offsets[p + 1])]).toEqual(tp.tokenIds);
        for (let l = 0; l < L; l++) {
          expect(worstRatio(tp.probs[l], t.probs.subarray(l * N + t.offsets[p], l * N + t.offsets[p + 1]), bound)).toBeLessThanOrEqual(1);
        }
      });
    } else expect(read.tracked).toBeNull();
    if (src.stats) {
      expect([...read.stats!.finalTop1Rank]).toEqual(src.stats.finalTop1Rank.flat());
      expect([...read.stats!.entropy]).toEqual(src.stats.entropy.flat().map(Math.fround));
      expect([...read.stats!.klToFinal]).toEqual(src.stats.klToFinal.flat().map(Math.fround));
    } else expect(read.stats).toBeNull();
  }
  expect(u.attention === null).toBe(r.attention === null);
}

describe('real lens results', () => {
  let facts: LensModel;
  let tiny: LensModel;
  beforeAll(async () => {
    facts = await openModel('models/tiny-facts-gpt2', { device: 'cpu' });
    tiny = await openModel(makeCheckpoint(RECIPES['gpt2-tiny']), { device: 'cpu' });
  });
  afterAll(async () => {
    await facts.close();
    await tiny.close();
  });

  test('tiny-facts-gpt2 with trajectories, stats and the after-attention read, under several bounds', async () => {
    const r = await facts.lens('The capital of France is Paris. The capital of Italy is', {
      topK: 10,
      trackAcrossLayers: true,
      stats: true,
      points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'],
    });
    expect(r.attention?.tracked).toBeTruthy();
    for (const bound of BOUNDS) expectLensRoundTrip(r, bound);
  });

  test('k = 1, one layer, one token, no trajectories', async () => {
    const r = await tiny.lens('Hi', { topK: 1, layers: [2] });
    expect(r.tokens.length).toBe(1);
    expectLensRoundTrip(r);
  });

  test('a layer event packs like the same layer of the result', async () => {
    const events: LayerEvent[] = [];
    const r = await tiny.lens('The quick brown fox', { topK: 3, onLayer: (e) => events.push(e) });
    for (const [li, e] of events.entries()) {
      const u = unpackLayer(JSON.parse(JSON.stringify(packLayer(e))));
      expect([u.positions, u.k]).toEqual([r.tokens.length, 3]);
      expect([...u.topIndices]).toEqual(r.topIndices[li].flat());
      expect(worstRatio(r.topProbs[li].flat(), u.topProbs, DEFAULT_PACK)).toBeLessThanOrEqual(1);
    }
  });

  test('positions that track no ids and results with no positions round-trip', () => {
    const base = { layers: [0, 1], topK: 2, attention: null, stats: null };
    const empty = { ...base, tokens: [], topIndices: [[], []], topProbs: [[], []], tracked: [] };
    const u = unpackLens(packLens(empty));
    expect([u.positions, u.tracked!.tokenIds.length, u.tracked!.offsets.length]).toEqual([0, 0, 1]);
    const oneEmpty = {
      ...base,
      tokens: [{ position: 0, id: 1, text: 'a' }],
      topIndices: [[[3, 4]], [[4, 3]]],
      topProbs: [[[0.6, 0.4]], [[1, 0]]],
      tracked: [{ position: 0, tokenIds: [], probs: [[], []] }],
    };
    const v = unpackLens(packLens(oneEmpty));
    expect([...v.topProbs]).toEqual([expect.closeTo(0.6, 3), expect.closeTo(0.4, 3), 1, 0]);
    expect([...v.tracked!.offsets]).toEqual([0, 0]);
  });
});

describe('JSON precision', () => {
  test('rounds to significant digits; 17 keeps float64 exactly; 0 stays 0', () => {
    expect(roundSignificant(0.123456789, 3)).toBe(0.123);
    expect(roundSignificant(1.23456e-9, 2)).toBe(1.2e-9);
    expect(roundSignificant(0, 3)).toBe(0);
    const r = rng(5);
    for (let i = 0; i < 1000; i++) {
      const x = r() * 10 ** (-20 * r());
      expect(roundSignificant(x, 17)).toBe(x);
      expect(Math.abs(roundSignificant(x, 4) - x)).toBeLessThanOrEqual(x * 5e-4);
    }
  });
});

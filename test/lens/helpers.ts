import { expect } from 'vitest';
import type { LensResult } from '../../src/lens/index.js';
import type { ReferenceLens } from '../helpers/reference.js';

export interface Deviation {
  maxProbError: number;
  topKMismatches: string[];
}

/** Ids ranked by the reference; a mismatch only counts when the probabilities differ (true ties allowed). */
function topKAgrees(ref: Float64Array, got: number[], tol = 1e-9): boolean {
  return got.every((id, k) => {
    if (k === 0) return true;
    return ref[got[k - 1]] >= ref[id] - tol;
  }) && got.every((id) => {
    // nothing outside `got` beats the k-th
    const kth = ref[got[got.length - 1]];
    return ref[id] >= kth - tol;
  }) && countAbove(ref, ref[got[got.length - 1]] + tol) <= got.length;
}

function countAbove(row: Float64Array, threshold: number): number {
  let n = 0;
  for (const x of row) if (x > threshold) n++;
  return n;
}

/** Compares top-k cells and trajectories of `res` (one lens point) with reference log-probs. */
export function deviation(
  res: Pick<LensResult, 'layers' | 'topIndices' | 'topProbs' | 'tracked'>,
  refLogProbs: Float64Array[][],
): Deviation {
  let maxProbError = 0;
  const topKMismatches: string[] = [];
  res.layers.forEach((layer, li) => {
    res.topIndices[li].forEach((ids, p) => {
      const ref = refLogProbs[layer][p];
      if (!topKAgrees(ref, ids)) topKMismatches.push(`layer ${layer} pos ${p}: got ${ids}`);
      ids.forEach((id, k) => (maxProbError = Math.max(maxProbError, Math.abs(Math.exp(ref[id]) - res.topProbs[li][p][k]))));
    });
  });
  for (const t of res.tracked ?? []) {
    res.layers.forEach((layer, li) => {
      t.tokenIds.forEach((id, j) => {
        maxProbError = Math.max(maxProbError, Math.abs(Math.exp(refLogProbs[layer][t.position][id]) - t.probs[li][j]));
      });
    });
  }
  return { maxProbError, topKMismatches };
}

export function idsOf(r: LensResult): number[] {
  return r.tokens.map((t) => t.id);
}

export type { ReferenceLens };

/**
 * A full lens run (all layers, both points, trajectories) agrees with the reference: block outputs,
 * after-attention reads, and the last layer against the model's own final distribution.
 * Returns the worst probability error seen.
 */
export function expectMatchesReference(r: LensResult, ref: ReferenceLens, numLayers: number, tol: number): number {
  expect(r.layers).toEqual([...Array(numLayers).keys()]);
  const block = deviation(r, ref.logProbs);
  expect(block.topKMismatches).toEqual([]);
  expect(block.maxProbError).toBeLessThanOrEqual(tol);

  const attn = deviation({ ...r.attention!, layers: r.layers }, ref.attnLogProbs);
  expect(attn.topKMismatches).toEqual([]);
  expect(attn.maxProbError).toBeLessThanOrEqual(tol);

  const last = r.layers.length - 1;
  const final = deviation({ layers: [0], topIndices: [r.topIndices[last]], topProbs: [r.topProbs[last]], tracked: null }, [ref.finalLogProbs]);
  expect(final.topKMismatches).toEqual([]);
  expect(final.maxProbError).toBeLessThanOrEqual(tol);
  return Math.max(block.maxProbError, attn.maxProbError, final.maxProbError);
}

// LensCell: one (layer, position) of a result or of a streamed layer, decoded for front ends.

import type { LensResult } from '../src/lens/types.js';
import { builder } from './builder.js';
import { gatewayError } from './errors.js';
import { decoder } from './model.js';
import { TokenProbRef } from './token-prob.js';

export interface CellShape {
  modelId: string;
  layer: number;
  position: number;
  ids: number[];
  probs: number[];
  entropy: number | null;
  klToFinal: number | null;
  finalTop1Rank: number | null;
}

export const LensCellRef = builder.objectRef<CellShape>('LensCell');

LensCellRef.implement({
  description: 'One (layer, position) cell with decoded predictions, for front ends.',
  fields: (t) => ({
    layer: t.exposeInt('layer'),
    position: t.exposeInt('position'),
    token: t.string({ description: 'Top-1 text.', resolve: (c, _a, ctx) => decoder(ctx, c.modelId)(c.ids[0]) }),
    prob: t.float({ description: 'Top-1 probability.', resolve: (c) => c.probs[0] }),
    topk: t.field({
      type: [TokenProbRef],
      resolve: (c, _a, ctx) => {
        const decode = decoder(ctx, c.modelId);
        return c.ids.map((id, k) => ({ id, text: decode(id), prob: c.probs[k] }));
      },
    }),
    entropy: t.exposeFloat('entropy', { nullable: true, description: 'Nats; null unless stats were requested.' }),
    klToFinal: t.exposeFloat('klToFinal', { nullable: true, description: 'KL(final ‖ this layer), nats.' }),
    finalTop1Rank: t.exposeInt('finalTop1Rank', {
      nullable: true,
      description: "Rank here of the final layer's top-1 (0 = also top-1 here).",
    }),
  }),
});

/** Cells of one layer, optionally narrowed to `positions` and the first `k` predictions. */
export function layerCells(
  modelId: string,
  r: Pick<LensResult, 'topIndices' | 'topProbs' | 'stats' | 'layers'>,
  li: number,
  positions: readonly number[] | null | undefined,
  k: number | null | undefined,
): CellShape[] {
  const ids = r.topIndices[li];
  const probs = r.topProbs[li];
  const pos = positions ?? ids.map((_, p) => p);
  return pos.map((p) => ({
    modelId,
    layer: r.layers[li],
    position: p,
    ids: k ? ids[p].slice(0, k) : ids[p],
    probs: k ? probs[p].slice(0, k) : probs[p],
    entropy: r.stats?.entropy[li][p] ?? null,
    klToFinal: r.stats?.klToFinal[li][p] ?? null,
    finalTop1Rank: r.stats?.finalTop1Rank[li][p] ?? null,
  }));
}

/**
 * cells(layers:, positions:, k:) arguments: each list without duplicates and inside the result's
 * extent (so no list is longer than the result), k within the result's topK; returns how many
 * cells and predictions per cell the answer will hold, for the response budget.
 */
export function checkCellArgs(
  extent: { positions: number; topK: number },
  k: number | null | undefined,
  positions: readonly number[] | null | undefined,
): { positions: number; k: number } {
  if (k != null && (k < 1 || k > extent.topK)) throw gatewayError('BAD_USER_INPUT', `k must be between 1 and the result's topK ${extent.topK}, got ${k}`);
  if (positions) {
    const seen = new Set<number>();
    for (const p of positions) {
      if (p < 0 || p >= extent.positions) {
        throw gatewayError('BAD_USER_INPUT', `position ${p} is out of range 0..${extent.positions - 1}`);
      }
      if (seen.has(p)) throw gatewayError('BAD_USER_INPUT', `position ${p} is listed twice`);
      seen.add(p);
    }
  }
  return { positions: positions?.length ?? extent.positions, k: k ?? extent.topK };
}

/** Layer indices (into result.layers) for cells(layers:): a subset of the result's layers, no duplicates. */
export function cellLayerIndices(resultLayers: readonly number[], layers: readonly number[] | null | undefined): number[] {
  if (!layers) return resultLayers.map((_, i) => i);
  const seen = new Set<number>();
  return layers.map((l) => {
    const li = resultLayers.indexOf(l);
    if (li < 0) throw gatewayError('BAD_USER_INPUT', `layer ${l} is not in this result (layers ${resultLayers.join(',')})`);
    if (seen.has(l)) throw gatewayError('BAD_USER_INPUT', `layer ${l} is listed twice`);
    seen.add(l);
    return li;
  });
}

// logitlenskit widget JSON (davidbau/logitlenskit, docs/DATA_FORMAT.md), as a pure conversion of a
// lens result. V2 is what its Python `format_data_for_widget` emits; V1 is the legacy per-cell
// layout its JS `normalizeData` expands V2 into. Probabilities are rounded to 5 decimals like the
// Python side does.

import type { LensResult } from './types.js';

export type WidgetFormat = 'V1' | 'V2';

export interface WidgetV2 {
  meta: { version: 2; timestamp: string; model?: string };
  layers: number[];
  input: string[];
  /** [position] → token text → probability at each requested layer. */
  tracked: Array<Record<string, number[]>>;
  /** [layerIndex][position] → top-k token texts, most likely first. */
  topk: string[][][];
}

export interface WidgetV1Item {
  token: string;
  prob: number;
  trajectory: number[];
}

export interface WidgetV1 {
  layers: number[];
  tokens: string[];
  /** [position][layerIndex]: the top-1 item plus its top-k list. */
  cells: Array<Array<WidgetV1Item & { topk: WidgetV1Item[] }>>;
}

const round5 = (p: number) => Math.round(p * 1e5) / 1e5;

/**
 * Per position: token text → trajectory. With tracking the trajectories are exact. Without it only
 * top-k probabilities are known, so a token's trajectory holds its probability where it was top-k
 * and 0 elsewhere (logitlenskit documents zeros for untracked tokens).
 */
function trajectories(result: LensResult, decode: (id: number) => string): Array<Record<string, number[]>> {
  const nLayers = result.layers.length;
  return result.tokens.map((_, pos) => {
    const out: Record<string, number[]> = {};
    const tracked = result.tracked?.[pos];
    if (tracked) {
      tracked.tokenIds.forEach((id, j) => {
        out[decode(id)] = tracked.probs.map((row) => round5(row[j]));
      });
      return out;
    }
    for (let li = 0; li < nLayers; li++) {
      result.topIndices[li][pos].forEach((id, k) => {
        const text = decode(id);
        const traj = (out[text] ??= new Array<number>(nLayers).fill(0));
        traj[li] = round5(result.topProbs[li][pos][k]);
      });
    }
    return out;
  });
}

export function toWidgetV2(
  result: LensResult,
  decode: (id: number) => string,
  meta: { timestamp: Date; model?: string },
): WidgetV2 {
  return {
    meta: { version: 2, timestamp: meta.timestamp.toISOString(), ...(meta.model ? { model: meta.model } : {}) },
    layers: [...result.layers],
    input: result.tokens.map((t) => t.text),
    tracked: trajectories(result, decode),
    topk: result.topIndices.map((layer) => layer.map((ids) => ids.map(decode))),
  };
}

export function toWidgetV1(result: LensResult, decode: (id: number) => string): WidgetV1 {
  const tracked = trajectories(result, decode);
  return {
    layers: [...result.layers],
    tokens: result.tokens.map((t) => t.text),
    cells: result.tokens.map((_, pos) =>
      result.layers.map((_, li) => {
        const topk = result.topIndices[li][pos].map((id, k) => {
          const token = decode(id);
          return { token, prob: round5(result.topProbs[li][pos][k]), trajectory: tracked[pos][token] ?? [] };
        });
        const top1 = topk[0] ?? { token: '', prob: 0, trajectory: [] };
        return { ...top1, topk };
      }),
    ),
  };
}

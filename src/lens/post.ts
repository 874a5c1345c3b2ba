// After the forward pass: trajectories (mode 2) and per-cell stats, from the kept normed states and
// log-sum-exps of each requested layer. Neither needs the [rows, V] logits of the lens head again
// except the stats pass, which recomputes them inside ORT in row chunks.
import type { ModelPlan } from '../architectures/spec.js';
import { GATHER, UNEMBED } from '../graph/head.js';
import { ort, type OrtSession } from '../runtime/sessions.js';
import { runUnembed } from '../runtime/unembed.js';
import { LoopTurns } from './loop-turns.js';
import { chunkByRows, unionIds } from './reduce.js';
import type { CellStats, TrackedPosition } from './types.js';

/** What the lens head left behind for one read point: per requested layer, [len] rows. */
export interface LayerStates {
  topIndices: number[][][];
  normed: Float32Array[];
  lse: Float64Array[];
}

/** Unembedding columns read from the checkpoint per block (between event-loop turns). */
const COLUMN_BLOCK = 256;

/** Rows per gather call: its [rows, M] float64 output stays ≤ 64 MB. */
const GATHER_BYTES = 64 * 2 ** 20;

/**
 * Rows per stats call: three [rows, V] float32 tensors stay ≤ 64 MB. The head session's ORT arena
 * keeps a call's peak: at 256 MB, GPT-2-small held 1652 MB after 3 lenses with stats and
 * trajectories, at 64 MB 1239 MB, same lens time (1.3–1.6 s, measured side by side, idle).
 */
const STATS_BYTES = 64 * 2 ** 20;

/**
 * Per position: the ascending union of top-k ids over the requested layers and their probabilities
 * at every layer — one gather-graph call over the union of all positions' ids.
 */
export async function trajectories(
  st: LayerStates,
  len: number,
  D: number,
  session: OrtSession,
  columns: (ids: number[]) => { weight: Float32Array; bias?: Float32Array },
): Promise<TrackedPosition[]> {
  const nL = st.normed.length;
  const turns = new LoopTurns();
  const unions: number[][] = [];
  for (let p = 0; p < len; p++) {
    unions.push(unionIds(st.topIndices, p));
    await turns.check();
  }
  const all = [...new Set(unions.flat())].sort((a, b) => a - b);
  const col = new Map(all.map((id, i) => [id, i]));
  const normed = new Float32Array(nL * len * D);
  const lse = new Float64Array(nL * len);
  st.normed.forEach((n, li) => normed.set(n, li * len * D));
  st.lse.forEach((x, li) => lse.set(x, li * len));
  const M = all.length;
  // The columns are read from the checkpoint a block of ids at a time (synchronous file reads). They
  // are fed to every gather call: shared with the ORT thread, which copies them there, not here.
  const weight = new Float32Array(new SharedArrayBuffer(M * D * 4));
  let bias: Float32Array | undefined;
  for (let from = 0; from < M; from += COLUMN_BLOCK) {
    const part = columns(all.slice(from, from + COLUMN_BLOCK));
    weight.set(part.weight, from * D);
    if (part.bias) (bias ??= new Float32Array(M)).set(part.bias, from);
    await turns.check();
  }
  // Rows per call bound the [rows, M] float64 output (and ORT's intermediates of that shape).
  const rows = nL * len;
  const step = Math.max(1, Math.floor(GATHER_BYTES / (M * 8)));
  const lp = new Float64Array(rows * M);
  const columnTensors = {
    [GATHER.inputs.columns]: new ort.Tensor('float32', weight, [M, D]),
    ...(bias ? { [GATHER.inputs.bias]: new ort.Tensor('float32', bias, [M]) } : {}),
  };
  for (let from = 0; from < rows; from += step) {
    const to = Math.min(rows, from + step);
    const out = await session.run({
      [GATHER.inputs.normed]: new ort.Tensor('float32', normed.subarray(from * D, to * D), [to - from, D]),
      [GATHER.inputs.lse]: new ort.Tensor('float64', lse.subarray(from, to), [to - from]),
      ...columnTensors,
    });
    lp.set(out[GATHER.outputs.logProbs].data as Float64Array, from * M);
  }
  const tracked: TrackedPosition[] = [];
  for (let position = 0; position < len; position++) {
    const tokenIds = unions[position];
    tracked.push({
      position,
      tokenIds,
      probs: Array.from({ length: nL }, (_, li) => tokenIds.map((id) => Math.exp(lp[(li * len + position) * M + col.get(id)!]))),
    });
    await turns.check();
  }
  return tracked;
}

/** Entropy, KL(final ‖ layer) and rank of the final top-1 for every (requested layer, position). */
export async function cellStats(
  normedPerLayer: Float32Array[],
  len: number,
  finalNormed: Float32Array,
  finalTop1: number[],
  /** The shared unembedding session (runtime/unembed.ts). */
  session: OrtSession,
  plan: ModelPlan,
): Promise<CellStats> {
  const D = plan.hiddenSize;
  const maxRows = Math.max(1, Math.floor(STATS_BYTES / (plan.vocabSize * 4 * 3)));
  const stats: CellStats = { entropy: [], klToFinal: [], finalTop1Rank: [] };
  const items = normedPerLayer.map((n, li) => ({ li, rows: len, n }));
  for (const chunk of chunkByRows(items, maxRows)) {
    const N = chunk.length * len;
    const normed = new Float32Array(N * D);
    const fin = new Float32Array(N * D);
    const target = new BigInt64Array(N);
    chunk.forEach((c, i) => {
      normed.set(c.n, i * len * D);
      fin.set(finalNormed, i * len * D);
      finalTop1.forEach((id, p) => (target[i * len + p] = BigInt(id)));
    });
    const out = await runUnembed(session, plan, { stats: { normed, finalNormed: fin, target } });
    const ent = out[UNEMBED.outputs.entropy].data as Float64Array;
    const kl = out[UNEMBED.outputs.kl].data as Float64Array;
    const rank = out[UNEMBED.outputs.rank].data as BigInt64Array;
    chunk.forEach((c, i) => {
      const at = (p: number) => i * len + p;
      stats.entropy[c.li] = Array.from({ length: len }, (_, p) => ent[at(p)]);
      // Float rounding can leave a KL of −1e-12 for identical distributions; it is 0.
      stats.klToFinal[c.li] = Array.from({ length: len }, (_, p) => Math.max(0, kl[at(p)]));
      stats.finalTop1Rank[c.li] = Array.from({ length: len }, (_, p) => Number(rank[at(p)]));
    });
  }
  return stats;
}

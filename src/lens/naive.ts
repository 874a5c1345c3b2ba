// The benchmark baseline: full [T, V] logits per layer copied to JS and reduced there — what the lens
// head exists to avoid. Same blocks, same answers (tested), very different bytes and time.
import { performance } from 'node:perf_hooks';
import type { ModelPlan } from '../architectures/spec.js';
import { UNEMBED } from '../graph/head.js';
import type { BlockStack } from '../runtime/blocks.js';
import type { OrtSession } from '../runtime/sessions.js';
import { runUnembed } from '../runtime/unembed.js';
import { topKFromLogits, unionIds } from './reduce.js';
import type { LensResult, ModelInfo, TrackedPosition } from './types.js';
import type { ValidRequest } from './validate.js';

export interface NaiveParts {
  plan: ModelPlan;
  info: ModelInfo;
  embed(rows: number[][], T: number): Float32Array;
  blocks(lengths: number[], T: number): BlockStack;
  /** The shared unembedding session; its naive part returns full logits. */
  head: OrtSession;
  decode(id: number): string;
}

export async function naiveLens(req: ValidRequest, parts: NaiveParts): Promise<LensResult> {
  const t0 = performance.now();
  const D = parts.plan.hiddenSize;
  const V = parts.plan.vocabSize;
  const T = req.ids.length;
  const stack = parts.blocks([T], T);
  let hidden = parts.embed([req.ids], T);
  const topIndices: number[][][] = [];
  const topProbs: number[][][] = [];
  const logitsPerLayer: Float32Array[] = [];
  let blocksMs = 0;
  let headMs = 0;
  for (let l = 0; l <= req.layers[req.layers.length - 1]; l++) {
    const tb = performance.now();
    hidden = (await stack.run(l, hidden)).hidden;
    blocksMs += performance.now() - tb;
    if (!req.layers.includes(l)) continue;
    const th = performance.now();
    const out = await runUnembed(parts.head, parts.plan, { naive: hidden });
    const logits = out[UNEMBED.outputs.naiveLogits].data as Float32Array;
    const rows = Array.from({ length: T }, (_, p) => topKFromLogits(logits, p * V, V, req.topK));
    topIndices.push(rows.map((r) => r.ids));
    topProbs.push(rows.map((r) => r.probs));
    if (req.track) logitsPerLayer.push(logits);
    headMs += performance.now() - th;
  }
  let tracked: TrackedPosition[] | null = null;
  if (req.track) {
    tracked = Array.from({ length: T }, (_, position) => {
      const tokenIds = unionIds(topIndices, position);
      return {
        position,
        tokenIds,
        probs: logitsPerLayer.map((logits) => {
          const { lse } = topKFromLogits(logits, position * V, V, 1);
          return tokenIds.map((id) => Math.exp(logits[position * V + id] - lse));
        }),
      };
    });
  }
  return {
    model: parts.info,
    lens: 'LOGIT',
    tokens: req.ids.map((id, position) => ({ position, id, text: parts.decode(id) })),
    layers: req.layers,
    point: 'BLOCK_OUTPUT',
    topK: req.topK,
    topIndices,
    topProbs,
    tracked,
    stats: null,
    attention: null,
    timings: { totalMs: performance.now() - t0, queueMs: 0, embedMs: 0, blocksMs, headMs, trackMs: 0, statsMs: 0, batchSize: 1 },
  };
}

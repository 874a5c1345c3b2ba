import type { ModelPlan } from '../architectures/spec.js';
import { GraphBuilder } from './onnx-builder.js';
import { type Ctx, norm } from './layers.js';
import type { WeightBinder } from './weights.js';

/**
 * logits = softcap(normed · Wᵀ + b) for all V columns, or for the `ids` columns only.
 * W is [V, D] (torch Linear or tied embedding); Gemm(transB) reads it in place.
 */
function unembed({ g, w }: Ctx, normed: string, plan: ModelPlan, ids?: string): string {
  const V = plan.vocabSize;
  const D = plan.hiddenSize;
  let W = w.bind(g, plan.unembed.weight, [V, D]);
  let b = plan.unembed.bias ? w.bind(g, plan.unembed.bias, [V]) : undefined;
  if (ids) {
    W = g.op('Gather', [W, ids], { axis: 0 }, 'GatherColumns');
    if (b) b = g.op('Gather', [b, ids], { axis: 0 }, 'GatherBias');
  }
  let logits = g.op('Gemm', b ? [normed, W, b] : [normed, W], { transB: 1 }, 'Unembed');
  const cap = plan.unembed.softcap;
  if (cap !== undefined) {
    const c = g.constFloat([cap]);
    logits = g.op('Mul', [g.op('Tanh', [g.op('Div', [logits, c])]), c], undefined, 'FinalSoftcap');
  }
  return logits;
}

const DOUBLE = 11;

export const HEAD = {
  inputs: { hidden: 'hidden', k: 'k' },
  outputs: { topLogProbs: 'top_logprobs', topIds: 'top_ids', lse: 'lse', normed: 'normed' },
} as const;

/**
 * The lens head, shared by every layer. The [N, V] logits never leave ORT.
 *
 *   hidden [N,D] ─ final norm ─┬─ normed (kept for trajectories)
 *                              └─ unembed ─ logits [N,V] ─┬─ ReduceLogSumExp ─ lse [N]
 *                                                         └─ TopK(k) ─ values − lse, ids
 */
export function buildLensHead(plan: ModelPlan, w: WeightBinder): Uint8Array {
  const g = new GraphBuilder('lens_head');
  const ctx = { g, w };
  const D = plan.hiddenSize;
  const h = g.input(HEAD.inputs.hidden, 'float', ['rows', D]);
  const k = g.input(HEAD.inputs.k, 'int64', [1]);
  const normed = g.scoped('final_norm', () => norm(ctx, h, plan.finalNorm, D));
  const logits = unembed(ctx, normed, plan);
  // A float32 sum over ~50k–150k terms drifts by ~1e-4 relative; accumulate the normaliser in float64.
  const lse = g.op('ReduceLogSumExp', [g.op('Cast', [logits], { to: DOUBLE }), g.constInt64([1])], { keepdims: 0 });
  const [values, ids] = g.node('TopK', [logits, k], { attrs: { axis: -1, largest: 1, sorted: 1 }, outputs: 2 });
  const logp = g.op('Sub', [g.op('Cast', [values], { to: DOUBLE }), g.op('Unsqueeze', [lse, g.constInt64([1])])], undefined, 'TopLogProbs');
  g.output(logp, HEAD.outputs.topLogProbs, 'double', ['rows', 'k']);
  g.output(ids, HEAD.outputs.topIds, 'int64', ['rows', 'k']);
  g.output(lse, HEAD.outputs.lse, 'double', ['rows']);
  g.output(normed, HEAD.outputs.normed, 'float', ['rows', D]);
  return g.toBytes();
}

export const GATHER = { inputs: { normed: 'normed', lse: 'lse', ids: 'ids' }, outputs: { logProbs: 'logprobs' } } as const;

/** Log-probabilities of chosen ids from kept normed states and log-sum-exps: [N, M], M ≪ V. */
export function buildGatherGraph(plan: ModelPlan, w: WeightBinder): Uint8Array {
  const g = new GraphBuilder('lens_gather');
  const normed = g.input(GATHER.inputs.normed, 'float', ['rows', plan.hiddenSize]);
  const lse = g.input(GATHER.inputs.lse, 'double', ['rows']);
  const ids = g.input(GATHER.inputs.ids, 'int64', ['ids']);
  const logits = g.op('Cast', [unembed({ g, w }, normed, plan, ids)], { to: DOUBLE });
  const logp = g.op('Sub', [logits, g.op('Unsqueeze', [lse, g.constInt64([1])])]);
  g.output(logp, GATHER.outputs.logProbs, 'double', ['rows', 'ids']);
  return g.toBytes();
}

export const STATS = {
  inputs: { normed: 'normed', finalNormed: 'final_normed', target: 'target' },
  outputs: { entropy: 'entropy', kl: 'kl_to_final', rank: 'target_rank' },
} as const;

/**
 * Per row: entropy of the lens distribution, KL(p_final ‖ p_layer), and how many tokens outrank
 * `target` (the final layer's top-1). Needs the full distributions, so it stays in ORT too.
 */
export function buildStatsGraph(plan: ModelPlan, w: WeightBinder): Uint8Array {
  const g = new GraphBuilder('lens_stats');
  const ctx = { g, w };
  const D = plan.hiddenSize;
  const normed = g.input(STATS.inputs.normed, 'float', ['rows', D]);
  const finalNormed = g.input(STATS.inputs.finalNormed, 'float', ['rows', D]);
  const target = g.input(STATS.inputs.target, 'int64', ['rows']);
  const axis1 = g.constInt64([1]);
  const logits = unembed(ctx, normed, plan);
  const logp = g.op('LogSoftmax', [g.op('Cast', [logits], { to: DOUBLE })], { axis: -1 });
  const logq = g.op('LogSoftmax', [g.op('Cast', [unembed(ctx, finalNormed, plan)], { to: DOUBLE })], { axis: -1 });
  const plogp = g.op('Mul', [g.op('Exp', [logp]), logp]);
  const entropy = g.op('Neg', [g.op('ReduceSum', [plogp, axis1], { keepdims: 0 })]);
  const kl = g.op('ReduceSum', [g.op('Mul', [g.op('Exp', [logq]), g.op('Sub', [logq, logp])]), axis1], { keepdims: 0 });
  const targetLogit = g.op('GatherElements', [logits, g.op('Unsqueeze', [target, axis1])], { axis: 1 });
  const above = g.op('Cast', [g.op('Greater', [logits, targetLogit])], { to: 7 });
  const rank = g.op('ReduceSum', [above, axis1], { keepdims: 0 });
  g.output(entropy, STATS.outputs.entropy, 'double', ['rows']);
  g.output(kl, STATS.outputs.kl, 'double', ['rows']);
  g.output(rank, STATS.outputs.rank, 'int64', ['rows']);
  return g.toBytes();
}

export const NAIVE = { inputs: { hidden: 'hidden' }, outputs: { logits: 'logits' } } as const;

/** Benchmarks only: the full [N, V] logits, shipped to JS. */
export function buildNaiveHead(plan: ModelPlan, w: WeightBinder): Uint8Array {
  const g = new GraphBuilder('naive_head');
  const ctx = { g, w };
  const h = g.input(NAIVE.inputs.hidden, 'float', ['rows', plan.hiddenSize]);
  const normed = g.scoped('final_norm', () => norm(ctx, h, plan.finalNorm, plan.hiddenSize));
  g.output(unembed(ctx, normed, plan), NAIVE.outputs.logits, 'float', ['rows', plan.vocabSize]);
  return g.toBytes();
}

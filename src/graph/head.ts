import type { ModelPlan } from '../architectures/spec.js';
import { GraphBuilder } from './onnx-builder.js';
import { type Ctx, norm } from './layers.js';
import { applyTranslators, type TranslatorStack } from './translator.js';
import type { WeightBinder } from './weights.js';

interface UnembedWeights {
  W: string;
  b?: string;
}

/** W [V, D] (torch Linear or tied embedding) and the optional bias, bound once per graph. */
function unembedWeights({ g, w }: Ctx, plan: ModelPlan): UnembedWeights {
  const W = w.bind(g, plan.unembed.weight, [plan.vocabSize, plan.hiddenSize]);
  return { W, b: plan.unembed.bias ? w.bind(g, plan.unembed.bias, [plan.vocabSize]) : undefined };
}

function softcap(g: GraphBuilder, logits: string, plan: ModelPlan): string {
  const cap = plan.unembed.softcap;
  if (cap === undefined) return logits;
  const c = g.constFloat32([cap]);
  return g.op('Mul', [g.op('Tanh', [g.op('Div', [logits, c])]), c], undefined, 'FinalSoftcap');
}

/** logits = softcap(normed · Wᵀ + b) over all V columns, float32 out; Gemm(transB) reads W in place. */
function unembed(ctx: Ctx, normed: string, plan: ModelPlan, uw = unembedWeights(ctx, plan)): string {
  const { g } = ctx;
  const { W, b } = uw;
  if (g.compute === 'float') return softcap(g, g.op('Gemm', b ? [normed, W, b] : [normed, W], { transB: 1 }, 'Unembed'), plan);
  // ORT's CPU Gemm has a float16 kernel ~100× slower than its float32 one, while CPU FusedMatMul runs
  // float16 through float32 casts; on CUDA both are one cuBLAS GEMM.
  let logits = g.node('FusedMatMul', [g.toCompute(normed), W], { domain: 'com.microsoft', attrs: { transB: 1, alpha: { float: 1 } }, name: 'Unembed' })[0];
  if (b) logits = g.op('Add', [logits, b], undefined, 'UnembedBias');
  return softcap(g, g.toFloat32(logits), plan);
}

const DOUBLE = 11;

/**
 * Row-wise log-sum-exp of float32 logits [N, V] as float64 [N].
 * A float32 sum over 50k–150k terms drifts by ~1e-4 relative, and float64 exp over the whole row is
 * scalar and slow (seconds for 80 layers × V = 128k). So: max-shift and exp in float32 (vectorised,
 * ~1e-7 relative per term, no accumulation), sums in float64.
 *
 *   logits ─ ReduceMax ─ m ─┬──────────────────────────────────────────┐
 *   logits ─ Sub(m) ─ Exp ─ Cast(f64) ─ ReduceSum ─ Log ─ Add(Cast(m)) ─ lse
 */
function logSumExp(g: GraphBuilder, logits: string): string {
  const axis1 = g.constInt64([1]);
  const m = g.op('ReduceMax', [logits, axis1], { keepdims: 1 });
  const e = g.op('Exp', [g.op('Sub', [logits, m])]);
  const sum = g.op('ReduceSum', [g.op('Cast', [e], { to: DOUBLE }), axis1], { keepdims: 0 });
  const m64 = g.op('Cast', [g.op('Squeeze', [m, axis1])], { to: DOUBLE });
  return g.op('Add', [g.op('Log', [sum]), m64]);
}

/** Extra float16 top-k candidates rescored in float32, so near-ties at the k-th place still come out right. */
const RESCORE_MARGIN = 8;

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
 *
 * In float16 graphs the logits are rounded to float16 (≈5e-3 at |logit| ≈ 10, too coarse for
 * probabilities within 2e-3), so TopK(k + margin) there only picks candidates: their logits are
 * recomputed in float32 from the gathered weight rows, re-ranked, and the log-sum-exp has the
 * candidates' float16 terms swapped for the float32 ones.
 */
export function buildLensHead(plan: ModelPlan, w: WeightBinder, translators: TranslatorStack[] = []): Uint8Array {
  const g = new GraphBuilder('lens_head', w.compute);
  const ctx = { g, w };
  const D = plan.hiddenSize;
  let h = g.input(HEAD.inputs.hidden, 'float', ['rows', D]);
  // Tuned / Jacobian lenses: the row is translated (float32) before the final norm; see translator.ts.
  if (translators.length) h = applyTranslators(g, h, translators, D);
  const k = g.input(HEAD.inputs.k, 'int64', [1]);
  const normed = g.scoped('final_norm', () => norm(ctx, g.toCompute(h), plan.finalNorm, D));
  const uw = unembedWeights(ctx, plan);
  const normed32 = g.toFloat32(normed);
  const logits = unembed(ctx, normed32, plan, uw);
  let lse = g.scoped('lse', () => logSumExp(g, logits));
  let values: string;
  let ids: string;
  if (g.compute === 'float') {
    [values, ids] = g.node('TopK', [logits, k], { attrs: { axis: -1, largest: 1, sorted: 1 }, outputs: 2 });
  } else {
    ({ values, ids, lse } = g.scoped('rescore', () => rescore(ctx, plan, uw, normed32, logits, lse, k)));
  }
  const logp = g.op('Sub', [g.op('Cast', [values], { to: DOUBLE }), g.op('Unsqueeze', [lse, g.constInt64([1])])], undefined, 'TopLogProbs');
  g.output(logp, HEAD.outputs.topLogProbs, 'double', ['rows', 'k']);
  g.output(ids, HEAD.outputs.topIds, 'int64', ['rows', 'k']);
  g.output(lse, HEAD.outputs.lse, 'double', ['rows']);
  // Exact in float32, so the gather/stats graphs cast it back to the same compute-type values.
  g.output(normed32, HEAD.outputs.normed, 'float', ['rows', D]);
  return g.toBytes();
}

/**
 *   logits16 ─ TopK(kc = min(k + margin, V)) ─ cand ids [N,kc] ─ Gather W rows [N,kc,D] ─ float32 · normed ─ exact [N,kc]
 *   exact ─ TopK(k) ─ values, ids (via GatherElements on cand)
 *   lse = lse16 + log(max(0, 1 − Σ exp(cand16 − lse16)) + Σ exp(exact − lse16))      (float64)
 */
function rescore(
  ctx: Ctx,
  plan: ModelPlan,
  uw: UnembedWeights,
  normed32: string,
  logits: string,
  lse16: string,
  k: string,
): { values: string; ids: string; lse: string } {
  const { g } = ctx;
  const kc = g.op('Min', [g.op('Add', [k, g.constInt64([RESCORE_MARGIN])]), g.constInt64([plan.vocabSize])]);
  const [cand16, cand] = g.node('TopK', [logits, kc], { attrs: { axis: -1, largest: 1, sorted: 1 }, outputs: 2 });
  const rows = g.toFloat32(g.op('Gather', [uw.W, cand], { axis: 0 }, 'GatherRows'));
  const axis2 = g.constInt64([2]);
  let exact = g.op('ReduceSum', [g.op('Mul', [rows, g.op('Unsqueeze', [normed32, g.constInt64([1])])]), axis2], { keepdims: 0 }, 'Dot');
  if (uw.b) exact = g.op('Add', [exact, g.toFloat32(g.op('Gather', [uw.b, cand], { axis: 0 }, 'GatherBias'))], undefined, 'Bias');
  exact = softcap(g, exact, plan);
  const [values, at] = g.node('TopK', [exact, k], { attrs: { axis: -1, largest: 1, sorted: 1 }, outputs: 2 });
  const ids = g.op('GatherElements', [cand, at], { axis: 1 });
  const axis1 = g.constInt64([1]);
  const lseCol = g.op('Unsqueeze', [lse16, axis1]);
  const mass = (x: string) => g.op('ReduceSum', [g.op('Exp', [g.op('Sub', [g.op('Cast', [x], { to: DOUBLE }), lseCol])]), axis1], { keepdims: 0 });
  const zero = g.op('Cast', [g.constFloat32([0])], { to: DOUBLE });
  const rest = g.op('Max', [g.op('Sub', [g.op('Cast', [g.constFloat32([1])], { to: DOUBLE }), mass(cand16)]), zero]);
  const lse = g.op('Add', [lse16, g.op('Log', [g.op('Add', [rest, mass(exact)])])], undefined, 'CorrectedLse');
  return { values, ids, lse };
}

export const GATHER = {
  inputs: { normed: 'normed', lse: 'lse', columns: 'columns', bias: 'bias' },
  outputs: { logProbs: 'logprobs' },
} as const;

/**
 * Log-probabilities of chosen ids from kept normed states and log-sum-exps: [N, M], M ≪ V.
 * The M unembedding rows arrive as a float32 input (read from the checkpoint by the runtime), so this
 * session holds no copy of the [V, D] matrix and computes in float32 whatever the compute type.
 */
export function buildGatherGraph(plan: ModelPlan): Uint8Array {
  const g = new GraphBuilder('lens_gather');
  const D = plan.hiddenSize;
  const normed = g.input(GATHER.inputs.normed, 'float', ['rows', D]);
  const lse = g.input(GATHER.inputs.lse, 'double', ['rows']);
  const columns = g.input(GATHER.inputs.columns, 'float', ['ids', D]);
  const bias = plan.unembed.bias ? g.input(GATHER.inputs.bias, 'float', ['ids']) : undefined;
  const logits = softcap(g, g.op('Gemm', bias ? [normed, columns, bias] : [normed, columns], { transB: 1 }, 'Unembed'), plan);
  const logp = g.op('Sub', [g.op('Cast', [logits], { to: DOUBLE }), g.op('Unsqueeze', [lse, g.constInt64([1])])]);
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
  const g = new GraphBuilder('lens_stats', w.compute);
  const ctx = { g, w };
  const D = plan.hiddenSize;
  const normed = g.input(STATS.inputs.normed, 'float', ['rows', D]);
  const finalNormed = g.input(STATS.inputs.finalNormed, 'float', ['rows', D]);
  const target = g.input(STATS.inputs.target, 'int64', ['rows']);
  const axis1 = g.constInt64([1]);
  const uw = unembedWeights(ctx, plan);
  const logits = unembed(ctx, normed, plan, uw);
  // Shifted logits y = z − max and e = exp(y) in float32; every sum over V in float64 (see logSumExp).
  const sum64 = (x: string) => g.op('ReduceSum', [g.op('Cast', [x], { to: DOUBLE }), axis1], { keepdims: 0 });
  const shifted = (z: string) => {
    const y = g.op('Sub', [z, g.op('ReduceMax', [z, axis1], { keepdims: 1 })]);
    const e = g.op('Exp', [y]);
    return { y, e, logS: g.op('Log', [sum64(e)]), S: sum64(e) };
  };
  const p = g.scoped('layer', () => shifted(logits));
  const q = g.scoped('final', () => shifted(unembed(ctx, finalNormed, plan, uw)));
  // H(p) = log S − Σ e·y / S
  const entropy = g.op('Sub', [p.logS, g.op('Div', [sum64(g.op('Mul', [p.e, p.y])), p.S])], undefined, 'Entropy');
  // KL(q ‖ p) = Σ e_q·(y_q − y_p) / S_q − log S_q + log S_p
  const cross = g.op('Div', [sum64(g.op('Mul', [q.e, g.op('Sub', [q.y, p.y])])), q.S]);
  const kl = g.op('Add', [g.op('Sub', [cross, q.logS]), p.logS], undefined, 'KL');
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
  const g = new GraphBuilder('naive_head', w.compute);
  const ctx = { g, w };
  const h = g.input(NAIVE.inputs.hidden, 'float', ['rows', plan.hiddenSize]);
  const normed = g.scoped('final_norm', () => norm(ctx, g.toCompute(h), plan.finalNorm, plan.hiddenSize));
  g.output(unembed(ctx, g.toFloat32(normed), plan), NAIVE.outputs.logits, 'float', ['rows', plan.vocabSize]);
  return g.toBytes();
}

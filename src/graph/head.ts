import type { ModelPlan } from '../architectures/spec.js';
import { GraphBuilder } from './onnx-builder.js';
import { type Ctx, matMulT, norm } from './layers.js';
import { applyTranslators, type TranslatorStack } from './translator.js';
import type { WeightBinder } from './weights.js';

interface UnembedWeights {
  /** W [V, D] in row (vocabulary) chunks: one unless 16-bit weights are widened per call or folded in pieces. */
  chunks: Array<{ value: string; from: number; rows: number }>;
  b?: string;
}

/**
 * The unembedding widened per call goes in chunks of 8 × CHUNK_BYTES (64 MiB of float32): the head
 * graph reduces every chunk and merges it into a running state (chunkedUnembed), ~35 nodes per chunk,
 * so 64 chunks of 16 MiB made session creation 0.2 → 4.9 s on the 1B shape; one 64 MiB chunk is
 * alive at a time, in the head session only.
 */
export const HEAD_CHUNK_SCALE = 8;

/** W [V, D] (torch Linear or tied embedding) and the optional bias, bound once per graph. */
function unembedWeights({ g, w }: Ctx, plan: ModelPlan, float32Rows = 0): UnembedWeights {
  const chunks = w.bindRowChunks(g, plan.unembed.weight, [plan.vocabSize, plan.hiddenSize], { float32Rows, scale: HEAD_CHUNK_SCALE });
  return { chunks, b: plan.unembed.bias ? w.bind(g, plan.unembed.bias, [plan.vocabSize]) : undefined };
}

function softcap(g: GraphBuilder, logits: string, plan: ModelPlan): string {
  const cap = plan.unembed.softcap;
  if (cap === undefined) return logits;
  const c = g.constFloat32([cap]);
  return g.op('Mul', [g.op('Tanh', [g.op('Div', [logits, c])]), c], undefined, 'FinalSoftcap');
}

/** logits = softcap(normed · Wᵀ + b) over all V columns, float32 out; Gemm(transB) reads W in place. */
export function unembed(ctx: Ctx, normed: string, plan: ModelPlan, uw: UnembedWeights = unembedWeights(ctx, plan)): string {
  const { g } = ctx;
  const { chunks, b } = uw;
  if (chunks.length > 1) {
    const logits = g.op('Concat', chunks.map((c) => matMulT(g, normed, c.value)), { axis: -1 }, 'Unembed');
    return softcap(g, b ? g.op('Add', [logits, b], undefined, 'UnembedBias') : logits, plan);
  }
  const W = chunks[0].value;
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

export const UNEMBED = {
  inputs: {
    /** Lens head: residual rows [N, D] and k. */
    hidden: 'hidden',
    k: 'k',
    /** Stats: normed rows of a layer and of the final layer [S, D], the final top-1 ids [S]. */
    statsNormed: 'stats_normed',
    statsFinal: 'stats_final_normed',
    statsTarget: 'stats_target',
    /** Naive baseline: residual rows [R, D] whose full logits go back to JS. */
    naiveHidden: 'naive_hidden',
  },
  outputs: {
    topLogProbs: 'top_logprobs',
    topIds: 'top_ids',
    lse: 'lse',
    normed: 'normed',
    entropy: 'entropy',
    kl: 'kl_to_final',
    rank: 'target_rank',
    naiveLogits: 'naive_logits',
  },
} as const;

/**
 * Everything that multiplies by the [V, D] unembedding, in one graph, so one session holds one copy
 * of it (or, with 16-bit weights widened per call, maps it once). A caller feeds zero rows to the
 * parts it does not need (one for the lens head: runtime/unembed.ts); all rows go through one
 * unembedding MatMul and are split back. `float32Rows`: that many vocabulary rows of a 16-bit
 * unembedding go behind Casts that the session folds into a float32 copy it keeps (all V: the whole
 * head); the rest is widened chunk by chunk per call (WeightBinder.bindRowChunks).
 *
 *   hidden ─ final norm ─┐                       ┌─ lens head: lse, TopK(k) (float16: rescored), normed
 *   naive_hidden ─ norm ─┼─ Concat ─ unembed ─ Split ─ naive_logits [R, V]
 *   stats_normed ────────┤                       ├─ stats: entropy, KL(final ‖ layer), rank of target
 *   stats_final_normed ──┘                       ┘
 */
export function buildUnembedGraph(plan: ModelPlan, w: WeightBinder, translators: TranslatorStack[] = [], opts: { float32Rows?: number } = {}): Uint8Array {
  const g = new GraphBuilder('unembed', w.compute);
  const ctx = { g, w };
  const D = plan.hiddenSize;
  const I = UNEMBED.inputs;
  const O = UNEMBED.outputs;
  let h = g.input(I.hidden, 'float', ['rows', D]);
  // Tuned / Jacobian lenses: lens-head rows are translated (float32) before the final norm (translator.ts);
  // the stats rows come from this head's normed output, the naive rows stay untranslated.
  if (translators.length) h = applyTranslators(g, h, translators, D);
  const k = g.input(I.k, 'int64', [1]);
  const sNormed = g.input(I.statsNormed, 'float', ['stats_rows', D]);
  const sFinal = g.input(I.statsFinal, 'float', ['stats_rows', D]);
  const target = g.input(I.statsTarget, 'int64', ['stats_rows']);
  const nHidden = g.input(I.naiveHidden, 'float', ['naive_rows', D]);
  const finalNorm = (x: string) => g.toFloat32(g.scoped('final_norm', () => norm(ctx, g.toCompute(x), plan.finalNorm, D)));
  const normed32 = finalNorm(h);
  const naiveNormed = finalNorm(nHidden);
  const uw = unembedWeights(ctx, plan, opts.float32Rows);
  const rowsOf = (x: string) => g.op('Slice', [g.op('Shape', [x]), g.constInt64([0]), g.constInt64([1])]);
  if (uw.chunks.length > 1 && g.compute === 'float') {
    const otherSizes = g.op('Concat', [rowsOf(nHidden), rowsOf(sNormed), rowsOf(sFinal)], { axis: 0 }, 'OtherRowCounts');
    const other = g.op('Concat', [naiveNormed, sNormed, sFinal], { axis: 0 }, 'OtherRows');
    const chunked = chunkedUnembed(ctx, plan, uw, normed32, other, k);
    const [naiveLogits, pLogits, qLogits] = g.node('Split', [chunked.otherLogits, otherSizes], { attrs: { axis: 0 }, outputs: 3 });
    g.output(normed32, O.normed, 'float', ['rows', D]);
    g.output(naiveLogits, O.naiveLogits, 'float', ['naive_rows', plan.vocabSize]);
    g.scoped('stats', () => statsOf(g, pLogits, qLogits, target));
    // Declared last on purpose: ORT (default execution order) runs the graph as a depth-first walk from
    // its last output node back, so the chunk-by-chunk head chain runs first (see chunkedUnembed).
    g.output(chunked.logp, O.topLogProbs, 'double', ['rows', 'k']);
    g.output(chunked.ids, O.topIds, 'int64', ['rows', 'k']);
    g.output(chunked.lse, O.lse, 'double', ['rows']);
    return g.toBytes();
  }
  const sizes = g.op('Concat', [rowsOf(h), rowsOf(nHidden), rowsOf(sNormed), rowsOf(sFinal)], { axis: 0 }, 'RowCounts');
  const all = g.op('Concat', [normed32, naiveNormed, sNormed, sFinal], { axis: 0 }, 'AllRows');
  const [logits, naiveLogits, pLogits, qLogits] = g.node('Split', [unembed(ctx, all, plan, uw), sizes], { attrs: { axis: 0 }, outputs: 4 });

  g.scoped('head', () => {
    let lse = g.scoped('lse', () => logSumExp(g, logits));
    let values: string;
    let ids: string;
    if (g.compute === 'float') {
      [values, ids] = g.node('TopK', [logits, k], { attrs: { axis: -1, largest: 1, sorted: 1 }, outputs: 2 });
    } else {
      ({ values, ids, lse } = g.scoped('rescore', () => rescore(ctx, plan, uw, normed32, logits, lse, k)));
    }
    const logp = g.op('Sub', [g.op('Cast', [values], { to: DOUBLE }), g.op('Unsqueeze', [lse, g.constInt64([1])])], undefined, 'TopLogProbs');
    g.output(logp, O.topLogProbs, 'double', ['rows', 'k']);
    g.output(ids, O.topIds, 'int64', ['rows', 'k']);
    g.output(lse, O.lse, 'double', ['rows']);
  });
  // Exact in float32, so the gather graph and later stats calls cast it back to the same compute-type values.
  g.output(normed32, O.normed, 'float', ['rows', D]);
  g.output(naiveLogits, O.naiveLogits, 'float', ['naive_rows', plan.vocabSize]);
  g.scoped('stats', () => statsOf(g, pLogits, qLogits, target));
  return g.toBytes();
}

/**
 * The unembedding read in vocabulary chunks (a 16-bit [V, D] widened per call, or its float32 copy folded
 * in pieces) without ever forming the lens head's [N, V] logits: each chunk's logits [N, Vc] are reduced
 * at once to their max, Σ exp(z − max) in float64 and their top-k, and merged into the running state of
 * the chunks before (max, sum rescaled in float64, top-k of the union). The sums are over the same
 * float32 terms as logSumExp's, so the result is as exact; ties still go to the lower id (earlier
 * chunks come first in every merge). Stats and naive rows (`other`), which need whole rows, share each
 * chunk's MatMul and are joined along V.
 *
 *   head ‖ other ─ MatMul(W_c) ─ Split ─ head [N, Vc]: max, Σexp, top-k ─ merge ─ state_c [N, 2 + 2k]
 *                                     └─ other [R, Vc] ─ Concat over c ─ [R, V]
 *
 * The state is packed into one float64 tensor (max, sum, top values, top ids) so that every consumer
 * of chunk c's logits is inside state_c's subgraph; chunk c's own nodes are emitted before the merge
 * that reads state_{c-1}. ORT's default order is a depth-first walk that takes a node's
 * highest-index input first, so it finishes state_{c-1} before starting chunk c: one widened chunk
 * and one [N, Vc] block are alive at a time, not [N, V] (measured in docs/engineering-notes.md).
 */
function chunkedUnembed(
  ctx: Ctx,
  plan: ModelPlan,
  uw: UnembedWeights,
  head: string,
  other: string,
  k: string,
): { logp: string; ids: string; lse: string; otherLogits: string } {
  const { g } = ctx;
  const axis1 = g.constInt64([1]);
  const rowsOf = (x: string) => g.op('Slice', [g.op('Shape', [x]), g.constInt64([0]), g.constInt64([1])]);
  const split = g.op('Concat', [rowsOf(head), rowsOf(other)], { axis: 0 }, 'HeadOtherRows');
  const all = g.op('Concat', [head, other], { axis: 0 }, 'HeadOtherConcat');
  const toDouble = (x: string) => g.op('Cast', [x], { to: DOUBLE });
  const cols = (x: string, from: string, to: string) => g.op('Slice', [x, from, to, axis1]);
  const plus = (x: string, n: number) => g.op('Add', [x, g.constInt64([n])]);
  /** Columns of a packed state holding kk entries: [max | sum | kk values | kk ids]. */
  const unpack = (state: string, kk: string) => ({
    m: cols(state, g.constInt64([0]), g.constInt64([1])),
    s: cols(state, g.constInt64([1]), g.constInt64([2])),
    v: cols(state, g.constInt64([2]), plus(kk, 2)),
    id: cols(state, plus(kk, 2), g.op('Add', [g.op('Add', [kk, kk]), g.constInt64([2])])),
  });
  const others: string[] = [];
  let state = '';
  for (const c of uw.chunks) {
    const chunk = g.scoped(`chunk_${c.from}`, () => {
      let z = matMulT(g, all, c.value);
      if (uw.b) z = g.op('Add', [z, g.op('Slice', [uw.b, g.constInt64([c.from]), g.constInt64([c.from + c.rows]), g.constInt64([0])])]);
      z = softcap(g, z, plan);
      const [zh, zo] = g.node('Split', [z, split], { attrs: { axis: 0 }, outputs: 2 });
      others.push(zo);
      const m32 = g.op('ReduceMax', [zh, axis1], { keepdims: 1 });
      const s = g.op('ReduceSum', [toDouble(g.op('Exp', [g.op('Sub', [zh, m32])])), axis1], { keepdims: 1 });
      const kc = g.op('Min', [k, g.constInt64([c.rows])]);
      const [v, at] = g.node('TopK', [zh, kc], { attrs: { axis: -1, largest: 1, sorted: 1 }, outputs: 2 });
      return { m: toDouble(m32), s, v: toDouble(v), id: toDouble(c.from ? g.op('Add', [at, g.constInt64([c.from])]) : at) };
    });
    if (!state) {
      state = g.op('Concat', [chunk.m, chunk.s, chunk.v, chunk.id], { axis: 1 }, 'State');
      continue;
    }
    state = g.scoped(`merge_${c.from}`, () => {
      const prev = unpack(state, g.op('Min', [k, g.constInt64([c.from])]));
      const m = g.op('Max', [prev.m, chunk.m]);
      const rescale = (x: string, mx: string) => g.op('Mul', [x, g.op('Exp', [g.op('Sub', [mx, m])])]);
      const s = g.op('Add', [rescale(prev.s, prev.m), rescale(chunk.s, chunk.m)]);
      const kk = g.op('Min', [k, g.constInt64([c.from + c.rows])]);
      const [v, at] = g.node('TopK', [g.op('Concat', [prev.v, chunk.v], { axis: 1 }), kk], { attrs: { axis: -1, largest: 1, sorted: 1 }, outputs: 2 });
      const id = g.op('GatherElements', [g.op('Concat', [prev.id, chunk.id], { axis: 1 }), at], { axis: 1 });
      return g.op('Concat', [m, s, v, id], { axis: 1 }, 'State');
    });
  }
  const last = uw.chunks[uw.chunks.length - 1];
  const fin = unpack(state, g.op('Min', [k, g.constInt64([last.from + last.rows])]));
  const lseCol = g.op('Add', [fin.m, g.op('Log', [fin.s])]);
  return {
    logp: g.op('Sub', [fin.v, lseCol], undefined, 'TopLogProbs'),
    ids: g.op('Cast', [fin.id], { to: 7 }),
    lse: g.op('Squeeze', [lseCol, axis1]),
    otherLogits: g.op('Concat', others, { axis: -1 }, 'OtherLogits'),
  };
}

/**
 * Per row: entropy of the lens distribution, KL(p_final ‖ p_layer), and how many tokens outrank
 * `target` (the final layer's top-1). Needs the full distributions, so it stays in ORT too.
 */
function statsOf(g: GraphBuilder, logits: string, finalLogits: string, target: string): void {
  const axis1 = g.constInt64([1]);
  // Shifted logits y = z − max and e = exp(y) in float32; every sum over V in float64 (see logSumExp).
  const sum64 = (x: string) => g.op('ReduceSum', [g.op('Cast', [x], { to: DOUBLE }), axis1], { keepdims: 0 });
  const shifted = (z: string) => {
    const y = g.op('Sub', [z, g.op('ReduceMax', [z, axis1], { keepdims: 1 })]);
    const e = g.op('Exp', [y]);
    return { y, e, logS: g.op('Log', [sum64(e)]), S: sum64(e) };
  };
  const p = g.scoped('layer', () => shifted(logits));
  const q = g.scoped('final', () => shifted(finalLogits));
  // H(p) = log S − Σ e·y / S
  const entropy = g.op('Sub', [p.logS, g.op('Div', [sum64(g.op('Mul', [p.e, p.y])), p.S])], undefined, 'Entropy');
  // KL(q ‖ p) = Σ e_q·(y_q − y_p) / S_q − log S_q + log S_p
  const cross = g.op('Div', [sum64(g.op('Mul', [q.e, g.op('Sub', [q.y, p.y])])), q.S]);
  const kl = g.op('Add', [g.op('Sub', [cross, q.logS]), p.logS], undefined, 'KL');
  const targetLogit = g.op('GatherElements', [logits, g.op('Unsqueeze', [target, axis1])], { axis: 1 });
  const above = g.op('Cast', [g.op('Greater', [logits, targetLogit])], { to: 7 });
  const rank = g.op('ReduceSum', [above, axis1], { keepdims: 0 });
  g.output(entropy, UNEMBED.outputs.entropy, 'double', ['stats_rows']);
  g.output(kl, UNEMBED.outputs.kl, 'double', ['stats_rows']);
  g.output(rank, UNEMBED.outputs.rank, 'int64', ['stats_rows']);
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
  const rows = g.toFloat32(g.op('Gather', [uw.chunks[0].value, cand], { axis: 0 }, 'GatherRows'));
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


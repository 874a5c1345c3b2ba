import type { AttentionSpec, BlockSpec, MlpSpec } from '../architectures/spec.js';
import { GraphBuilder } from './onnx-builder.js';
import { activate, type Ctx, linear, norm, rotary } from './layers.js';
import type { WeightBinder } from './weights.js';

export const BLOCK_INPUTS = {
  hidden: 'hidden',
  bias: 'attn_bias',
  cos: 'cos',
  sin: 'sin',
  pastKey: 'past_key',
  pastValue: 'past_value',
} as const;
export const BLOCK_OUTPUTS = {
  hidden: 'hidden_out',
  attnResidual: 'attn_residual',
  presentKey: 'present_key',
  presentValue: 'present_value',
} as const;

/**
 * One transformer block as an ONNX graph, with a KV cache so generation feeds only new positions.
 * Inputs:  hidden [B,T,D] (the T new positions); past_key / past_value [B,KV,1,P,hd] (keys after
 *          norm and rotary, float32; P = 0 for a plain lens pass); attn_bias [B,1,T,P+T]
 *          (0 / −1e9: causal, padding, window, over past and new keys); cos/sin [B,T,R/2] for the
 *          new positions' absolute indices, with rotary.
 * Outputs: hidden_out [B,T,D]; attn_residual [B,T,D] = residual stream right after the attention
 *          branch; present_key / present_value [B,KV,1,P+T,hd] = past ‖ new, the next step's past.
 */
export function buildBlockGraph(block: BlockSpec, layer: number, hiddenSize: number, w: WeightBinder): Uint8Array {
  const g = new GraphBuilder(`block_${layer}`, w.compute);
  const ctx: Ctx = { g, w };
  const D = hiddenSize;
  const h = g.input(BLOCK_INPUTS.hidden, 'float', ['batch', 'seq', D]);
  const bias = g.input(BLOCK_INPUTS.bias, 'float', ['batch', 1, 'seq', 'total']);
  const rot = block.attn.rotary;
  const cos = rot ? g.input(BLOCK_INPUTS.cos, 'float', ['batch', 'seq', rot.dims / 2]) : '';
  const sin = rot ? g.input(BLOCK_INPUTS.sin, 'float', ['batch', 'seq', rot.dims / 2]) : '';
  const { numKvHeads: KV, headDim: hd } = block.attn;
  const past = {
    key: g.input(BLOCK_INPUTS.pastKey, 'float', ['batch', KV, 1, 'past', hd]),
    value: g.input(BLOCK_INPUTS.pastValue, 'float', ['batch', KV, 1, 'past', hd]),
  };

  g.scoped(`layers.${layer}`, () => {
    // The residual stream and its adds stay float32; the branches run in the compute type
    // (toCompute/toFloat32 add no node in float32 graphs).
    const hc = g.toCompute(h);
    const n1 = g.scoped('ln_1', () => norm(ctx, hc, block.ln1, D));
    // −1e9 overflows float16 to −inf, and a fully masked row (padding under a sliding window)
    // would then softmax to NaN; −3e4 + any score stays finite and still exp()s to 0.
    const maskC = g.compute === 'float' ? bias : g.toCompute(g.op('Max', [bias, g.constFloat32([-3e4])]));
    const [cosC, sinC] = rot ? [g.toCompute(cos), g.toCompute(sin)] : [cos, sin];
    const pastC = { key: g.toCompute(past.key), value: g.toCompute(past.value) };
    let a = g.scoped('attn', () => {
      const r = attention(ctx, n1, maskC, cosC, sinC, block.attn, D, pastC);
      g.output(g.toFloat32(r.present.key), BLOCK_OUTPUTS.presentKey, 'float', ['batch', KV, 1, 'total', hd]);
      g.output(g.toFloat32(r.present.value), BLOCK_OUTPUTS.presentValue, 'float', ['batch', KV, 1, 'total', hd]);
      return r.out;
    });
    if (block.postAttnNorm) a = g.scoped('post_attn_norm', () => norm(ctx, a, block.postAttnNorm!, D));
    const afterAttn = g.op('Add', [h, g.toFloat32(a)], undefined, 'AttnResidual');
    let out: string;
    if (block.residual === 'sequential') {
      const n2 = g.scoped('ln_2', () => norm(ctx, g.toCompute(afterAttn), block.ln2!, D));
      let m = g.scoped('mlp', () => mlp(ctx, n2, block.mlp, D));
      if (block.postMlpNorm) m = g.scoped('post_mlp_norm', () => norm(ctx, m, block.postMlpNorm!, D));
      out = g.op('Add', [afterAttn, g.toFloat32(m)], undefined, 'MlpResidual');
    } else {
      // Parallel: both branches read the block input; "after attention" is h + attn branch alone.
      const n2 = block.ln2 ? g.scoped('ln_2', () => norm(ctx, hc, block.ln2!, D)) : n1;
      const m = g.scoped('mlp', () => mlp(ctx, n2, block.mlp, D));
      out = g.op('Add', [afterAttn, g.toFloat32(m)], undefined, 'MlpResidual');
    }
    g.output(out, BLOCK_OUTPUTS.hidden, 'float', ['batch', 'seq', D]);
    g.output(afterAttn, BLOCK_OUTPUTS.attnResidual, 'float', ['batch', 'seq', D]);
  });
  return g.toBytes();
}

interface Kv {
  key: string;
  value: string;
}

/**
 * Grouped-query attention without copying K/V per query head: queries are viewed as
 * [B, KV, rep, T, hd] and keys/values as [B, KV, 1, P+T, hd] so MatMul broadcasts over rep.
 *
 *   x ─ q/k/v proj ─ (clip) ─ heads ─ (q/k norm) ─ rope ─ k, v: past ‖ new ─ q·kᵀ·scale ─ (softcap) ─ + bias ─ softmax ─ ·v ─ o proj
 */
function attention(
  ctx: Ctx,
  x: string,
  bias: string,
  cos: string,
  sin: string,
  a: AttentionSpec,
  D: number,
  past: Kv,
): { out: string; present: Kv } {
  const { g } = ctx;
  const H = a.numHeads;
  const KV = a.numKvHeads;
  const hd = a.headDim;
  const rep = H / KV;
  let q: string;
  let k: string;
  let v: string;
  const spec = a.qkv;
  if (spec.kind === 'separate') {
    q = g.scoped('q_proj', () => linear(ctx, x, spec.q, D, H * hd));
    k = g.scoped('k_proj', () => linear(ctx, x, spec.k, D, KV * hd));
    v = g.scoped('v_proj', () => linear(ctx, x, spec.v, D, KV * hd));
  } else if (spec.kind === 'fused') {
    const qkv = g.scoped('qkv_proj', () => linear(ctx, x, spec.qkv, D, (H + 2 * KV) * hd));
    [q, k, v] = g.node('Split', [qkv, g.constInt64([H * hd, KV * hd, KV * hd])], { attrs: { axis: -1 }, outputs: 3 });
  } else {
    // GPT-NeoX lays the fused output out per head: [H, 3, hd].
    const qkv = g.scoped('qkv_proj', () => linear(ctx, x, spec.qkv, D, 3 * H * hd));
    const perHead = g.op('Reshape', [qkv, g.constInt64([0, 0, H, 3 * hd])]);
    const parts = g.node('Split', [perHead, g.constInt64([hd, hd, hd])], { attrs: { axis: -1 }, outputs: 3 });
    [q, k, v] = parts.map((p) => g.op('Reshape', [p, g.constInt64([0, 0, H * hd])]));
  }
  if (a.clipQkv !== undefined) {
    const lo = g.constFloat([-a.clipQkv]);
    const hi = g.constFloat([a.clipQkv]);
    [q, k, v] = [q, k, v].map((t) => g.op('Clip', [t, lo, hi]));
  }
  let q4 = g.op('Reshape', [q, g.constInt64([0, 0, H, hd])]);
  let k4 = g.op('Reshape', [k, g.constInt64([0, 0, KV, hd])]);
  if (a.qNorm) q4 = g.scoped('q_norm', () => norm(ctx, q4, a.qNorm!, hd));
  if (a.kNorm) k4 = g.scoped('k_norm', () => norm(ctx, k4, a.kNorm!, hd));
  // [B,T,KV,rep,hd] → [B,KV,rep,T,hd]
  let q5 = g.op('Transpose', [g.op('Reshape', [q4, g.constInt64([0, 0, KV, rep, hd])])], { perm: [0, 2, 3, 1, 4] });
  let k5 = g.op('Transpose', [g.op('Reshape', [k4, g.constInt64([0, 0, KV, 1, hd])])], { perm: [0, 2, 3, 1, 4] });
  let v5 = g.op('Transpose', [g.op('Reshape', [v, g.constInt64([0, 0, KV, 1, hd])])], { perm: [0, 2, 3, 1, 4] });
  if (a.rotary) {
    const axes = g.constInt64([1, 2]);
    const cos5 = g.op('Unsqueeze', [cos, axes]);
    const sin5 = g.op('Unsqueeze', [sin, axes]);
    q5 = g.scoped('rope_q', () => rotary(g, q5, cos5, sin5, a.rotary!, hd, 5));
    k5 = g.scoped('rope_k', () => rotary(g, k5, cos5, sin5, a.rotary!, hd, 5));
  }
  k5 = g.op('Concat', [past.key, k5], { axis: 3 }, 'PastKey');
  v5 = g.op('Concat', [past.value, v5], { axis: 3 }, 'PastValue');
  const kT = g.op('Transpose', [k5], { perm: [0, 1, 2, 4, 3] });
  let scores = g.op('MatMul', [g.op('Mul', [q5, g.constFloat([a.scale])], undefined, 'Scale'), kT], undefined, 'QK');
  if (a.softcap !== undefined) {
    const c = g.constFloat([a.softcap]);
    scores = g.op('Mul', [g.op('Tanh', [g.op('Div', [scores, c])]), c], undefined, 'Softcap');
  }
  scores = g.op('Add', [scores, g.op('Unsqueeze', [bias, g.constInt64([1])])], undefined, 'Mask');
  const probs = g.op('Softmax', [scores], { axis: -1 });
  const ctxv = g.op('MatMul', [probs, v5], undefined, 'AV');
  const merged = g.op('Reshape', [g.op('Transpose', [ctxv], { perm: [0, 3, 1, 2, 4] }), g.constInt64([0, 0, H * hd])]);
  return { out: g.scoped('o_proj', () => linear(ctx, merged, a.o, H * hd, D)), present: { key: k5, value: v5 } };
}

function mlp(ctx: Ctx, x: string, m: MlpSpec, D: number): string {
  const { g } = ctx;
  const I = m.size;
  if (m.kind === 'plain') {
    const up = g.scoped('up', () => linear(ctx, x, m.up, D, I));
    return g.scoped('down', () => linear(ctx, activate(g, up, m.act), m.down, I, D));
  }
  if (m.kind === 'gated') {
    const gate = g.scoped('gate', () => linear(ctx, x, m.gate, D, I));
    const up = g.scoped('up', () => linear(ctx, x, m.up, D, I));
    return g.scoped('down', () => linear(ctx, g.op('Mul', [activate(g, gate, m.act), up]), m.down, I, D));
  }
  if (m.kind === 'gated_fused') {
    const both = g.scoped('gate_up', () => linear(ctx, x, m.gateUp, D, 2 * I));
    const halves = g.node('Split', [both, g.constInt64([I, I])], { attrs: { axis: -1 }, outputs: 2 });
    const [gate, up] = m.order === 'up_gate' ? [halves[1], halves[0]] : halves;
    return g.scoped('down', () => linear(ctx, g.op('Mul', [activate(g, gate, m.act), up]), m.down, I, D));
  }
  return moe(ctx, x, m, D);
}

/**
 * Top-k routed experts, sparse: each expert gathers only the rows routed to it, runs its gated MLP
 * on those, and scatter-adds weight · output back. Rows are the flattened [B·T] positions
 * (padding rows are routed too, like any row, and never read).
 *
 *   x [N,D] ─ router ─ softmax ─ TopK(k) ─ w / Σw ──────────────────────────────┐
 *   for each expert e:  rows_e = NonZero(any(topi == e))                         │
 *     Gather(x, rows_e) ─ down(act(gate)·up) ─ · Gather(w_e, rows_e) ─ ScatterND(+) into out [N,D]
 */
function moe(ctx: Ctx, x: string, m: Extract<MlpSpec, { kind: 'moe' }>, D: number): string {
  const { g } = ctx;
  const I = m.size;
  const E = m.experts.length;
  const flat = g.op('Reshape', [x, g.constInt64([-1, D])]);
  // Routing and the sum over experts stay float32 in fp16 graphs: HF routes in float32, and the CPU
  // EP has no float16 ScatterND with reduction.
  const logits = g.toFloat32(g.scoped('router', () => linear(ctx, flat, m.router, D, E, true)));
  const probs = g.op('Softmax', [logits], { axis: -1 });
  const [topv, topi] = g.node('TopK', [probs, g.constInt64([m.topK])], { attrs: { axis: -1, largest: 1, sorted: 1 }, outputs: 2 });
  const weights = g.op('Div', [topv, g.op('ReduceSum', [topv, g.constInt64([-1])], { keepdims: 1 })], undefined, 'Renormalise');
  const zero = g.constFloat32([0]);
  let out = g.op('Expand', [zero, g.op('Shape', [flat])], undefined, 'Zeros');
  const axis1 = g.constInt64([1]);
  m.experts.forEach((ex, e) => {
    g.scoped(`experts.${e}`, () => {
      const hit = g.op('Equal', [topi, g.constInt64([e], true)]);
      // Weight of expert e per row (0 where it was not chosen), and the rows that chose it.
      const we = g.op('ReduceSum', [g.op('Where', [hit, weights, zero]), axis1], { keepdims: 0 });
      const chosen = g.op('ReduceMax', [g.op('Cast', [hit], { to: 1 }), axis1], { keepdims: 0 });
      const rows = g.op('Reshape', [g.op('NonZero', [chosen]), g.constInt64([-1])], undefined, 'Rows');
      const xe = g.op('Gather', [flat, rows], { axis: 0 });
      const gate = g.scoped('gate', () => linear(ctx, xe, ex.gate, D, I));
      const up = g.scoped('up', () => linear(ctx, xe, ex.up, D, I));
      const y = g.scoped('down', () => linear(ctx, g.op('Mul', [activate(g, gate, m.act), up]), ex.down, I, D));
      const scaled = g.op('Mul', [g.toFloat32(y), g.op('Unsqueeze', [g.op('Gather', [we, rows], { axis: 0 }), axis1])]);
      out = g.op('ScatterND', [out, g.op('Unsqueeze', [rows, axis1]), scaled], { reduction: 'add' });
    });
  });
  return g.toCompute(g.op('Reshape', [out, g.op('Shape', [x])]));
}

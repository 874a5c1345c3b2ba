// Building blocks shared by the block and head graphs. Each returns the value name it produced.
import type { Activation, Linear, NormSpec, RotarySpec } from '../architectures/spec.js';
import { quantizedShape } from '../checkpoint/quantize.js';
import type { GraphBuilder } from './onnx-builder.js';
import type { WeightBinder } from './weights.js';

export interface Ctx {
  g: GraphBuilder;
  w: WeightBinder;
}

export function norm({ g, w }: Ctx, x: string, spec: NormSpec, dim: number): string {
  const axis = -1;
  const epsilon = { float: spec.eps };
  // The default, spelled out: mean/variance in float32 even when x is float16.
  const stash_type = 1;
  if (spec.kind === 'layernorm_noparam') {
    const ones = g.constFloat(Array(dim).fill(1), [dim]);
    const zeros = g.constFloat(Array(dim).fill(0), [dim]);
    return g.op('LayerNormalization', [x, ones, zeros], { axis, epsilon, stash_type });
  }
  let scale = w.bind(g, spec.weight!, [dim]);
  if (spec.offset) scale = g.op('Add', [scale, g.constFloat([spec.offset])], undefined, 'NormOffset');
  if (spec.kind === 'layernorm') {
    const inputs = spec.bias ? [x, scale, w.bind(g, spec.bias, [dim])] : [x, scale];
    return g.op('LayerNormalization', inputs, { axis, epsilon, stash_type });
  }
  // RMSNorm: x / sqrt(mean(x²) + eps) · scale (ORT's SimplifiedLayerNormalization, fp32 statistics).
  return g.op('SimplifiedLayerNormalization', [x, scale], { axis, epsilon, stash_type });
}

/**
 * MatMulNBits' accuracy level 4: activations are quantized to int8 per block inside the kernel
 * (MLAS's integer path). Measured on [20, 4096]·[4096, 14336] (2-core EPYC, AVX2): int4 59 ms at
 * level 4 vs 161 ms at level 0 (float32 compute), int8 131 ms vs 2.3 s (level 0 has no int8 kernel
 * and dequantizes the whole matrix per call); the extra error stayed within the weight quantization's
 * (max |Δy| 6.5e-2 vs 6.4e-2 for int4, 5.3e-3 vs 3.5e-3 for int8, |y| ≤ 1).
 */
const NBITS_ACCURACY = 4;

/**
 * y = x·W (+ b) for Conv1D [in, out] or torch Linear [out, in] weights, without copying W; with a
 * quantized model (w.quantized), block weights go through MatMulNBits instead. `exact` keeps a weight
 * unquantized (e.g. an MoE router, whose small errors would flip which experts run).
 */
export function linear({ g, w }: Ctx, x: string, lin: Linear, inDim: number, outDim: number, exact = false): string {
  const inOut = lin.layout === 'in_out';
  const qw = exact ? null : w.quantizedLinear(lin.weight, inOut ? [inDim, outDim] : [outDim, inDim], inOut ? 'in_out' : 'out_in');
  if (qw) {
    const s = quantizedShape(qw.N, qw.K, qw.bits, qw.blockSize);
    const at = `q${qw.bits}:${lin.weight}`;
    const inputs = [
      x,
      g.raw(`${at}:q`, 'uint8', [qw.N, s.blocks, s.blob], qw.q),
      g.raw(`${at}:scales`, 'float', [s.scaleCount], new Uint8Array(qw.scales.buffer, qw.scales.byteOffset, qw.scales.byteLength)),
      g.raw(`${at}:zeros`, 'uint8', [s.zeroCount], qw.zeros),
    ];
    const attrs = { K: inDim, N: outDim, bits: qw.bits, block_size: qw.blockSize, accuracy_level: NBITS_ACCURACY };
    const y = g.node('MatMulNBits', inputs, { domain: 'com.microsoft', attrs })[0];
    return lin.bias ? g.op('Add', [y, w.bind(g, lin.bias, [outDim])], undefined, 'Bias') : y;
  }
  const chunks = w.bindRowChunks(g, lin.weight, inOut ? [inDim, outDim] : [outDim, inDim]);
  let y: string;
  if (inOut) {
    // Row chunks of a Conv1D [in, out] weight split the contraction: y = Σ x[…, rows] · W[rows, :].
    const part = (c: (typeof chunks)[number]) =>
      chunks.length === 1 ? g.op('MatMul', [x, c.value]) : g.op('MatMul', [sliceLast(g, x, c.from, c.from + c.rows), c.value]);
    y = chunks.length === 1 ? part(chunks[0]) : g.op('Sum', chunks.map(part), undefined, 'ChunkSum');
  } else {
    // Row chunks of a torch Linear [out, in] weight are slices of the output features.
    const parts = chunks.map((c) => matMulT(g, x, c.value));
    y = parts.length === 1 ? parts[0] : g.op('Concat', parts, { axis: -1 }, 'ChunkConcat');
  }
  return lin.bias ? g.op('Add', [y, w.bind(g, lin.bias, [outDim])], undefined, 'Bias') : y;
}

/** x · Wᵀ for a torch-layout [out, in] weight, read in place. */
export function matMulT(g: GraphBuilder, x: string, W: string): string {
  return g.node('FusedMatMul', [x, W], { domain: 'com.microsoft', attrs: { transB: 1, alpha: { float: 1 } } })[0];
}

function sliceLast(g: GraphBuilder, x: string, from: number, to: number): string {
  return g.op('Slice', [x, g.constInt64([from]), g.constInt64([to]), g.constInt64([-1])]);
}

export function activate(g: GraphBuilder, x: string, act: Activation): string {
  switch (act) {
    case 'gelu_tanh':
      return g.op('Gelu', [x], { approximate: 'tanh' });
    case 'gelu':
      return g.op('Gelu', [x]);
    case 'relu':
      return g.op('Relu', [x]);
    case 'silu':
      return g.op('Mul', [x, g.op('Sigmoid', [x])], undefined, 'SiLU');
    case 'quick_gelu':
      return g.op('Mul', [x, g.op('Sigmoid', [g.op('Mul', [x, g.constFloat([1.702])])])], undefined, 'QuickGelu');
  }
}

/**
 * Rotary position embedding on the last axis of x (head_dim); cos/sin broadcast over heads.
 *
 *   x ──┬─ [:R] ── half:        x1=[:R/2], x2=[R/2:] → (x1·cos − x2·sin) ‖ (x2·cos + x1·sin)
 *       │          interleaved: x1=[0::2], x2=[1::2] → interleave(x1·cos − x2·sin, x2·cos + x1·sin)
 *       └─ [R:] ── passed through (partial rotary), concatenated back
 */
export function rotary(g: GraphBuilder, x: string, cos: string, sin: string, spec: RotarySpec, headDim: number, rank: number): string {
  const R = spec.dims;
  const half = R / 2;
  const last = g.constInt64([-1]);
  const slice = (v: string, from: number, to: number) => g.op('Slice', [v, g.constInt64([from]), g.constInt64([to]), last]);
  const xr = R < headDim ? slice(x, 0, R) : x;
  let x1: string;
  let x2: string;
  if (spec.style === 'half') {
    x1 = slice(xr, 0, half);
    x2 = slice(xr, half, R);
  } else {
    const pairs = g.op('Reshape', [xr, g.constInt64([...Array(rank - 1).fill(0), half, 2])]);
    x1 = g.op('Gather', [pairs, g.constInt64([0], true)], { axis: -1 });
    x2 = g.op('Gather', [pairs, g.constInt64([1], true)], { axis: -1 });
  }
  const o1 = g.op('Sub', [g.op('Mul', [x1, cos]), g.op('Mul', [x2, sin])]);
  const o2 = g.op('Add', [g.op('Mul', [x2, cos]), g.op('Mul', [x1, sin])]);
  let out: string;
  if (spec.style === 'half') {
    out = g.op('Concat', [o1, o2], { axis: -1 });
  } else {
    const stacked = g.op('Concat', [g.op('Unsqueeze', [o1, last]), g.op('Unsqueeze', [o2, last])], { axis: -1 });
    out = g.op('Reshape', [stacked, g.constInt64([...Array(rank - 1).fill(0), R])]);
  }
  return R < headDim ? g.op('Concat', [out, slice(x, R, headDim)], { axis: -1 }) : out;
}

// Lens translators inside the lens head: the residual row is carried by a per-layer matrix before the
// final norm, so tuned and Jacobian lenses reduce in ORT exactly like the logit lens.
import type { TranslatorKind } from '../checkpoint/lens-files.js';
import { decodeFloats, type StDtype } from '../checkpoint/safetensors.js';
import type { TorchTensor } from '../checkpoint/torch-file.js';
import { LensError } from '../errors.js';
import type { ElemType, GraphBuilder } from './onnx-builder.js';

/**
 * One lens kind's translators, stacked. Entry 0 is the identity (the logit lens, and layers the lens
 * leaves as they are); entry i ≥ 1 maps a row h to keep·h + h·W_iᵀ + b_i:
 * tuned lens keep = 1 (h + A h + b, tuned-lens's residual form), Jacobian lens keep = 0 (J h).
 */
export interface TranslatorStack {
  kind: TranslatorKind;
  residual: boolean;
  entries: Array<{ weight: TorchTensor; bias?: TorchTensor }>;
}

/** Head input naming the stack entry one call uses (int64 [1]); fed for every kind the head has. */
export const TRANSLATOR_SUFFIX = '_translator';

export function translatorInput(kind: TranslatorKind): string {
  return `${kind.toLowerCase()}${TRANSLATOR_SUFFIX}`;
}

/** A protobuf message cannot pass 2 GiB; the stacks are embedded in the head graph. */
const MAX_EMBEDDED_BYTES = 1.8 * 2 ** 30;

/** Storage type of a stack: float16 when every matrix is float16 (published Jacobian lenses), else float32. */
function stackType(s: TranslatorStack): { elem: ElemType; width: number } {
  return s.entries.every((e) => e.weight.dtype === 'F16') ? { elem: 'float16', width: 2 } : { elem: 'float', width: 4 };
}

function asFloat32Bytes(t: TorchTensor): Uint8Array {
  if (t.dtype === 'F32') return t.bytes;
  // float64 values round to nearest-even on the way into a Float32Array, as torch's .float() does.
  const f = decodeFloats(t.bytes, t.dtype as StDtype);
  return new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
}

/** A fresh Float32Array of the bytes: a Node Buffer's slice() shares its (pooled) ArrayBuffer, so .buffer is not just these bytes. */
function floatsOf(bytes: Uint8Array): Float32Array {
  return new Float32Array(Uint8Array.prototype.slice.call(bytes).buffer);
}

export function translatorBytes(stacks: TranslatorStack[], D: number): number {
  return stacks.reduce((a, s) => a + (s.entries.length + 1) * D * D * stackType(s).width, 0);
}

/**
 *   idx ─┬─ Gather(W stack) ─ [D,D] ─┐
 *        ├─ Gather(b stack) ─ [1,D] ─┤
 *   h ───┼───────────────── Gemm(h, W, b, transB) ─ Add ─ h'
 *        └─ Gather(keep) ─ Mul(h) ──────────────────┘
 * Math in float32 whatever the compute type (one [rows, D]·[D, D] product next to the [rows, D]·[D, V] unembedding).
 */
export function applyTranslators(g: GraphBuilder, h: string, stacks: TranslatorStack[], D: number): string {
  if (translatorBytes(stacks, D) > MAX_EMBEDDED_BYTES) {
    throw new LensError('LENS_INVALID', `the lens translators take ${(translatorBytes(stacks, D) / 2 ** 30).toFixed(1)} GiB, more than one ONNX graph can embed (1.8 GiB)`);
  }
  let x = h;
  for (const s of stacks) {
    x = g.scoped(`${s.kind.toLowerCase()}_lens`, () => {
      const n = s.entries.length + 1;
      const { elem, width } = stackType(s);
      const W = new Uint8Array(n * D * D * width);
      s.entries.forEach((e, i) => W.set(elem === 'float16' ? e.weight.bytes : asFloat32Bytes(e.weight), (i + 1) * D * D * width));
      const idx = g.input(translatorInput(s.kind), 'int64', [1]);
      const axis0 = g.constInt64([0]);
      let w = g.op('Squeeze', [g.op('Gather', [g.raw(`${s.kind}:W`, elem, [n, D, D], W), idx], { axis: 0 }), axis0]);
      if (elem === 'float16') w = g.op('Cast', [w], { to: 1 });
      const gemmIn = [x, w];
      if (s.entries.some((e) => e.bias)) {
        const b = new Float32Array(n * D);
        s.entries.forEach((e, i) => e.bias && b.set(floatsOf(asFloat32Bytes(e.bias)), (i + 1) * D));
        gemmIn.push(g.op('Gather', [g.raw(`${s.kind}:b`, 'float', [n, D], new Uint8Array(b.buffer)), idx], { axis: 0 }));
      }
      const y = g.op('Gemm', gemmIn, { transB: 1 }, 'Translate');
      const keep = Float32Array.from({ length: n }, (_, i) => (i === 0 || s.residual ? 1 : 0));
      const kept = g.op('Mul', [x, g.op('Gather', [g.raw(`${s.kind}:keep`, 'float', [n], new Uint8Array(keep.buffer)), idx], { axis: 0 })]);
      return g.op('Add', [kept, y], undefined, 'Residual');
    });
  }
  return x;
}

import type { EmbeddingSpec, RotarySpec } from '../architectures/spec.js';
import { readRows } from '../checkpoint/safetensors.js';
import { roundToDtype } from '../checkpoint/dtype.js';
import type { WeightBinder } from '../graph/weights.js';

/** Large negative instead of −∞ so padded query rows never produce NaN in softmax. */
export const MASKED = -1e9;

/**
 * Token (+ learned position) embeddings for right-padded rows, read straight from the
 * safetensors file — a row gather in JS, so a tied embedding matrix is never duplicated.
 */
export class Embedder {
  private readonly tokens;
  private readonly positions;
  private readonly scale: number;

  constructor(
    spec: EmbeddingSpec,
    private readonly w: WeightBinder,
    private readonly hidden: number,
    vocab: number,
    maxPositions: number,
  ) {
    this.tokens = w.tensor(spec.tokens, [vocab, hidden]);
    this.positions = spec.positions ? w.tensor(spec.positions) : undefined;
    if (this.positions && (this.positions.shape[1] !== hidden || this.positions.shape[0] < maxPositions)) {
      w.tensor(spec.positions!, [maxPositions, hidden]); // throws the shape error
    }
    // Gemma rounds its √hidden normalizer to the checkpoint dtype before multiplying.
    this.scale = spec.scale === undefined ? 1 : roundToDtype(spec.scale, this.tokens.dtype);
  }

  /** Rows of ids at absolute positions start, start+1, … (start > 0 when a KV cache holds the rest). */
  embed(rows: number[][], T: number, start = 0): Float32Array {
    const D = this.hidden;
    const out = new Float32Array(rows.length * T * D);
    const positions = Array.from({ length: T }, (_, t) => start + t);
    const pos = this.positions ? readRows(this.positions, positions) : undefined;
    rows.forEach((ids, b) => {
      const tok = readRows(this.tokens, ids);
      for (let i = 0; i < ids.length * D; i++) {
        const v = this.scale === 1 ? tok[i] : tok[i] * this.scale;
        out[b * T * D + i] = pos ? v + pos[i] : v;
      }
    });
    return out;
  }
}

/**
 * [B,1,T,P+T] additive mask for T new positions after P cached ones: causal, right padding of the
 * new positions, optional sliding window. Query i sits at absolute position P+i and sees key j iff
 * j ≤ P+i, j is not padding, and P+i − j < window.
 */
export function attentionBias(lengths: number[], T: number, window: number | null, past = 0): Float32Array {
  const K = past + T;
  const out = new Float32Array(lengths.length * T * K).fill(MASKED);
  lengths.forEach((len, b) => {
    for (let i = 0; i < T; i++) {
      const q = past + i;
      for (let j = 0; j <= q && j < past + len; j++) {
        if (window === null || q - j < window) out[(b * T + i) * K + j] = 0;
      }
    }
  });
  return out;
}

/**
 * cos/sin [B,T,R/2] for positions start..start+T−1 of every (right-padded) row. With LongRoPE a row
 * whose sequence (start + its length) is longer than `rot.long.beyond` tokens gets the long
 * frequencies, as that sequence would alone in HF.
 */
export function rotaryTables(
  rot: RotarySpec,
  B: number,
  T: number,
  lengths?: number[],
  start = 0,
): { cos: Float32Array; sin: Float32Array } {
  const half = rot.dims / 2;
  const cos = new Float32Array(B * T * half);
  const sin = new Float32Array(B * T * half);
  for (let b = 0; b < B; b++) {
    const invFreq = rot.long && start + (lengths?.[b] ?? T) > rot.long.beyond ? rot.long.invFreq : rot.invFreq;
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < half; i++) {
        // HF computes position·inv_freq in float32; the product is rounded the same way here.
        const angle = Math.fround(Math.fround(start + t) * Math.fround(invFreq[i]));
        cos[(b * T + t) * half + i] = Math.cos(angle) * rot.attentionScaling;
        sin[(b * T + t) * half + i] = Math.sin(angle) * rot.attentionScaling;
      }
    }
  }
  return { cos, sin };
}

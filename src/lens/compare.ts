// Two lens results compared cell by cell over the full vocabulary: KL both ways, Jensen–Shannon, and
// whether the top-1 differs. Either two models that share a tokenizer, or two prompts (one model).
//
// Alignment: positions by index from the start of each sequence, up to the shorter one; layers by
// index in each side's requested layer list (equal lengths required, so models of different depth
// are compared on layers the caller pairs up explicitly).
import { LensError, type LensModel, type LensResult } from './types.js';

export interface CompareSide {
  model: LensModel;
  result: LensResult;
  /** The primary read point's normed rows per requested layer (LensOptions.onNormed). */
  normed: Float32Array[];
}

export interface LensComparison {
  /** Aligned positions: min(tokens of a, tokens of b). */
  positions: number;
  layersA: number[];
  layersB: number[];
  /** [layerIndex][position] KL(a‖b) in nats. */
  kl: number[][];
  /** [layerIndex][position] KL(b‖a). */
  klReverse: number[][];
  /** [layerIndex][position] Jensen–Shannon divergence in nats (≤ ln 2). */
  js: number[][];
  top1A: number[][];
  top1B: number[][];
  top1Differs: boolean[][];
  /** Per aligned position: both sequences hold the same token there. */
  sameToken: boolean[];
}

/** Logits per call: a [rows, V] float32 slab ≤ 32 MB (the divergence graph holds a few float64 copies). */
const COMPARE_BYTES = 32 * 2 ** 20;

/** Throws the coded error that explains why two requests cannot be compared cell by cell. */
export function checkComparable(a: LensModel, b: LensModel, layersA: number[], layersB: number[]): void {
  if (a !== b) {
    const ha = a.info.tokenizerHash;
    const hb = b.info.tokenizerHash;
    if (!ha || !hb || ha !== hb) {
      throw new LensError('TOKENIZER_MISMATCH', `models ${a.info.id} and ${b.info.id} do not share a tokenizer, so their token ids cannot be compared`);
    }
    if (a.info.vocabSize !== b.info.vocabSize) {
      throw new LensError(
        'TOKENIZER_MISMATCH',
        `models ${a.info.id} and ${b.info.id} share a tokenizer but their unembeddings differ in size (${a.info.vocabSize} vs ${b.info.vocabSize})`,
      );
    }
  }
  if (!a.logitsOf || !b.divergence) throw new LensError('BAD_USER_INPUT', 'these models cannot be compared over the full vocabulary');
  if (layersA.length !== layersB.length) {
    throw new LensError(
      'BAD_USER_INPUT',
      `layers are paired by index and a has ${layersA.length} while b has ${layersB.length}; pass layers for both (e.g. the same number of layers from each model)`,
    );
  }
}

export async function compareLens(a: CompareSide, b: CompareSide): Promise<LensComparison> {
  const layersA = a.result.layers;
  const layersB = b.result.layers;
  checkComparable(a.model, b.model, layersA, layersB);
  const n = Math.min(a.result.tokens.length, b.result.tokens.length);
  const nL = layersA.length;
  const V = a.model.info.vocabSize;
  const rows = (side: CompareSide) => {
    const D = side.model.info.hiddenSize;
    const out = new Float32Array(nL * n * D);
    side.normed.forEach((x, li) => out.set(x.subarray(0, n * D), li * n * D));
    return { out, D };
  };
  const A = rows(a);
  const B = rows(b);
  const N = nL * n;
  const kl = new Float64Array(N);
  const klReverse = new Float64Array(N);
  const js = new Float64Array(N);
  const step = Math.max(1, Math.floor(COMPARE_BYTES / (V * 4)));
  for (let r0 = 0; r0 < N; r0 += step) {
    const r1 = Math.min(N, r0 + step);
    const logitsA = await a.model.logitsOf!(A.out.subarray(r0 * A.D, r1 * A.D), r1 - r0);
    const d = await b.model.divergence!(logitsA, B.out.subarray(r0 * B.D, r1 * B.D), r1 - r0);
    kl.set(d.klAB, r0);
    klReverse.set(d.klBA, r0);
    js.set(d.js, r0);
  }
  // Rounding can leave −1e-12 for identical distributions; divergences are ≥ 0.
  const grid = (x: Float64Array) => Array.from({ length: nL }, (_, li) => Array.from({ length: n }, (_, p) => Math.max(0, x[li * n + p])));
  const top1 = (r: LensResult) => r.topIndices.map((layer) => layer.slice(0, n).map((c) => c[0]));
  const top1A = top1(a.result);
  const top1B = top1(b.result);
  return {
    positions: n,
    layersA,
    layersB,
    kl: grid(kl),
    klReverse: grid(klReverse),
    js: grid(js),
    top1A,
    top1B,
    top1Differs: top1A.map((row, li) => row.map((id, p) => id !== top1B[li][p])),
    sameToken: Array.from({ length: n }, (_, p) => a.result.tokens[p].id === b.result.tokens[p].id),
  };
}

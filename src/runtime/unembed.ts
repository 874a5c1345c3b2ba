import type { ModelPlan } from '../architectures/spec.js';
import { UNEMBED } from '../graph/head.js';
import { TRANSLATOR_SUFFIX } from '../graph/translator.js';
import { ort, type OrtSession } from './sessions.js';

export interface UnembedFeeds {
  /** Lens head rows [N, D] and k; `translators` names the tuned/Jacobian translator of the call (graph/translator.ts). */
  head?: { hidden: Float32Array; k: number; translators?: Record<string, ort.Tensor> };
  /** Stats rows: a layer's normed rows, the final layer's, [S, D] each, and the final top-1 [S]. */
  stats?: { normed: Float32Array; finalNormed: Float32Array; target: BigInt64Array };
  /** Naive baseline rows [R, D]. */
  naive?: Float32Array;
}

/**
 * onnxruntime-node runs a session synchronously on the main thread (backend.js: session.run inside
 * setImmediate), so one call blocks the event loop for as long as it computes. Each call is kept to
 * about this much work (multiply-adds of the [rows, D] × [D, V] product plus the per-logit softmax,
 * top-k and log-sum-exp passes, counted as 64 more per logit): ~10 rows of GPT-2's head, 1 row of an
 * 8B model's. Between calls the loop answers other clients (/health, other streams).
 */
export const LOOP_WORK_PER_CALL = 2 ** 26;

/**
 * Unembedding sessions that widen a 16-bit [V, D] matrix to float32 inside every call: that fixed
 * cost is as large as the product for one row, so splitting their calls into row chunks multiplied
 * it (the tied 1B shape: 20 tokens × 16 layers went from 16 calls to 320, and a streamed lens from
 * ~3 s to 113 s). They run each call whole.
 */
const widening = new WeakSet<object>();

export function markWidensPerCall(session: object): void {
  widening.add(session);
}

/** Rows of the unembedding one call may take so it stays within LOOP_WORK_PER_CALL. */
export function loopRows(plan: Pick<ModelPlan, 'hiddenSize' | 'vocabSize'>): number {
  return Math.max(1, Math.floor(LOOP_WORK_PER_CALL / (plan.vocabSize * (plan.hiddenSize + 64))));
}

type Outputs = ort.InferenceSession.OnnxValueMapType;

function rowsOf(f: UnembedFeeds, D: number): number {
  if (f.head) return f.head.hidden.length / D;
  if (f.stats) return f.stats.target.length;
  return (f.naive?.length ?? 0) / D;
}

function sliceFeeds(f: UnembedFeeds, D: number, from: number, to: number): UnembedFeeds {
  // The translator index is per call (one layer's translator for every row), so each part keeps it.
  if (f.head) return { head: { ...f.head, hidden: f.head.hidden.subarray(from * D, to * D) } };
  if (f.stats) {
    return {
      stats: {
        normed: f.stats.normed.subarray(from * D, to * D),
        finalNormed: f.stats.finalNormed.subarray(from * D, to * D),
        target: f.stats.target.subarray(from, to),
      },
    };
  }
  return { naive: f.naive!.subarray(from * D, to * D) };
}

/** Joins row chunks' outputs along the first axis (outputs of the parts not asked for are joined too, and ignored by callers). */
function concatRows(parts: Outputs[]): Outputs {
  const out: Record<string, ort.Tensor> = {};
  for (const name of Object.keys(parts[0])) {
    const tensors = parts.map((p) => p[name] as ort.Tensor);
    const first = tensors[0];
    if (first.dims.length === 0) {
      out[name] = first;
      continue;
    }
    const length = tensors.reduce((n, t) => n + t.data.length, 0);
    const Ctor = (first.data as unknown as { constructor: new (n: number) => { set(a: ArrayLike<unknown>, at: number): void } }).constructor;
    const data = new Ctor(length);
    let at = 0;
    for (const t of tensors) {
      data.set(t.data as ArrayLike<unknown>, at);
      at += t.data.length;
    }
    const rows = tensors.reduce((n, t) => n + t.dims[0], 0);
    out[name] = new ort.Tensor(first.type as 'float32', data as unknown as Float32Array, [rows, ...first.dims.slice(1)]);
  }
  return out;
}

/**
 * The shared unembedding session over any number of rows, in calls of at most loopRows(plan) rows
 * each (one part at a time: head, stats or naive) so no single call stalls the event loop.
 */
export async function runUnembed(session: OrtSession, plan: ModelPlan, f: UnembedFeeds): Promise<Outputs> {
  const D = plan.hiddenSize;
  const parts = [f.head, f.stats, f.naive].filter(Boolean).length;
  const n = rowsOf(f, D);
  // A stats row computes two [V] distributions and their divergence: about three head rows.
  const step = f.stats ? Math.max(1, Math.floor(loopRows(plan) / 3)) : loopRows(plan);
  if (parts !== 1 || n <= step || widening.has(session)) return runUnembedOnce(session, plan, f);
  const outs: Outputs[] = [];
  for (let from = 0; from < n; from += step) outs.push(await runUnembedOnce(session, plan, sliceFeeds(f, D, from, Math.min(n, from + step))));
  return concatRows(outs);
}

/**
 * One call of the shared unembedding session (graph/head.ts buildUnembedGraph). The stats and naive
 * parts not asked for get zero rows; the lens head part gets one row of zeros when it is not asked
 * for, because ORT 1.29's CPU kernels on its path die with SIGFPE on zero rows (a division by the
 * row count), and its outputs are then ignored.
 */
async function runUnembedOnce(session: OrtSession, plan: ModelPlan, f: UnembedFeeds): Promise<Outputs> {
  const D = plan.hiddenSize;
  const I = UNEMBED.inputs;
  const rows = (x: Float32Array) => new ort.Tensor('float32', x, [x.length / D, D]);
  const none = () => new ort.Tensor('float32', new Float32Array(0), [0, D]);
  // A graph built with lens translators has one index input per kind; a call that does not name
  // one (stats, naive, logit lens) takes entry 0, the identity.
  const translators: Record<string, ort.Tensor> = {};
  for (const name of session.inputNames) {
    if (!name.endsWith(TRANSLATOR_SUFFIX)) continue;
    translators[name] = f.head?.translators?.[name] ?? new ort.Tensor('int64', BigInt64Array.from([0n]), [1]);
  }
  return session.run({
    ...translators,
    [I.hidden]: rows(f.head?.hidden ?? new Float32Array(D)),
    [I.k]: new ort.Tensor('int64', BigInt64Array.from([BigInt(f.head?.k ?? 1)]), [1]),
    [I.statsNormed]: f.stats ? rows(f.stats.normed) : none(),
    [I.statsFinal]: f.stats ? rows(f.stats.finalNormed) : none(),
    [I.statsTarget]: new ort.Tensor('int64', f.stats?.target ?? new BigInt64Array(0), [f.stats?.target.length ?? 0]),
    [I.naiveHidden]: f.naive ? rows(f.naive) : none(),
  });
}

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

type Outputs = ort.InferenceSession.OnnxValueMapType;

/**
 * The shared unembedding session over any number of rows, in one call. Callers bound the rows by
 * memory (the engine's head rows, the stats' STATS_BYTES). Calls used to be split into row chunks of
 * ~2^26 multiply-adds so that ORT, then on the main thread, did not stall the event loop; ORT now
 * runs on its own thread (ort-thread.ts), and the split only cost time: more calls, and a 16-bit head
 * widened once per chunk (the tied 1B shape: 320 head calls instead of 16 for 20 tokens).
 */
export function runUnembed(session: OrtSession, plan: ModelPlan, f: UnembedFeeds): Promise<Outputs> {
  return runUnembedOnce(session, plan, f);
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

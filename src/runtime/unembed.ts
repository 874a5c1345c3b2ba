import type { ModelPlan } from '../architectures/spec.js';
import { UNEMBED } from '../graph/head.js';
import { ort } from './sessions.js';

export interface UnembedFeeds {
  /** Lens head rows [N, D] and k. */
  head?: { hidden: Float32Array; k: number };
  /** Stats rows: a layer's normed rows, the final layer's, [S, D] each, and the final top-1 [S]. */
  stats?: { normed: Float32Array; finalNormed: Float32Array; target: BigInt64Array };
  /** Naive baseline rows [R, D]. */
  naive?: Float32Array;
}

/**
 * One call of the shared unembedding session (graph/head.ts buildUnembedGraph). The parts not asked
 * for get one row of zeros, whose outputs are ignored: ORT 1.29's CPU kernels die with SIGFPE on
 * zero-row inputs (a division by the row count), and one row costs 1/V of a head call's GEMM.
 */
export async function runUnembed(session: ort.InferenceSession, plan: ModelPlan, f: UnembedFeeds): Promise<ort.InferenceSession.OnnxValueMapType> {
  const D = plan.hiddenSize;
  const I = UNEMBED.inputs;
  const rows = (x: Float32Array | undefined) => new ort.Tensor('float32', x ?? new Float32Array(D), [x ? x.length / D : 1, D]);
  const S = f.stats ? f.stats.target.length : 1;
  return session.run({
    [I.hidden]: rows(f.head?.hidden),
    [I.k]: new ort.Tensor('int64', BigInt64Array.from([BigInt(f.head?.k ?? 1)]), [1]),
    [I.statsNormed]: rows(f.stats?.normed),
    [I.statsFinal]: rows(f.stats?.finalNormed),
    [I.statsTarget]: new ort.Tensor('int64', f.stats?.target ?? new BigInt64Array(1), [S]),
    [I.naiveHidden]: rows(f.naive),
  });
}

// Graphs for comparing two lens distributions exactly, over the full vocabulary. Model A's logits
// leave ORT once per row chunk and enter model B's divergence graph as an input: two models keep
// their weights in their own sessions, and nothing is reduced to a top-k before the divergences.
import type { ModelPlan } from '../architectures/spec.js';
import { unembed } from './head.js';
import { GraphBuilder } from './onnx-builder.js';
import type { WeightBinder } from './weights.js';

const DOUBLE = 11;

export const LOGITS = { inputs: { normed: 'normed' }, outputs: { logits: 'logits' } } as const;

/** Kept normed rows [N, D] (the lens head's `normed` output) → float32 logits [N, V], soft-cap included. */
export function buildLogitsGraph(plan: ModelPlan, w: WeightBinder): Uint8Array {
  const g = new GraphBuilder('lens_logits', w.compute);
  const normed = g.input(LOGITS.inputs.normed, 'float', ['rows', plan.hiddenSize]);
  g.output(unembed({ g, w }, normed, plan), LOGITS.outputs.logits, 'float', ['rows', plan.vocabSize]);
  return g.toBytes();
}

export const DIVERGENCE = {
  inputs: { logitsA: 'logits_a', normedB: 'normed_b' },
  outputs: { klAB: 'kl_ab', klBA: 'kl_ba', js: 'js' },
} as const;

/**
 * Per row, with a = softmax(logits_a) and b = this model's lens distribution of normed_b:
 * KL(a‖b), KL(b‖a) and the Jensen–Shannon divergence ½KL(a‖m) + ½KL(b‖m), m = ½(a + b), in nats.
 *
 *   z ─ z − max(z) (float32) ─ float64 ─ − log Σ exp  = log p          (for a and b alike)
 *   KL(a‖b) = Σ pa·(la − lb);   log m = max(la, lb) + log(1 + exp(−|la − lb|)) − log 2
 *
 * Log-probabilities are float64 per element, so p·log p terms of tiny probabilities underflow to 0
 * rather than 0·(−∞); log m is a log-add-exp, finite wherever either side is.
 */
export function buildDivergenceGraph(plan: ModelPlan, w: WeightBinder): Uint8Array {
  const g = new GraphBuilder('lens_divergence', w.compute);
  const V = plan.vocabSize;
  const logitsA = g.input(DIVERGENCE.inputs.logitsA, 'float', ['rows', V]);
  const normedB = g.input(DIVERGENCE.inputs.normedB, 'float', ['rows', plan.hiddenSize]);
  const axis1 = g.constInt64([1]);
  const logProbs = (z: string) => {
    const y = g.op('Sub', [z, g.op('ReduceMax', [z, axis1], { keepdims: 1 })]);
    const logS = g.op('Log', [g.op('ReduceSum', [g.op('Cast', [g.op('Exp', [y])], { to: DOUBLE }), axis1], { keepdims: 1 })]);
    return g.op('Sub', [g.op('Cast', [y], { to: DOUBLE }), logS]);
  };
  const la = g.scoped('a', () => logProbs(logitsA));
  const lb = g.scoped('b', () => logProbs(unembed({ g, w }, normedB, plan)));
  const pa = g.op('Exp', [la]);
  const pb = g.op('Exp', [lb]);
  const d = g.op('Sub', [la, lb]);
  const sum = (x: string) => g.op('ReduceSum', [x, axis1], { keepdims: 0 });
  const klAB = sum(g.op('Mul', [pa, d]));
  const klBA = g.op('Neg', [sum(g.op('Mul', [pb, d]))]);
  const one = g.op('Cast', [g.constFloat32([1])], { to: DOUBLE });
  const half = g.op('Cast', [g.constFloat32([0.5])], { to: DOUBLE });
  const log2 = g.op('Log', [g.op('Add', [one, one])]);
  const softplus = g.op('Log', [g.op('Add', [one, g.op('Exp', [g.op('Neg', [g.op('Abs', [d])])])])]);
  const lm = g.op('Sub', [g.op('Add', [g.op('Max', [la, lb]), softplus]), log2], undefined, 'LogMixture');
  const js = g.op('Mul', [half, sum(g.op('Add', [g.op('Mul', [pa, g.op('Sub', [la, lm])]), g.op('Mul', [pb, g.op('Sub', [lb, lm])])]))], undefined, 'JS');
  g.output(klAB, DIVERGENCE.outputs.klAB, 'double', ['rows']);
  g.output(klBA, DIVERGENCE.outputs.klBA, 'double', ['rows']);
  g.output(js, DIVERGENCE.outputs.js, 'double', ['rows']);
  return g.toBytes();
}

// Checkpoint tensor names, built once from a family's LayoutPaths: the family files say which
// module is which and these helpers spell the `.weight` / `.bias` names, so no name is written twice.

import type { LayoutPaths, Linear, NormSpec, UnembedSpec } from './spec.js';

/** The transformers decoder layout most families share (Llama, Mistral, Qwen, Gemma, OLMo, Phi-3, Mixtral). */
export const DECODER_PATHS: LayoutPaths = { embed: 'model.embed_tokens', layers: 'model.layers', finalNorm: 'model.norm', unembed: 'lm_head' };

export const weightOf = (module: string): string => `${module}.weight`;

/** Prefix of block i, e.g. `model.layers.3`. */
export const blockPrefix = (paths: LayoutPaths, i: number): string => `${paths.layers}.${i}`;

export function layerNorm(module: string, eps: number): NormSpec {
  return { kind: 'layernorm', eps, weight: `${module}.weight`, bias: `${module}.bias` };
}

export function rmsNorm(module: string, eps: number, offset?: number): NormSpec {
  return offset === undefined ? { kind: 'rmsnorm', eps, weight: `${module}.weight` } : { kind: 'rmsnorm', eps, weight: `${module}.weight`, offset };
}

/** A torch Linear (`out_in`, the default) or a GPT-2 Conv1D (`in_out`). */
export function linear(module: string, bias: boolean, layout: Linear['layout'] = 'out_in'): Linear {
  return { weight: `${module}.weight`, bias: bias ? `${module}.bias` : undefined, layout };
}

/**
 * The unembedding: the family's head, or the token embedding when tied. With tied embeddings
 * transformers re-points the head at the embedding, so a head weight still stored in the file is
 * ignored (`ignored`), as it is there.
 */
export function unembedding(paths: LayoutPaths, tied: boolean, extra: Omit<UnembedSpec, 'weight' | 'ignored'> = {}): UnembedSpec {
  return tied
    ? { weight: weightOf(paths.embed), ignored: weightOf(paths.unembed), ...extra }
    : { weight: weightOf(paths.unembed), ...extra };
}

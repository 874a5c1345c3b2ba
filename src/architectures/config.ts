import { LensError } from '../errors.js';
import type { RawConfig, RotarySpec } from './spec.js';

/** First present key among `keys` (HF renames keys between families and versions). */
export function num(config: RawConfig, keys: string[], fallback?: number): number {
  for (const k of keys) {
    const v = config[k];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
  }
  if (fallback !== undefined) return fallback;
  throw new LensError('CHECKPOINT_INVALID', `config.json lacks ${keys.join(' / ')}`);
}

export function optNum(config: RawConfig, key: string): number | undefined {
  const v = config[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

export function bool(config: RawConfig, key: string, fallback: boolean): boolean {
  const v = config[key];
  return typeof v === 'boolean' ? v : fallback;
}

export function str(config: RawConfig, key: string, fallback: string): string {
  const v = config[key];
  return typeof v === 'string' ? v : fallback;
}

/**
 * RoPE settings in both spellings: transformers ≥ 5 `rope_parameters` ({rope_type, rope_theta, …})
 * and older top-level `rope_theta` + `rope_scaling` ({type | rope_type, factor, …}).
 */
export function ropeParameters(config: RawConfig, defaultTheta = 10000): { theta: number; scaling: Record<string, unknown> | null } {
  const params = (config.rope_parameters ?? null) as Record<string, unknown> | null;
  const scaling = (config.rope_scaling ?? null) as Record<string, unknown> | null;
  const merged: Record<string, unknown> = { ...(scaling ?? {}), ...(params ?? {}) };
  const theta = num(merged, ['rope_theta'], num(config, ['rope_theta', 'rotary_emb_base'], defaultTheta));
  const type = (merged.rope_type ?? merged.type ?? 'default') as string;
  return { theta, scaling: type === 'default' ? null : { ...merged, rope_type: type } };
}

/** Inverse frequencies for `dims` rotated dims, with HF's rope scaling variants applied. */
export function rotary(config: RawConfig, dims: number, style: RotarySpec['style'], defaultTheta = 10000): RotarySpec {
  const { theta, scaling } = ropeParameters(config, defaultTheta);
  const half = dims / 2;
  let invFreq: Float64Array = Float64Array.from({ length: half }, (_, i) => 1 / theta ** ((2 * i) / dims));
  let attentionScaling = 1;
  if (scaling) {
    const type = scaling.rope_type as string;
    const factor = num(scaling, ['factor'], 1);
    if (type === 'linear') {
      invFreq = invFreq.map((f) => f / factor);
    } else if (type === 'llama3') {
      invFreq = llama3Scaling(invFreq, scaling, factor);
    } else if (type === 'dynamic') {
      // Dynamic NTK only changes frequencies past max_position_embeddings, which the lens rejects.
    } else if (type === 'longrope' || type === 'su') {
      // "su" is the name the first Phi-3-128k configs used for LongRoPE.
      return longrope(config, scaling, theta, dims, style);
    } else {
      throw new LensError('CHECKPOINT_INVALID', `rope scaling type "${type}" is not supported`);
    }
  }
  return { style, dims, invFreq, attentionScaling };
}

/**
 * Rotated dims per head: head_dim × partial_rotary_factor, floored as HF's int() does. The factor
 * lives in rope_parameters (transformers ≥ 5), at the top level (Phi, Phi-3), or as GPT-NeoX's
 * `rotary_pct`.
 */
export function rotaryDims(config: RawConfig, headDim: number, defaultFactor = 1): number {
  const params = (config.rope_parameters ?? {}) as RawConfig;
  const factor = num(params, ['partial_rotary_factor'], num(config, ['partial_rotary_factor', 'rotary_pct'], defaultFactor));
  const dims = Math.floor(headDim * factor);
  if (dims % 2 !== 0 || dims <= 0) {
    throw new LensError('CHECKPOINT_INVALID', `rotary dims ${dims} (head_dim ${headDim} × ${factor}) must be a positive even number`);
  }
  return dims;
}

/**
 * LongRoPE (Phi-3 128k, Phi-3.5): per-frequency divisors `short_factor` up to the original context,
 * `long_factor` beyond it, and cos/sin scaled by an attention factor. HF derives `factor` from
 * max_position_embeddings / original_max_position_embeddings whenever the config carries the
 * original length at the top level (the published Phi-3 configs), not from scaling.factor.
 */
function longrope(config: RawConfig, s: Record<string, unknown>, theta: number, dims: number, style: RotarySpec['style']): RotarySpec {
  const maxPos = num(config, ['max_position_embeddings']);
  const topOrig = optNum(config, 'original_max_position_embeddings');
  const orig = topOrig ?? num(s, ['original_max_position_embeddings'], maxPos);
  const factor = topOrig !== undefined ? maxPos / orig : num(s, ['factor'], maxPos / orig);
  const attentionScaling = num(s, ['attention_factor'], factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(orig)));
  const divided = (key: string): Float64Array => {
    const ext = s[key];
    if (!Array.isArray(ext) || ext.length !== dims / 2) {
      throw new LensError('CHECKPOINT_INVALID', `longrope ${key} must list ${dims / 2} numbers`);
    }
    return Float64Array.from({ length: dims / 2 }, (_, i) => 1 / (Number(ext[i]) * theta ** ((2 * i) / dims)));
  };
  return { style, dims, invFreq: divided('short_factor'), attentionScaling, long: { invFreq: divided('long_factor'), beyond: orig } };
}

// Llama 3.1: long wavelengths are divided by `factor`, short ones kept, the band between blended.
function llama3Scaling(invFreq: Float64Array, s: Record<string, unknown>, factor: number): Float64Array {
  const low = num(s, ['low_freq_factor']);
  const high = num(s, ['high_freq_factor']);
  const oldCtx = num(s, ['original_max_position_embeddings']);
  const lowWavelen = oldCtx / low;
  const highWavelen = oldCtx / high;
  return invFreq.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) return f;
    if (wavelen > lowWavelen) return f / factor;
    const smooth = (oldCtx / wavelen - low) / (high - low);
    return (1 - smooth) * (f / factor) + smooth * f;
  });
}

export function activation(name: string): 'gelu_tanh' | 'gelu' | 'silu' | 'relu' | 'quick_gelu' {
  switch (name) {
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
    case 'gelu_fast':
    case 'gelu_tanh':
      return 'gelu_tanh';
    case 'gelu':
      return 'gelu';
    case 'silu':
    case 'swish':
      return 'silu';
    case 'relu':
      return 'relu';
    case 'quick_gelu':
      return 'quick_gelu';
    default:
      throw new LensError('CHECKPOINT_INVALID', `activation "${name}" is not supported`);
  }
}

/** Sizes in GPT-2's config vocabulary (`n_embd`, `n_head`, `n_layer`, `n_inner`), shared by GPT-2 and GPT-J. */
export function gpt2StyleDims(config: RawConfig) {
  const hidden = num(config, ['n_embd', 'hidden_size']);
  const heads = num(config, ['n_head', 'num_attention_heads']);
  return {
    hidden,
    heads,
    headDim: hidden / heads,
    numLayers: num(config, ['n_layer', 'num_hidden_layers']),
    inner: num(config, ['n_inner'], 4 * hidden),
    eps: num(config, ['layer_norm_epsilon'], 1e-5),
  };
}

import { LensError } from '../lens/types.js';
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
    } else {
      throw new LensError('CHECKPOINT_INVALID', `rope scaling type "${type}" is not supported`);
    }
  }
  return { style, dims, invFreq, attentionScaling };
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

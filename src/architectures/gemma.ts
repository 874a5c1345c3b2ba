import { activation, num, optNum, str } from './config.js';
import { llamaPlan } from './llama.js';
import type { ArchitectureSpec, ModelPlan, NormSpec, RawConfig } from './spec.js';
import { blockPrefix, DECODER_PATHS } from './names.js';

/**
 * HF reads `hidden_activation` and, when a config lacks it, uses tanh-GELU regardless of
 * `hidden_act` (the first Gemma configs said "gelu" but the model was trained with the tanh form).
 */
function gemmaAct(config: RawConfig) {
  return activation(str(config, 'hidden_activation', 'gelu_pytorch_tanh'));
}

// Gemma's RMSNorm stores w and scales by (1 + w), so a zero-initialised norm is the identity.
const plusOne = (n: NormSpec): NormSpec => ({ ...n, offset: 1 });

// Gemma = Llama block with (1 + w) RMSNorms, embeddings scaled by √hidden (rounded to the
// checkpoint dtype, as HF keeps the normalizer as a tensor of that dtype), a tanh-GELU gated MLP,
// an explicit head_dim (256 ≠ hidden / heads in gemma-7b) and a tied head.
function gemmaPlan(family: string, config: RawConfig, window: (c: RawConfig, layer: number) => number | null): ModelPlan {
  const base = llamaPlan(family, config, { qkvBias: () => false, window, defaultTied: true });
  const act = gemmaAct(config);
  return {
    ...base,
    embedding: { ...base.embedding, scale: Math.sqrt(base.hiddenSize) },
    blocks: base.blocks.map((b) => ({ ...b, ln1: plusOne(b.ln1), ln2: plusOne(b.ln2!), mlp: { ...b.mlp, act } })),
    finalNorm: plusOne(base.finalNorm),
  };
}

export const gemma: ArchitectureSpec = {
  family: 'gemma',
  architectures: ['GemmaForCausalLM', 'GemmaModel'],
  paths: DECODER_PATHS,
  plan: (config) => gemmaPlan('gemma', config, () => null),
};

/**
 * Gemma-2 local/global alternation: `layer_types` when the config lists it (transformers ≥ 4.53),
 * otherwise even layers (0, 2, …) slide and odd ones see everything.
 */
function gemma2Window(config: RawConfig, layer: number): number | null {
  const window = optNum(config, 'sliding_window') ?? null;
  const types = config.layer_types as string[] | undefined;
  if (Array.isArray(types)) return types[layer] === 'sliding_attention' ? window : null;
  return layer % 2 === 0 ? window : null;
}

// Gemma-2 = Gemma + sandwich norms, attention-logit soft-capping, a query scale from
// query_pre_attn_scalar, and final-logit soft-capping — which the lens applies at every layer, since
// it is part of how the model turns a residual into a distribution.
export const gemma2: ArchitectureSpec = {
  family: 'gemma2',
  architectures: ['Gemma2ForCausalLM', 'Gemma2Model'],
  paths: gemma.paths,
  plan(config: RawConfig) {
    const base = gemmaPlan('gemma2', config, gemma2Window);
    const eps = num(config, ['rms_norm_eps'], 1e-6);
    const norm = (name: string): NormSpec => ({ kind: 'rmsnorm', eps, weight: `${name}.weight`, offset: 1 });
    const attnCap = optNum(config, 'attn_logit_softcapping');
    const finalCap = optNum(config, 'final_logit_softcapping');
    // Scores are q·k / √query_pre_attn_scalar (not √head_dim; gemma-2-27b uses hidden / heads).
    const qScale = num(config, ['query_pre_attn_scalar'], base.blocks[0]?.attn.headDim ?? 256);
    return {
      ...base,
      blocks: base.blocks.map((b, i) => {
        const p = blockPrefix(DECODER_PATHS, i);
        return {
          ...b,
          // In Gemma-2 `post_attention_layernorm` normalises the attention *output* before the
          // residual add (not the MLP input, as the same name means in Llama).
          postAttnNorm: norm(`${p}.post_attention_layernorm`),
          ln2: norm(`${p}.pre_feedforward_layernorm`),
          postMlpNorm: norm(`${p}.post_feedforward_layernorm`),
          attn: { ...b.attn, scale: 1 / Math.sqrt(qScale), softcap: attnCap },
        };
      }),
      unembed: { ...base.unembed, softcap: finalCap },
    };
  },
};

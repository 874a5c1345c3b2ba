import { LensError } from '../errors.js';
import { activation, bool, num, optNum, rotary, str } from './config.js';
import { llamaPlan } from './llama.js';
import { blockPrefix, DECODER_PATHS, linear, unembedding, weightOf } from './names.js';
import type { ArchitectureSpec, BlockSpec, LayoutPaths, ModelPlan, NormSpec, RawConfig } from './spec.js';

// AI2's OLMo-codebase module names (hf_olmo).
const HF_OLMO_PATHS: LayoutPaths = {
  embed: 'model.transformer.wte',
  layers: 'model.transformer.blocks',
  finalNorm: 'model.transformer.ln_f',
  unembed: 'model.transformer.ff_out',
};

// OLMo's LayerNorm has no weight or bias; HF fixes its eps at 1e-5 whatever the config says.
const OLMO_LN: NormSpec = { kind: 'layernorm_noparam', eps: 1e-5 };

/** transformers-native OLMo (allenai/OLMo-1B-hf): the Llama layout with parameter-free LayerNorms and clip_qkv. */
function nativePlan(config: RawConfig): ModelPlan {
  const base = llamaPlan('olmo', config, {
    qkvBias: (c) => bool(c, 'attention_bias', false),
    window: () => null,
    defaultTied: false,
  });
  // q, k and v are clamped to [−clip_qkv, clip_qkv] right after their projections (OLMo-1.7).
  const clip = optNum(config, 'clip_qkv');
  return {
    ...base,
    blocks: base.blocks.map((b) => ({ ...b, ln1: OLMO_LN, ln2: OLMO_LN, attn: { ...b.attn, clipQkv: clip } })),
    finalNorm: OLMO_LN,
  };
}

/**
 * AI2's own hf_olmo layout (allenai/OLMo-1B, OLMo-7B with trust_remote_code): the OLMo training
 * code's module names under `model.transformer`, one fused att_proj = [q | k | v], and SwiGLU's
 * ff_proj = [up | gate] (its `x, gate = chunk(2)`), so the MLP width is half of ff_proj's rows.
 */
function hfOlmoPlan(config: RawConfig): ModelPlan {
  const unsupported = (what: string) => new LensError('CHECKPOINT_INVALID', `hf_olmo checkpoints with ${what} are not supported`);
  if (bool(config, 'alibi', false) || !bool(config, 'rope', true)) throw unsupported('ALiBi / no rotary');
  if (bool(config, 'attention_layer_norm', false)) throw unsupported('attention_layer_norm (q/k norms over all heads)');
  if (bool(config, 'norm_after', false)) throw unsupported('norm_after');
  if (bool(config, 'scale_logits', false)) throw unsupported('scale_logits');
  const blockType = str(config, 'block_type', 'sequential');
  if (blockType !== 'sequential') throw unsupported(`block_type "${blockType}"`);
  if (str(config, 'activation_type', 'swiglu') !== 'swiglu') throw unsupported(`activation_type "${str(config, 'activation_type', '')}"`);

  const hidden = num(config, ['d_model']);
  const heads = num(config, ['n_heads']);
  const numLayers = num(config, ['n_layers']);
  const kvHeads = optNum(config, 'n_kv_heads') ?? (bool(config, 'multi_query_attention', false) ? 1 : heads);
  const headDim = hidden / heads;
  // mlp_hidden_size (or mlp_ratio · d_model) is ff_proj's width; SwiGLU halves it.
  const ffProj = optNum(config, 'mlp_hidden_size') ?? num(config, ['mlp_ratio'], 4) * hidden;
  const bias = bool(config, 'include_bias', false);
  const eps = num(config, ['layer_norm_eps'], 1e-5);
  const affine = bool(config, 'layer_norm_with_affine', false);
  const normBias = typeof config.bias_for_layer_norm === 'boolean' ? config.bias_for_layer_norm : bias;
  const kind = str(config, 'layer_norm_type', 'default') === 'rms' ? 'rmsnorm' : 'layernorm';
  const ln = (name: string): NormSpec =>
    affine
      ? { kind, eps, weight: `${name}.weight`, bias: normBias && kind === 'layernorm' ? `${name}.bias` : undefined }
      : { kind: 'layernorm_noparam', eps };
  const lin = (name: string) => linear(name, bias);
  const rope = rotary(config, headDim, 'half');
  const blocks: BlockSpec[] = Array.from({ length: numLayers }, (_, i) => {
    const p = blockPrefix(HF_OLMO_PATHS, i);
    return {
      residual: 'sequential',
      ln1: ln(`${p}.attn_norm`),
      ln2: ln(`${p}.ff_norm`),
      attn: {
        qkv: { kind: 'fused', qkv: lin(`${p}.att_proj`) },
        o: lin(`${p}.attn_out`),
        numHeads: heads,
        numKvHeads: kvHeads,
        headDim,
        scale: 1 / Math.sqrt(headDim),
        rotary: rope,
        clipQkv: optNum(config, 'clip_qkv'),
        slidingWindow: null,
      },
      mlp: { kind: 'gated_fused', size: ffProj / 2, gateUp: lin(`${p}.ff_proj`), down: lin(`${p}.ff_out`), act: activation('silu'), order: 'up_gate' },
    };
  });
  // weight_tying is hf_olmo's tie_word_embeddings; the untied head is the top-level ff_out.
  const tied = bool(config, 'weight_tying', true);
  return {
    family: 'olmo',
    numLayers,
    hiddenSize: hidden,
    // wte has embedding_size rows (padded past vocab_size) and the logits keep all of them.
    vocabSize: optNum(config, 'embedding_size') ?? num(config, ['vocab_size']),
    maxPositions: num(config, ['max_sequence_length']),
    embedding: { tokens: weightOf(HF_OLMO_PATHS.embed) },
    blocks,
    finalNorm: ln(HF_OLMO_PATHS.finalNorm),
    unembed: unembedding(HF_OLMO_PATHS, tied),
    skip: [],
  };
}

/** AI2's configs say model_type "olmo" too; only their OLMo-codebase keys (d_model, n_layers) tell them apart. */
function isHfOlmo(config: RawConfig): boolean {
  const classes = Array.isArray(config.architectures) ? (config.architectures as string[]) : [];
  return typeof config.d_model === 'number' || classes.includes('OLMoForCausalLM');
}

export const olmo: ArchitectureSpec = {
  family: 'olmo',
  architectures: ['OlmoForCausalLM', 'OlmoModel'],
  paths: DECODER_PATHS,
  plan: (config) => (isHfOlmo(config) ? hfOlmoPlan(config) : nativePlan(config)),
};

export const hfOlmo: ArchitectureSpec = {
  family: 'hf_olmo',
  aliases: ['olmo-ai2'],
  architectures: ['OLMoForCausalLM'],
  paths: HF_OLMO_PATHS,
  plan: hfOlmoPlan,
};

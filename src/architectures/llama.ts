import { activation, bool, num, optNum, rotary, str } from './config.js';
import { blockPrefix, DECODER_PATHS, linear, rmsNorm, unembedding, weightOf } from './names.js';
import type { ArchitectureSpec, BlockSpec, LayoutPaths, ModelPlan, RawConfig } from './spec.js';

export interface LlamaVariant {
  /** q/k/v projections carry biases (Qwen2 always; Llama when attention_bias). */
  qkvBias: (config: RawConfig) => boolean;
  /** Sliding window for layer i, or null for full causal attention. */
  window: (config: RawConfig, layer: number) => number | null;
  defaultTied: boolean;
  /** Default: DECODER_PATHS. */
  paths?: LayoutPaths;
}

// Llama-style decoder: RMSNorm, rotate-half RoPE, GQA, SiLU-gated MLP, torch Linear weights [out, in].
export function llamaPlan(family: string, config: RawConfig, variant: LlamaVariant): ModelPlan {
  const hidden = num(config, ['hidden_size']);
  const heads = num(config, ['num_attention_heads']);
  const kvHeads = num(config, ['num_key_value_heads'], heads);
  const headDim = optNum(config, 'head_dim') ?? hidden / heads;
  const numLayers = num(config, ['num_hidden_layers']);
  const eps = num(config, ['rms_norm_eps'], 1e-6);
  const qkvBias = variant.qkvBias(config);
  const oBias = bool(config, 'attention_bias', false);
  const mlpBias = bool(config, 'mlp_bias', false);
  const act = activation(str(config, 'hidden_act', 'silu'));
  const rope = rotary(config, headDim, 'half');
  const paths = variant.paths ?? DECODER_PATHS;
  const rms = (name: string) => rmsNorm(name, eps);
  const lin = linear;
  const blocks: BlockSpec[] = Array.from({ length: numLayers }, (_, i) => {
    const p = blockPrefix(paths, i);
    return {
      residual: 'sequential',
      ln1: rms(`${p}.input_layernorm`),
      ln2: rms(`${p}.post_attention_layernorm`),
      attn: {
        qkv: {
          kind: 'separate',
          q: lin(`${p}.self_attn.q_proj`, qkvBias),
          k: lin(`${p}.self_attn.k_proj`, qkvBias),
          v: lin(`${p}.self_attn.v_proj`, qkvBias),
        },
        o: lin(`${p}.self_attn.o_proj`, oBias),
        numHeads: heads,
        numKvHeads: kvHeads,
        headDim,
        scale: 1 / Math.sqrt(headDim),
        rotary: rope,
        slidingWindow: variant.window(config, i),
      },
      mlp: {
        kind: 'gated',
        size: num(config, ['intermediate_size']),
        gate: lin(`${p}.mlp.gate_proj`, mlpBias),
        up: lin(`${p}.mlp.up_proj`, mlpBias),
        down: lin(`${p}.mlp.down_proj`, mlpBias),
        act,
      },
    };
  });
  const tied = bool(config, 'tie_word_embeddings', variant.defaultTied);
  return {
    family,
    numLayers,
    hiddenSize: hidden,
    vocabSize: num(config, ['vocab_size']),
    maxPositions: num(config, ['max_position_embeddings']),
    embedding: { tokens: weightOf(paths.embed) },
    blocks,
    finalNorm: rms(paths.finalNorm),
    unembed: unembedding(paths, tied),
    skip: [/\.rotary_emb\.inv_freq$/],
  };
}

export const llama: ArchitectureSpec = {
  family: 'llama',
  aliases: ['llama2', 'llama3', 'codellama'],
  architectures: ['LlamaForCausalLM', 'LlamaModel'],
  paths: DECODER_PATHS,
  plan: (config) =>
    llamaPlan('llama', config, {
      qkvBias: (c) => bool(c, 'attention_bias', false),
      window: () => null,
      defaultTied: false,
    }),
};

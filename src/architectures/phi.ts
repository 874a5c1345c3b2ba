import { activation, bool, num, optNum, rotary, rotaryDims, str } from './config.js';
import { blockPrefix, DECODER_PATHS, layerNorm, linear, unembedding, weightOf } from './names.js';
import type { ArchitectureSpec, LayoutPaths, RawConfig } from './spec.js';

const PATHS: LayoutPaths = { ...DECODER_PATHS, finalNorm: 'model.final_layernorm' };

// Phi-1 / 1.5 / 2: one input_layernorm feeds attention and MLP side by side (parallel residual),
// partial rotate-half rotary, biases everywhere (q/k/v, dense, fc1/fc2, lm_head), final_layernorm.
// Phi-3 is a different shape (sequential, RMSNorm, fused projections): see phi3.ts.
export const phi: ArchitectureSpec = {
  family: 'phi',
  aliases: ['phi-1', 'phi-1.5', 'phi-2', 'phi1', 'phi2'],
  architectures: ['PhiForCausalLM', 'PhiModel'],
  paths: PATHS,
  plan(config: RawConfig) {
    const hidden = num(config, ['hidden_size']);
    const heads = num(config, ['num_attention_heads']);
    const kvHeads = num(config, ['num_key_value_heads'], heads);
    const numLayers = num(config, ['num_hidden_layers']);
    const eps = num(config, ['layer_norm_eps'], 1e-5);
    const headDim = optNum(config, 'head_dim') ?? hidden / heads;
    // phi-2: partial_rotary_factor 0.4 → int(0.4 · 80) = 32 rotated dims per head.
    const rope = rotary(config, rotaryDims(config, headDim, 0.5), 'half');
    const act = activation(str(config, 'hidden_act', 'gelu_new'));
    const ln = (name: string) => layerNorm(name, eps);
    const lin = (name: string) => linear(name, true);
    // qk_layernorm: a LayerNorm over head_dim on q and k before the rotary (off in released Phi-2).
    const qkNorm = bool(config, 'qk_layernorm', false);
    const tied = bool(config, 'tie_word_embeddings', false);
    return {
      family: 'phi',
      numLayers,
      hiddenSize: hidden,
      vocabSize: num(config, ['vocab_size']),
      maxPositions: num(config, ['max_position_embeddings']),
      embedding: { tokens: weightOf(PATHS.embed) },
      blocks: Array.from({ length: numLayers }, (_, i) => {
        const p = blockPrefix(PATHS, i);
        return {
          residual: 'parallel' as const,
          ln1: ln(`${p}.input_layernorm`),
          attn: {
            qkv: {
              kind: 'separate' as const,
              q: lin(`${p}.self_attn.q_proj`),
              k: lin(`${p}.self_attn.k_proj`),
              v: lin(`${p}.self_attn.v_proj`),
            },
            o: lin(`${p}.self_attn.dense`),
            numHeads: heads,
            numKvHeads: kvHeads,
            headDim,
            scale: 1 / Math.sqrt(headDim),
            rotary: rope,
            qNorm: qkNorm ? ln(`${p}.self_attn.q_layernorm`) : undefined,
            kNorm: qkNorm ? ln(`${p}.self_attn.k_layernorm`) : undefined,
            slidingWindow: null,
          },
          mlp: { kind: 'plain' as const, size: num(config, ['intermediate_size']), up: lin(`${p}.mlp.fc1`), down: lin(`${p}.mlp.fc2`), act },
        };
      }),
      finalNorm: ln(PATHS.finalNorm),
      unembed: unembedding(PATHS, tied, { bias: `${PATHS.unembed}.bias` }),
      skip: [/\.rotary_emb\.inv_freq$/],
    };
  },
};

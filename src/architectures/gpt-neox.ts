import { activation, bool, num, rotary, rotaryDims, str } from './config.js';
import { blockPrefix, layerNorm, linear, unembedding, weightOf } from './names.js';
import type { ArchitectureSpec, LayoutPaths, RawConfig } from './spec.js';

const PATHS: LayoutPaths = { embed: 'gpt_neox.embed_in', layers: 'gpt_neox.layers', finalNorm: 'gpt_neox.final_layer_norm', unembed: 'embed_out' };

// GPT-NeoX / Pythia: LayerNorm blocks, fused query_key_value whose output is laid out per head as
// [heads, 3, head_dim], rotate-half rotary on the first rotary_pct of each head, untied embed_out.
export const gptNeox: ArchitectureSpec = {
  family: 'gpt_neox',
  aliases: ['gpt-neox', 'gptneox', 'pythia'],
  architectures: ['GPTNeoXForCausalLM', 'GPTNeoXModel'],
  paths: PATHS,
  plan(config: RawConfig) {
    const hidden = num(config, ['hidden_size']);
    const heads = num(config, ['num_attention_heads']);
    const numLayers = num(config, ['num_hidden_layers']);
    const eps = num(config, ['layer_norm_eps'], 1e-5);
    const headDim = hidden / heads;
    // Pythia's default rotary_pct is 0.25; rotary_emb_base is NeoX's name for rope_theta.
    const rope = rotary(config, rotaryDims(config, headDim, 0.25), 'half');
    // One flag picks the block shape: true (Pythia, NeoX-20B) is x + attn(ln1 x) + mlp(ln2 x).
    const parallel = bool(config, 'use_parallel_residual', true);
    const attnBias = bool(config, 'attention_bias', true);
    const act = activation(str(config, 'hidden_act', 'gelu'));
    const ln = (name: string) => layerNorm(name, eps);
    const lin = linear;
    const tied = bool(config, 'tie_word_embeddings', false);
    return {
      family: 'gpt_neox',
      numLayers,
      hiddenSize: hidden,
      vocabSize: num(config, ['vocab_size']),
      maxPositions: num(config, ['max_position_embeddings']),
      embedding: { tokens: weightOf(PATHS.embed) },
      blocks: Array.from({ length: numLayers }, (_, i) => {
        const p = blockPrefix(PATHS, i);
        return {
          residual: parallel ? ('parallel' as const) : ('sequential' as const),
          ln1: ln(`${p}.input_layernorm`),
          ln2: ln(`${p}.post_attention_layernorm`),
          attn: {
            qkv: { kind: 'fused_per_head' as const, qkv: lin(`${p}.attention.query_key_value`, attnBias) },
            o: lin(`${p}.attention.dense`, attnBias),
            numHeads: heads,
            numKvHeads: heads,
            headDim,
            scale: 1 / Math.sqrt(headDim),
            rotary: rope,
            slidingWindow: null,
          },
          mlp: {
            kind: 'plain' as const,
            size: num(config, ['intermediate_size'], 4 * hidden),
            up: lin(`${p}.mlp.dense_h_to_4h`, true),
            down: lin(`${p}.mlp.dense_4h_to_h`, true),
            act,
          },
        };
      }),
      finalNorm: ln(PATHS.finalNorm),
      unembed: unembedding(PATHS, tied),
      // Pythia checkpoints carry the causal-mask buffers and rotary inv_freq.
      skip: [/\.attention\.bias$/, /\.attention\.masked_bias$/, /\.rotary_emb\.inv_freq$/],
    };
  },
};

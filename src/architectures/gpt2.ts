import { activation, bool, gpt2StyleDims, num, str } from './config.js';
import { blockPrefix, layerNorm, linear, unembedding, weightOf } from './names.js';
import type { ArchitectureSpec, LayoutPaths, RawConfig } from './spec.js';

const PATHS: LayoutPaths = { embed: 'transformer.wte', positions: 'transformer.wpe', layers: 'transformer.h', finalNorm: 'transformer.ln_f', unembed: 'lm_head' };

// GPT-2: learned positions, pre-LN blocks, Conv1D projections stored [in, out], fused c_attn = [q|k|v].
export const gpt2: ArchitectureSpec = {
  family: 'gpt2',
  architectures: ['GPT2LMHeadModel', 'GPT2Model'],
  // The original "gpt2" checkpoint predates the `transformer.` wrapper.
  optionalPrefixes: ['transformer.'],
  paths: PATHS,
  plan(config: RawConfig) {
    const { hidden, heads, numLayers, inner, eps, headDim } = gpt2StyleDims(config);
    const scaleWeights = bool(config, 'scale_attn_weights', true);
    const byLayer = bool(config, 'scale_attn_by_inverse_layer_idx', false);
    const act = activation(str(config, 'activation_function', 'gelu_new'));
    const ln = (name: string) => layerNorm(name, eps);
    const conv = (name: string) => linear(name, true, 'in_out');
    const tied = bool(config, 'tie_word_embeddings', true);
    return {
      family: 'gpt2',
      numLayers,
      hiddenSize: hidden,
      vocabSize: num(config, ['vocab_size']),
      maxPositions: num(config, ['n_positions', 'max_position_embeddings']),
      embedding: { tokens: weightOf(PATHS.embed), positions: weightOf(PATHS.positions!) },
      blocks: Array.from({ length: numLayers }, (_, i) => {
        const p = blockPrefix(PATHS, i);
        return {
          residual: 'sequential' as const,
          ln1: ln(`${p}.ln_1`),
          ln2: ln(`${p}.ln_2`),
          attn: {
            qkv: { kind: 'fused' as const, qkv: conv(`${p}.attn.c_attn`) },
            o: conv(`${p}.attn.c_proj`),
            numHeads: heads,
            numKvHeads: heads,
            headDim,
            scale: (scaleWeights ? 1 / Math.sqrt(headDim) : 1) / (byLayer ? i + 1 : 1),
            rotary: null,
            slidingWindow: null,
          },
          mlp: { kind: 'plain' as const, size: inner, up: conv(`${p}.mlp.c_fc`), down: conv(`${p}.mlp.c_proj`), act },
        };
      }),
      finalNorm: ln(PATHS.finalNorm),
      unembed: unembedding(PATHS, tied),
      // Causal-mask buffers saved by older transformers versions.
      skip: [/\.attn\.bias$/, /\.attn\.masked_bias$/],
    };
  },
};

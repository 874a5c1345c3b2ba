import { activation, bool, gpt2StyleDims, num, str } from './config.js';
import { blockPrefix, layerNorm, linear, unembedding, weightOf } from './names.js';
import type { ArchitectureSpec, LayoutPaths, RawConfig } from './spec.js';

const PATHS: LayoutPaths = { embed: 'transformer.wte', layers: 'transformer.h', finalNorm: 'transformer.ln_f', unembed: 'lm_head' };

// GPT-J: one ln_1 feeds attention and MLP side by side (parallel residual), rotary on the first
// rotary_dim dims of each head in the interleaved (rotate_every_two) pairing, no biases on
// q/k/v/out, and an lm_head that carries a bias.
export const gptj: ArchitectureSpec = {
  family: 'gptj',
  aliases: ['gpt-j'],
  architectures: ['GPTJForCausalLM', 'GPTJModel'],
  paths: PATHS,
  plan(config: RawConfig) {
    const { hidden, heads, numLayers, inner, eps, headDim } = gpt2StyleDims(config);
    // HF builds sin/cos for `rotary_dim or n_embd`; without rotary_dim that only broadcasts when the
    // whole head rotates, so a null rotary_dim means the full head.
    const rotDims = num(config, ['rotary_dim'], headDim);
    const half = rotDims / 2;
    // The sinusoid table is fixed at base 10000: GPTJConfig has no rope_theta.
    const invFreq = Float64Array.from({ length: half }, (_, i) => 1 / 10000 ** ((2 * i) / rotDims));
    const act = activation(str(config, 'activation_function', 'gelu_new'));
    const ln = (name: string) => layerNorm(name, eps);
    const lin = linear;
    const tied = bool(config, 'tie_word_embeddings', false);
    return {
      family: 'gptj',
      numLayers,
      hiddenSize: hidden,
      vocabSize: num(config, ['vocab_size']),
      maxPositions: num(config, ['n_positions', 'max_position_embeddings']),
      embedding: { tokens: weightOf(PATHS.embed) },
      blocks: Array.from({ length: numLayers }, (_, i) => {
        const p = blockPrefix(PATHS, i);
        return {
          residual: 'parallel' as const,
          ln1: ln(`${p}.ln_1`),
          attn: {
            qkv: {
              kind: 'separate' as const,
              q: lin(`${p}.attn.q_proj`, false),
              k: lin(`${p}.attn.k_proj`, false),
              v: lin(`${p}.attn.v_proj`, false),
            },
            o: lin(`${p}.attn.out_proj`, false),
            numHeads: heads,
            numKvHeads: heads,
            headDim,
            scale: 1 / Math.sqrt(headDim),
            rotary: { style: 'interleaved' as const, dims: rotDims, invFreq, attentionScaling: 1 },
            slidingWindow: null,
          },
          mlp: { kind: 'plain' as const, size: inner, up: lin(`${p}.mlp.fc_in`, true), down: lin(`${p}.mlp.fc_out`, true), act },
        };
      }),
      finalNorm: ln(PATHS.finalNorm),
      // The bias stays lm_head's own even when the weight is tied to wte.
      unembed: unembedding(PATHS, tied, { bias: `${PATHS.unembed}.bias` }),
      // Causal-mask buffers saved by older transformers versions.
      skip: [/\.attn\.bias$/, /\.attn\.masked_bias$/],
    };
  },
};

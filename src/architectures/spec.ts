// What a model family computes, as data. The graph builder reads these; family files fill them in.

import type { RawConfig } from '../checkpoint/hf-dir.js';

export type { RawConfig };

export interface NormSpec {
  kind: 'layernorm' | 'rmsnorm' | 'layernorm_noparam';
  eps: number;
  /** Checkpoint names; absent for non-parametric norms. */
  weight?: string;
  bias?: string;
  /** Gemma stores w and applies (offset + w). */
  offset?: number;
}

/** A dense projection. `in_out` = GPT-2 Conv1D [in, out]; `out_in` = torch Linear [out, in]. */
export interface Linear {
  weight: string;
  bias?: string;
  layout: 'in_out' | 'out_in';
}

export type Activation = 'gelu_tanh' | 'gelu' | 'silu' | 'relu' | 'quick_gelu';

export interface RotarySpec {
  style: 'half' | 'interleaved';
  /** Rotated dims per head (partial rotary when < headDim). */
  dims: number;
  /** dims/2 inverse frequencies, scaling already applied. */
  invFreq: Float64Array;
  /** Multiplies cos and sin (YaRN / LongRoPE attention factor); 1 otherwise. */
  attentionScaling: number;
  /**
   * LongRoPE (Phi-3): a prompt longer than `beyond` tokens is rotated with these frequencies
   * instead (HF switches on the sequence length; lensgate decides per prompt, so a batch gives
   * what each prompt alone would).
   */
  long?: { invFreq: Float64Array; beyond: number };
}

export type QkvSpec =
  | { kind: 'separate'; q: Linear; k: Linear; v: Linear }
  /** One projection whose output is [q | k | v] concatenated. */
  | { kind: 'fused'; qkv: Linear }
  /** GPT-NeoX: output laid out per head as [heads, 3, headDim]. */
  | { kind: 'fused_per_head'; qkv: Linear };

/** `size` = intermediate width from config.json (checked against the weights). */
export type MlpSpec = { size: number } & (
  | { kind: 'plain'; up: Linear; down: Linear; act: Activation }
  | { kind: 'gated'; gate: Linear; up: Linear; down: Linear; act: Activation }
  /** One projection holding both halves: [gate | up] (Phi-3) or [up | gate] (AI2 OLMo's SwiGLU). */
  | { kind: 'gated_fused'; gateUp: Linear; down: Linear; act: Activation; order?: 'gate_up' | 'up_gate' }
  /**
   * Mixtral: softmax over `router` logits, keep the top-k experts, renormalise their weights, and
   * sum weight · gated expert MLP (act(gate)·up → down) over those k experts only.
   */
  | {
      kind: 'moe';
      router: Linear;
      experts: Array<{ gate: Linear; up: Linear; down: Linear }>;
      topK: number;
      act: Activation;
    }
);

export interface AttentionSpec {
  qkv: QkvSpec;
  o: Linear;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Multiplies q·k (default 1/√headDim). */
  scale: number;
  rotary: RotarySpec | null;
  /** Per-head RMSNorm on q and k before rotary (Qwen3, OLMo-2). */
  qNorm?: NormSpec;
  kNorm?: NormSpec;
  /** OLMo: clamp q, k, v to [-c, c]. */
  clipQkv?: number;
  /** Gemma-2: tanh soft-capping of attention scores. */
  softcap?: number;
  /** Keys further back than this are masked (Mistral, Gemma-2 local layers); null = full causal. */
  slidingWindow: number | null;
}

export interface BlockSpec {
  /**
   * sequential: h += attn(ln1(h)); h += mlp(ln2(h))
   * parallel:   h += attn(ln1(h)) + mlp(ln2 ? ln2(h) : ln1(h))   (GPT-J, Phi, NeoX parallel)
   */
  residual: 'sequential' | 'parallel';
  ln1: NormSpec;
  ln2?: NormSpec;
  /** Gemma-2 sandwich norms, applied to each branch's output before the residual add. */
  postAttnNorm?: NormSpec;
  postMlpNorm?: NormSpec;
  attn: AttentionSpec;
  mlp: MlpSpec;
}

export interface EmbeddingSpec {
  tokens: string;
  positions?: string;
  /** Gemma multiplies by √hidden, rounded to the checkpoint dtype. */
  scale?: number;
}

export interface UnembedSpec {
  /** [vocab, hidden] — a Linear weight or the tied token embedding. */
  weight: string;
  bias?: string;
  /** Gemma-2: logits = c·tanh(logits / c). */
  softcap?: number;
  /** A tensor the checkpoint may hold but that is not read (the head's own weight when tied). */
  ignored?: string;
}

/** Everything the runtime needs about one concrete checkpoint. */
export interface ModelPlan {
  family: string;
  numLayers: number;
  hiddenSize: number;
  vocabSize: number;
  maxPositions: number;
  embedding: EmbeddingSpec;
  blocks: BlockSpec[];
  finalNorm: NormSpec;
  unembed: UnembedSpec;
  /** Checkpoint tensors that are known and deliberately unused (buffers, inv_freq). */
  skip: RegExp[];
}

/**
 * Where a family keeps its top-level tensors (state-dict prefixes without the trailing dot), like
 * the seed's MODEL_CONFIGS. `registerLayout` renames these to register a re-packaged checkpoint.
 */
export interface LayoutPaths {
  /** Token embedding module, e.g. `model.embed_tokens`. */
  embed: string;
  /** Learned position embedding module (GPT-2 `transformer.wpe`). */
  positions?: string;
  /** Container of the blocks; block i is `${layers}.${i}`. */
  layers: string;
  finalNorm: string;
  /** Untied unembedding module (`lm_head`, `embed_out`); tied checkpoints use `embed`. */
  unembed: string;
}

export interface ArchitectureSpec {
  family: string;
  /** Other model_type strings that mean this family. */
  aliases?: string[];
  /** HF class names in config.architectures. */
  architectures?: string[];
  /**
   * Prefixes some checkpoints drop (the original gpt2 checkpoint has no `transformer.`).
   * A name missing from the checkpoint is retried without it.
   */
  optionalPrefixes?: string[];
  /** The family's state-dict layout; families that declare it can be re-used by `registerLayout`. */
  paths?: LayoutPaths;
  plan(config: RawConfig): ModelPlan;
}

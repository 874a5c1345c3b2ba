// Public contract of the lens core. The GraphQL layer, the CLI and the tests build on these shapes.

import type { LensError } from '../errors.js';
import type { QuantizationInfo, QuantizeMode } from '../checkpoint/quantize.js';
import type { Device } from '../runtime/sessions.js';

export { LensError, type LensErrorCode } from '../errors.js';
export type { Device };
export type { QuantizationInfo, QuantizeMode } from '../checkpoint/quantize.js';

/** Where in a block the residual stream is read. */
export type LensPoint = 'BLOCK_OUTPUT' | 'ATTENTION_OUTPUT';

/**
 * How a residual row becomes a distribution: LOGIT = final norm → unembedding; TUNED = a tuned lens's
 * affine translator first (h + A h + b); JACOBIAN = a Jacobian lens's matrix first (J h).
 */
export type LensKind = 'LOGIT' | 'TUNED' | 'JACOBIAN';

/** A lens kind a model serves and the layers it reads (a Jacobian lens may cover only some). */
export interface LensInfo {
  kind: LensKind;
  layers: number[];
  /** Descriptive fields from the lens file (base model, n_prompts, provenance); null for LOGIT. */
  about: Record<string, unknown> | null;
  /** sha256 over the translators' numbers (layer, dtype, shape, bytes); null for LOGIT. Identifies the file's lens, not its path. */
  contentHash?: string | null;
}

export interface ModelInfo {
  id: string;
  modelType: string; // registry family, e.g. "gpt2", "llama"
  numLayers: number;
  hiddenSize: number;
  vocabSize: number;
  maxPositions: number;
  /** Execution provider actually in use: "cpu" or "cuda". */
  device: 'cpu' | 'cuda';
  /** Why the device is what it is (e.g. CUDA fallback reason); null when as requested. */
  deviceNote: string | null;
  /** Checkpoint weight dtype: "F32" | "F16" | "BF16" (mixed → the dominant one). */
  dtype: string;
  /** Type the graphs compute in (weights on the device, block and head math); see OpenOptions.dtype. */
  computeType: ComputeDtype;
  parameters: number;
  /** Weight-only quantization of the blocks (OpenOptions.quantize), or null when the weights are used as stored. */
  quantization?: QuantizationInfo | null;
  /**
   * sha256 of the tokenizer's vocabulary, merges, added tokens and pre/post-processing
   * (tokenizer.json's model, added_tokens, normalizer, pre_tokenizer, post_processor): models
   * with equal hashes tokenize alike and index their logits alike.
   */
  tokenizerHash?: string;
  /** LOGIT always, then the tuned / Jacobian lenses the operator loaded. */
  lenses: LensInfo[];
}

export interface Token {
  position: number;
  id: number;
  /** Decoded text of this single token (may be "" for ids without text, e.g. padded vocab). */
  text: string;
  /** True for tokens the model wrote (LensOptions.generate); absent or false for prompt tokens. */
  generated?: boolean;
}

/** Greedy continuation of the prompt; the lens runs at every generated position too. */
export interface GenerateOptions {
  /** New tokens to write at most (≥ 1); generation also stops after the tokenizer's EOS token. */
  maxNewTokens: number;
}

/** How a generation ended. */
export interface GenerationInfo {
  maxNewTokens: number;
  /** Tokens written (the last is EOS when stoppedAtEos). */
  newTokens: number;
  stoppedAtEos: boolean;
  /** EOS ids the run stopped at (from generation_config.json or config.json); empty when none. */
  eosTokenIds: number[];
}

/** One generated position's column: every requested layer, as soon as the position is computed. */
export interface PositionEvent {
  position: number;
  /** The token at this position (generated: true). */
  token: Token;
  point: LensPoint;
  topIndices: number[][]; // [layerIndex][k]
  topProbs: number[][]; // [layerIndex][k]
}

export interface LensOptions {
  /** Lens kind; default LOGIT. A kind the model lacks is rejected with LENS_UNAVAILABLE. */
  lens?: LensKind;
  /** k ≥ 1 and ≤ vocabSize; default 5. */
  topK?: number;
  /** Mode 2: per-position trajectories of every token that was top-k at any requested layer. */
  trackAcrossLayers?: boolean;
  /** Layer subset; any order → returned ascending; duplicates / out of range rejected. Default: all the lens reads. */
  layers?: number[];
  /** Residual stream read points; default ['BLOCK_OUTPUT']. */
  points?: LensPoint[];
  /** Per-cell entropy, KL(final ‖ layer) and rank of the final top-1 (one extra pass at the end). */
  stats?: boolean;
  /**
   * The prompt's token ids by this model's tokenizer, when the caller has them already (the gateway
   * tokenizes while it validates): the model then does not tokenize the prompt again.
   */
  promptIds?: number[];
  /** Stops work between layers; the promise rejects with LensError code CANCELLED. */
  signal?: AbortSignal;
  /**
   * Fires as soon as each requested layer is reduced, in ascending layer order. With `generate`
   * these cover the prompt positions; generated positions arrive through onPosition.
   */
  onLayer?: (event: LayerEvent) => void;
  /** Continue the prompt greedily and lens every generated position (one cached position per token). */
  generate?: GenerateOptions;
  /** Fires once per generated position and read point, as soon as its column is computed. */
  onPosition?: (event: PositionEvent) => void;
  /**
   * Receives, once the result is ready, the primary read point's final-normed residual rows per
   * requested layer ([positions × hiddenSize] each, float32) — the exact input of the unembedding,
   * for comparisons over the full vocabulary (compareLens).
   */
  onNormed?: (normed: Float32Array[]) => void;
}

export interface LayerEvent {
  layer: number;
  /** Position of this layer within the requested layers. */
  index: number;
  count: number;
  point: LensPoint;
  topIndices: number[][]; // [position][k]
  topProbs: number[][]; // [position][k]
  /** Distributed mode: the worker process that computed this layer. */
  worker?: string;
}

export interface TrackedPosition {
  position: number;
  tokenIds: number[]; // ascending unique union of top-k ids over requested layers
  probs: number[][]; // [layerIndex][j] = p(tokenIds[j]) at requested layer
}

export interface CellStats {
  entropy: number[][]; // [layerIndex][position], nats
  klToFinal: number[][]; // KL(p_final ‖ p_layer), nats
  finalTop1Rank: number[][]; // 0 = the final layer's top-1 is also top-1 here
}

export interface LensTimings {
  totalMs: number;
  embedMs: number;
  blocksMs: number;
  headMs: number;
  trackMs: number;
  statsMs: number;
  queueMs: number;
  batchSize: number;
}

/** The reduction of one read point over the requested layers. */
export interface LensReadout {
  topIndices: number[][][]; // [layerIndex][position][k]
  topProbs: number[][][];
  tracked: TrackedPosition[] | null;
  stats: CellStats | null;
}

export interface LensResult extends LensReadout {
  model: ModelInfo;
  lens: LensKind;
  tokens: Token[];
  layers: number[];
  point: LensPoint;
  topK: number;
  /** Present when points included ATTENTION_OUTPUT: the same reduction after each block's attention. */
  attention: LensReadout | null;
  timings: LensTimings;
  /** Present when the request asked to generate; `tokens` then holds prompt + generated tokens. */
  generation?: GenerationInfo;
}

export interface Divergences {
  klAB: Float64Array;
  klBA: Float64Array;
  js: Float64Array;
}

export interface LensRequest {
  prompt: string;
  options?: LensOptions;
}

export type ComputeDtype = 'float32' | 'float16';

export interface OpenOptions {
  /** Id used in results; default: the directory's base name. */
  id?: string;
  /** Overrides detection from config.json. */
  modelType?: string;
  device?: Device;
  /**
   * Compute type. Default: float16 on CUDA for F16/BF16 checkpoints, float32 otherwise.
   * float16 keeps the residual stream between blocks, norm statistics, the logits' top-k and
   * the log-sum-exp in float32/float64; BF16 weights are converted to float16.
   */
  dtype?: ComputeDtype;
  /** Tuned-lens folder and/or Jacobian lens file for this model (operator-side paths). */
  lenses?: { tuned?: string; jacobian?: string };
  /**
   * Which sessions let ORT repack their constant weights into its GEMM layout (faster GEMMs, one
   * packed float32 copy of those weights in memory). 'auto' (default): the lens head, then the blocks,
   * as far as `memoryBudget` allows; never for 16-bit weights widened per call (nothing constant to pack).
   */
  prepack?: 'auto' | 'none' | 'head' | 'all';
  /**
   * Bytes of memory the model may use beyond its memory-mapped weight files, for packed weight copies
   * and, for 16-bit checkpoints on CPU, a float32 copy of as many of the unembedding's vocabulary rows
   * as fit (the rest is widened per call; faster head calls the more fit).
   * Default: 30% of the weight files (at least 1 GiB for packed copies of float32 checkpoints); 15% for
   * 16-bit checkpoints on CPU (their float32 head rows), which keeps RSS within 1.3x of the files.
   */
  memoryBudget?: number;
  /**
   * float32 bytes per chunk when 16-bit weights are widened per call on CPU (default 8 MiB, at most
   * 64 chunks per weight). A tuning knob; tests set it small to exercise many chunks.
   */
  weightChunkBytes?: number;
  /**
   * Weight-only quantization of the transformer blocks' linear weights (attention and MLP
   * projections) for ONNX Runtime's MatMulNBits on CPU: 'int8' or 'int4', blocks of 32 inputs per
   * scale and zero point. The unembedding (lens head, stats, trajectories) and the embedding stay
   * exact. Quantized at load and cached in `<model dir>/lensgate-quantized/` (see quantizeCache).
   */
  quantize?: QuantizeMode;
  /**
   * Folder for cached quantized weights (one sub-folder per mode); default `<model dir>/lensgate-quantized`,
   * null: quantize at every load. A folder that cannot be written is skipped (ModelInfo.quantization.note).
   */
  quantizeCache?: string | null;
  /**
   * Called as sessions are built: once before any (nothing built), then after the unembedding session
   * and after each block's. Awaited, so a slow listener holds the load back (tests pause loads this
   * way) and one that throws abandons the load with its error.
   */
  onProgress?: (p: LoadProgress) => void | Promise<void>;
  /** Tuning of batched work (defaults are measured; see docs/engineering-notes.md). */
  batching?: {
    /** Most residual rows per lens-head call (default: 256 on CPU; on CUDA as many as 64 MB of logits hold). */
    headRows?: number;
    /** Largest share of a padded batch that may be padding before it runs as length groups (default 0.25; 1 = never split). */
    maxPaddingShare?: number;
  };
}

/** How far opening a model has got. */
export interface LoadProgress {
  /** Sessions created so far, of `sessions` (the blocks plus the unembedding session). */
  sessionsBuilt: number;
  sessions: number;
  /** Block sessions created so far, of `layers`. */
  layersBuilt: number;
  layers: number;
  /** Checkpoint bytes the created sessions map (memory-mapped external data), of `bytesTotal`. */
  bytesMapped: number;
  bytesTotal: number;
  /** What the model will be once it is open (known before any session is created). */
  info: ModelInfo;
}

export interface LensModel {
  readonly info: ModelInfo;
  tokenize(text: string): Token[];
  decode(id: number): string;
  lens(prompt: string, options?: LensOptions): Promise<LensResult>;
  /** One padded forward pass for several prompts; each result equals running it alone. */
  lensBatch(requests: LensRequest[]): Promise<Array<LensResult | LensError>>;
  /** [rows, V] float32 logits of normed rows (from onNormed), soft-cap included. */
  logitsOf?(normed: Float32Array, rows: number): Promise<Float32Array>;
  /** Per row KL(a‖b), KL(b‖a) and JS(a, b): a = softmax(logitsA), b = this model's distribution of normedB. */
  divergence?(logitsA: Float32Array, normedB: Float32Array, rows: number): Promise<Divergences>;
  /** Full logits back to JS and reduced there — for benchmarks only. */
  lensNaive(prompt: string, options?: LensOptions): Promise<LensResult>;
  close(): Promise<void>;
}

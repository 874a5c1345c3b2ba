// What the resolvers need from the process that serves them, as interfaces: the server's
// ModelRegistry, ModelScheduler and result stores satisfy them without the GraphQL layer importing
// the server (the layer order in docs/architecture.md).

import type { LensErrorCode, LensModel, LensOptions, LensResult, ModelInfo } from '../src/lens/index.js';

/** The per-model queue lens work goes through (admission control, batching). */
export interface LensQueue {
  run(prompt: string, options?: LensOptions): Promise<LensResult>;
  /** Throws OVERLOADED when the queue is full, before any work is started for a request. */
  assertCapacity(): void;
}

export interface ServedModel {
  readonly model: LensModel;
  readonly scheduler: LensQueue;
}

export type ModelStatus = 'LOADING' | 'READY' | 'FAILED';

/** Why a model failed to load, fit for clients: the code, and the message without server paths. */
export interface ModelLoadError {
  code: LensErrorCode;
  message: string;
}

/** One configured model's load state. */
export interface ModelState {
  readonly id: string;
  readonly status: ModelStatus;
  /** Known once the model's graphs are built (early in LOADING); null if it failed before that. */
  readonly info: ModelInfo | null;
  readonly layersBuilt: number;
  readonly layersTotal: number | null;
  readonly bytesMapped: number;
  readonly bytesTotal: number | null;
  readonly error: ModelLoadError | null;
  /** Epoch ms. */
  readonly startedAt: number;
  readonly finishedAt: number | null;
}

export interface ModelSource {
  /** A READY model; undefined for unknown, LOADING and FAILED ids. */
  get(id: string): ServedModel | undefined;
  /** READY models. */
  list(): ServedModel[];
  /** Load state of one configured model, whatever its status. */
  state(id: string): ModelState | undefined;
  /** Every configured model in configuration order, whatever its status. */
  all(): ModelState[];
  /** Calls `listener` on every status or progress change; returns the unsubscribe function. */
  onChange(listener: (state: ModelState) => void): () => void;
}

export interface StoredResult {
  id: string;
  modelId: string;
  prompt: string;
  createdAt: Date;
  result: LensResult;
  /** Name of the API key that created it; null or absent when the server runs without keys. */
  owner?: string | null;
}

export type EvictionReason = 'bytes' | 'count' | 'ttl' | 'too_large';

export interface ResultStoreStats {
  results: number;
  bytes: number;
  maxBytes: number;
  /** Cumulative, by reason: over the byte budget, over the count cap, expired, larger than the whole budget. */
  evictions: Record<EvictionReason, number>;
}

/** Computed results, fetched again by id. Async so a shared store can serve several replicas. */
export interface ResultStore {
  put(record: StoredResult): Promise<void>;
  /** null when unknown, expired or evicted. */
  get(id: string): Promise<StoredResult | null>;
  /** Size and evictions for /metrics; optional so a store that cannot count cheaply may leave it out. */
  stats?(): ResultStoreStats;
}

export interface GatewayLimits {
  /** Largest top-k a client may ask for (bounds response size independently of vocab). */
  maxTopK: number;
  /** Longest prompt in characters, checked before tokenizing. */
  maxPromptChars: number;
}

export const DEFAULT_LIMITS: GatewayLimits = { maxTopK: 100, maxPromptChars: 20_000 };

export interface GatewayServices {
  registry: ModelSource;
  store: ResultStore;
  limits: GatewayLimits;
}

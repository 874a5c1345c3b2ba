// What the resolvers need from the process that serves them, as interfaces: the server's
// ModelRegistry, ModelScheduler and result stores satisfy them without the GraphQL layer importing
// the server (the layer order in docs/architecture.md).

import type { ComputeDtype, LensErrorCode, LensModel, LensOptions, LensResult, ModelInfo } from '../src/lens/index.js';

/** The per-model queue lens work goes through (admission control, batching), local or cluster-wide. */
export interface LensQueue {
  /**
   * `job.id` becomes the result id where the queue's workers store results themselves; `job.client`
   * (a peer address) gets a fair share of the queue, not all of it. `job.owner` (the API key's name)
   * is stored with the result where the queue's workers store it.
   */
  run(prompt: string, options?: LensOptions, job?: { id: string; cacheKey?: string; client?: string; owner?: string | null }): Promise<LensResult>;
  /** Throws OVERLOADED when the queue (or the client's share of it) is full, before any work is started. */
  assertCapacity(client?: string): void;
  /** True when whoever computed a result stored it (a cluster worker): callers read it back. */
  readonly storesResults?: boolean;
}

/** Where a model runs: this server, or one cluster worker holding it (distributed mode). */
export interface Placement {
  worker: string;
  host: string;
  device: 'cpu' | 'cuda';
  computeType: ComputeDtype;
}

export interface ServedModel {
  readonly model: LensModel;
  readonly scheduler: LensQueue;
  /** Null for a model this process runs; the live workers holding it in distributed mode. */
  placements: Placement[] | null;
  /** sha256 of the checkpoint's bytes; null until known (nothing is cached before). */
  contentHash: string | null;
  /** Identical-request cache lookups answered from the store / computed. */
  readonly cache: { hits: number; misses: number };
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

/** A model that serves already (distributed mode, or known only from a stored result): READY with every layer built. */
export function readyModelState(info: ModelInfo, at = Date.now()): ModelState {
  return {
    id: info.id,
    status: 'READY',
    info,
    layersBuilt: info.numLayers,
    layersTotal: info.numLayers,
    bytesMapped: 0,
    bytesTotal: null,
    error: null,
    startedAt: at,
    finishedAt: at,
  };
}

export interface ModelSource {
  /** A READY model; undefined for unknown, LOADING and FAILED ids. */
  get(id: string): ServedModel | undefined;
  /** A READY model, or one another process serves that this one has not seen yet (distributed mode). */
  discover?(id: string): Promise<ServedModel | undefined>;
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
  /** Identical requests share this key (src/lens/cache-key.ts); absent when the model's hash is unknown. */
  cacheKey?: string;
  /** True on a response answered from the store instead of running the model; never stored. */
  cached?: boolean;
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
  /**
   * null when unknown or evicted (budget); rejects with LensError('RESULT_EXPIRED') when the result
   * was held but its time to live has passed (the store remembers expired ids for a while).
   */
  get(id: string): Promise<StoredResult | null>;
  /** The newest live (unexpired) result stored under this identical-request key, if one is still held. */
  findByCacheKey(key: string): Promise<StoredResult | null>;
  /** Size and evictions for /metrics; optional so a store that cannot count cheaply may leave it out. */
  stats?(): ResultStoreStats;
  close?(): Promise<void>;
}

export interface GatewayLimits {
  /** Largest top-k a client may ask for (bounds response size independently of vocab). */
  maxTopK: number;
  /** Longest prompt in characters, checked before tokenizing. */
  maxPromptChars: number;
  /** Largest response of one operation (estimated JSON bytes; a subscription counts all its events). */
  maxResponseBytes: number;
  /** Most tokens one request may generate (LensInput.generate.maxNewTokens). */
  maxNewTokens: number;
}

export const DEFAULT_LIMITS: GatewayLimits = { maxTopK: 100, maxPromptChars: 20_000, maxResponseBytes: 16 * 2 ** 20, maxNewTokens: 64 };

/** Who is asking, when the server runs with API keys (the key's name; admin keys read any result). */
export interface Caller {
  key: string;
  admin: boolean;
}

export interface GatewayServices {
  registry: ModelSource;
  store: ResultStore;
  limits: GatewayLimits;
}

// What the resolvers need from the process that serves them, as interfaces: the server's
// ModelRegistry, ModelScheduler and result stores satisfy them without the GraphQL layer importing
// the server (the layer order in docs/architecture.md).

import type { LensModel, LensOptions, LensResult } from '../src/lens/index.js';

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

export interface ModelSource {
  get(id: string): ServedModel | undefined;
  list(): ServedModel[];
}

export interface StoredResult {
  id: string;
  modelId: string;
  prompt: string;
  createdAt: Date;
  result: LensResult;
}

/** Computed results, fetched again by id. Async so a shared store can serve several replicas. */
export interface ResultStore {
  put(record: StoredResult): Promise<void>;
  get(id: string): Promise<StoredResult | null>;
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

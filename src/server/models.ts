// The models one gateway process serves, configured by the operator only (never client paths).

import { ModelScheduler, type SchedulerOptions, type SchedulerStats } from './scheduler.js';
import type { ComputeDtype, Device, LensModel, LensOptions, LensResult, QuantizeMode } from '../lens/types.js';
import type { Placement } from '../../resolvers/services.js';

export type { Placement };

export interface ModelSpec {
  id: string;
  dir: string;
  modelType?: string;
  /** Per-model execution provider and compute type; default: the server-wide --device, dtype by device. */
  device?: Device;
  dtype?: ComputeDtype;
  /** Weight-only quantization of the blocks (CPU): int8 or int4; default: the weights as stored. */
  quantize?: QuantizeMode;
}

/** Runs lens jobs for one model: in this process (ModelScheduler) or on the cluster's workers. */
export interface LensScheduler {
  /** `client`: a peer address, held to its share of the queue. */
  assertCapacity(client?: string): void;
  /** `job.id` becomes the result id where the scheduler stores results itself. */
  run(prompt: string, options?: LensOptions, job?: { id: string; cacheKey?: string; client?: string }): Promise<LensResult>;
  getStats(): SchedulerStats;
  close(): void;
  /** True when results are stored by whoever computed them (a cluster worker): callers read them back. */
  readonly storesResults?: boolean;
}

export interface ServedModel {
  readonly model: LensModel;
  readonly scheduler: LensScheduler;
  /** Null for a model this process runs; the live workers holding it in distributed mode. */
  placements: Placement[] | null;
  /** sha256 of the checkpoint's bytes (checkpoint/content-hash.ts); null until known: no caching before. */
  contentHash: string | null;
  /** Identical-request cache lookups answered from the store / computed. */
  readonly cache: { hits: number; misses: number };
}

export type ModelOpener = (
  dir: string,
  options: { id?: string; modelType?: string; device?: Device; dtype?: ComputeDtype; quantize?: QuantizeMode },
) => Promise<LensModel>;

export class ModelRegistry {
  private readonly served = new Map<string, ServedModel>();
  private loading: Promise<void> | null = null;
  private failure: Error | null = null;
  private ready = false;
  /** Content hashes by model id; one may be known before its model is added. */
  private readonly hashes = new Map<string, string>();

  constructor(private readonly schedulerOptions: SchedulerOptions = {}) {}

  /** Adds an already opened model (tests, embedding). */
  add(model: LensModel): ServedModel {
    const id = model.info.id;
    if (this.served.has(id)) throw new Error(`Duplicate model id "${id}"`);
    const entry: ServedModel = {
      model,
      scheduler: new ModelScheduler(model, this.schedulerOptions),
      placements: null,
      contentHash: this.hashes.get(id) ?? null,
      cache: { hits: 0, misses: 0 },
    };
    this.served.set(id, entry);
    return entry;
  }

  /** Opens every spec; /ready turns 200 once all of them are loaded. */
  load(specs: ModelSpec[], open: ModelOpener, device: Device = 'auto'): Promise<void> {
    this.loading = (async () => {
      for (const spec of specs) {
        const model = await open(spec.dir, { id: spec.id, modelType: spec.modelType, device: spec.device ?? device, dtype: spec.dtype, quantize: spec.quantize });
        this.add(model);
      }
      this.ready = true;
    })().catch((err: unknown) => {
      this.failure = err instanceof Error ? err : new Error(String(err));
      throw this.failure;
    });
    return this.loading;
  }

  /** Adds a model that runs elsewhere (distributed mode); its scheduler sends jobs to workers. */
  addServed(entry: ServedModel): void {
    if (this.served.has(entry.model.info.id)) throw new Error(`Duplicate model id "${entry.model.info.id}"`);
    this.served.set(entry.model.info.id, entry);
  }

  /** Turns on identical-request caching for a model once its content hash is known. */
  setContentHash(id: string, hash: string): void {
    this.hashes.set(id, hash);
    const served = this.served.get(id);
    if (served) served.contentHash = hash;
  }

  markReady(): void {
    this.ready = true;
  }

  get isReady(): boolean {
    return this.ready;
  }

  get loadError(): Error | null {
    return this.failure;
  }

  get(id: string): ServedModel | undefined {
    return this.served.get(id);
  }

  list(): ServedModel[] {
    return [...this.served.values()];
  }

  /** Cancels queued and running jobs everywhere; models stay open. */
  cancelAll(): void {
    for (const s of this.served.values()) s.scheduler.close();
  }

  async close(): Promise<void> {
    this.cancelAll();
    await Promise.allSettled([...this.served.values()].map((s) => s.model.close()));
    this.served.clear();
  }
}

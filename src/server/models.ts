// The models one gateway process serves, configured by the operator only (never client paths).
// Each model has its own load state: models that are ready serve while others still load, and a
// model that fails to load is reported (Model.status, /ready?model=id) without stopping the rest.

import { realpathSync } from 'node:fs';
import { LensError, type LensErrorCode } from '../errors.js';
import { ModelScheduler, type SchedulerOptions, type SchedulerStats } from './scheduler.js';
import type { ComputeDtype, Device, LensModel, LensOptions, LensResult, LoadProgress, QuantizeMode } from '../lens/types.js';
import { readyModelState, type ModelLoadError, type ModelSource, type ModelState, type ModelStatus, type Placement } from '../../resolvers/services.js';

export type { ModelLoadError, ModelState, ModelStatus, Placement };

export interface ModelSpec {
  id: string;
  dir: string;
  modelType?: string;
  /** Per-model execution provider and compute type; default: the server-wide --device, dtype by device. */
  device?: Device;
  dtype?: ComputeDtype;
  /** Tuned-lens folder and/or Jacobian lens file (operator-side paths). */
  lenses?: { tuned?: string; jacobian?: string };
  /** Weight-only quantization of the blocks (CPU): int8 or int4; default: the weights as stored. */
  quantize?: QuantizeMode;
}

/** Runs lens jobs for one model: in this process (ModelScheduler) or on the cluster's workers. */
export interface LensScheduler {
  /** `client`: a peer address, held to its share of the queue. */
  assertCapacity(client?: string): void;
  /** `job.id` becomes the result id where the scheduler stores results itself. */
  run(prompt: string, options?: LensOptions, job?: { id: string; cacheKey?: string; client?: string; owner?: string | null }): Promise<LensResult>;
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
  options: {
    id?: string;
    modelType?: string;
    device?: Device;
    dtype?: ComputeDtype;
    lenses?: ModelSpec['lenses'];
    quantize?: QuantizeMode;
    onProgress?: (progress: LoadProgress) => void | Promise<void>;
  },
) => Promise<LensModel>;

export type ModelStateListener = (state: ModelState) => void;

/** Replaces the operator's directories (and any other absolute path) in a load error's message. */
export function publicLoadError(err: unknown, dirs: string[]): ModelLoadError {
  const code: LensErrorCode = err instanceof LensError ? err.code : 'INTERNAL';
  let message = err instanceof Error ? err.message : String(err);
  for (const dir of dirs.filter(Boolean).sort((a, b) => b.length - a.length)) message = message.split(dir).join('<model dir>');
  message = message.replace(/(?<![\w<>])\/(?:[^\s/'"`:,;()]+\/)+([^\s/'"`:,;()]+)/g, (_m, last: string) => `…/${last}`);
  return { code, message };
}

export class ModelRegistry implements ModelSource {
  private readonly served = new Map<string, ServedModel>();
  private readonly states = new Map<string, ModelState>();
  private readonly listeners = new Set<ModelStateListener>();
  private marked = false;
  private closed = false;
  /** Content hashes by model id; one may be known before its model is added. */
  private readonly hashes = new Map<string, string>();
  private discoverer: ((id: string) => Promise<void>) | null = null;

  constructor(private readonly schedulerOptions: SchedulerOptions = {}) {}

  /** Adds an already opened model (tests, embedding). */
  add(model: LensModel): ServedModel {
    const id = model.info.id;
    if (this.served.has(id) || this.states.get(id)?.status === 'READY') throw new Error(`Duplicate model id "${id}"`);
    const entry: ServedModel = {
      model,
      scheduler: new ModelScheduler(model, this.schedulerOptions),
      placements: null,
      contentHash: this.hashes.get(id) ?? null,
      cache: { hits: 0, misses: 0 },
    };
    this.served.set(id, entry);
    const now = Date.now();
    const prev = this.states.get(id);
    this.update({
      id,
      status: 'READY',
      info: model.info,
      layersBuilt: model.info.numLayers,
      layersTotal: model.info.numLayers,
      bytesMapped: prev?.bytesTotal ?? prev?.bytesMapped ?? 0,
      bytesTotal: prev?.bytesTotal ?? null,
      error: null,
      startedAt: prev?.startedAt ?? now,
      finishedAt: now,
    });
    return entry;
  }

  /**
   * Lists every spec as LOADING at once, then opens them one after another (loading in parallel
   * would only split the same cores and disk). Each model serves as soon as it is READY; one that
   * fails is FAILED with its error and the rest go on. Resolves when every model has settled;
   * never rejects.
   */
  async load(specs: ModelSpec[], open: ModelOpener, device: Device = 'auto'): Promise<ModelState[]> {
    for (const spec of specs) {
      if (this.states.has(spec.id)) throw new Error(`Duplicate model id "${spec.id}"`);
      this.update({
        id: spec.id,
        status: 'LOADING',
        info: null,
        layersBuilt: 0,
        layersTotal: null,
        bytesMapped: 0,
        bytesTotal: null,
        error: null,
        startedAt: Date.now(),
        finishedAt: null,
      });
    }
    for (const spec of specs) {
      if (this.closed) {
        this.fail(spec, new LensError('CANCELLED', 'the server shut down before this model loaded'));
        continue;
      }
      this.patch(spec.id, { startedAt: Date.now() });
      try {
        const model = await open(spec.dir, {
          id: spec.id,
          modelType: spec.modelType,
          device: spec.device ?? device,
          dtype: spec.dtype,
          lenses: spec.lenses,
          quantize: spec.quantize,
          onProgress: (p) => {
            // Throwing here makes the core release what it has mapped and give up.
            if (this.closed) throw new LensError('CANCELLED', 'the server shut down while this model loaded');
            this.patch(spec.id, {
              info: p.info,
              layersBuilt: p.layersBuilt,
              layersTotal: p.layers,
              bytesMapped: p.bytesMapped,
              bytesTotal: p.bytesTotal,
            });
          },
        });
        if (this.closed) {
          await model.close();
          throw new LensError('CANCELLED', 'the server shut down while this model loaded');
        }
        this.add(model);
      } catch (err) {
        this.fail(spec, err);
      }
    }
    return specs.map((s) => this.states.get(s.id)!);
  }

  /** Adds a model that runs elsewhere (distributed mode); its scheduler sends jobs to workers. */
  addServed(entry: ServedModel): void {
    const id = entry.model.info.id;
    if (this.served.has(id)) throw new Error(`Duplicate model id "${id}"`);
    this.served.set(id, entry);
    this.update(readyModelState(entry.model.info));
  }

  /** Turns on identical-request caching for a model once its content hash is known. */
  setContentHash(id: string, hash: string): void {
    this.hashes.set(id, hash);
    const served = this.served.get(id);
    if (served) served.contentHash = hash;
  }

  /** Says ready even with no models (tests and embedders that add() models themselves). */
  markReady(): void {
    this.marked = true;
  }

  /** Every configured model is READY. */
  get isReady(): boolean {
    const all = [...this.states.values()];
    return (this.marked || all.length > 0) && all.every((s) => s.status === 'READY');
  }

  /** Load state of one configured model, whatever its status. */
  state(id: string): ModelState | undefined {
    return this.states.get(id);
  }

  /** Every configured model in configuration order, whatever its status. */
  all(): ModelState[] {
    return [...this.states.values()];
  }

  /** Calls `listener` on every status or progress change; returns the unsubscribe function. */
  onChange(listener: ModelStateListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A READY model; undefined for unknown, LOADING and FAILED ids. */
  get(id: string): ServedModel | undefined {
    return this.served.get(id);
  }

  /**
   * A READY model, or one that another process serves and this one has not seen yet (distributed
   * mode: a gateway that started after the model's last worker left still reads its results).
   */
  async discover(id: string): Promise<ServedModel | undefined> {
    const known = this.served.get(id);
    if (known || !this.discoverer) return known;
    await this.discoverer(id);
    return this.served.get(id);
  }

  /** Sets how discover() looks up a model this process has not seen (the cluster gateway). */
  setDiscoverer(discoverer: (id: string) => Promise<void>): void {
    this.discoverer = discoverer;
  }

  /** READY models. */
  list(): ServedModel[] {
    return [...this.served.values()];
  }

  /** Cancels queued and running jobs everywhere; models stay open. */
  cancelAll(): void {
    for (const s of this.served.values()) s.scheduler.close();
  }

  /** Cancels jobs, stops loading (the model being opened is released) and closes every model. */
  async close(): Promise<void> {
    this.closed = true;
    this.cancelAll();
    await Promise.allSettled([...this.served.values()].map((s) => s.model.close()));
    this.served.clear();
  }

  private fail(spec: ModelSpec, err: unknown): void {
    let real = spec.dir;
    try {
      real = realpathSync(spec.dir);
    } catch {
      // A missing directory is itself the error being reported.
    }
    const error = publicLoadError(err, [spec.dir, real]);
    // The operator gets the whole cause; clients get the code and a path-free message.
    if (!(err instanceof LensError && err.code === 'CANCELLED')) {
      console.error(`[lensgate] model ${spec.id} failed to load:`, err instanceof Error ? err.message : err);
    }
    this.patch(spec.id, { status: 'FAILED', error, finishedAt: Date.now() });
  }

  private patch(id: string, change: Partial<ModelState>): void {
    this.update({ ...this.states.get(id)!, ...change });
  }

  private update(state: ModelState): void {
    this.states.set(state.id, state);
    for (const l of this.listeners) {
      try {
        l(state);
      } catch (e) {
        console.error('[lensgate] model state listener failed:', e);
      }
    }
  }
}

// The models one gateway process serves, configured by the operator only (never client paths).

import { ModelScheduler, type SchedulerOptions } from './scheduler.js';
import type { ComputeDtype, Device, LensModel } from '../lens/types.js';

export interface ModelSpec {
  id: string;
  dir: string;
  modelType?: string;
  /** Per-model execution provider and compute type; default: the server-wide --device, dtype by device. */
  device?: Device;
  dtype?: ComputeDtype;
  /** Tuned-lens folder and/or Jacobian lens file (operator-side paths). */
  lenses?: { tuned?: string; jacobian?: string };
}

export interface ServedModel {
  readonly model: LensModel;
  readonly scheduler: ModelScheduler;
}

export type ModelOpener = (
  dir: string,
  options: { id?: string; modelType?: string; device?: Device; dtype?: ComputeDtype; lenses?: ModelSpec['lenses'] },
) => Promise<LensModel>;

export class ModelRegistry {
  private readonly served = new Map<string, ServedModel>();
  private loading: Promise<void> | null = null;
  private failure: Error | null = null;
  private ready = false;

  constructor(private readonly schedulerOptions: SchedulerOptions = {}) {}

  /** Adds an already opened model (tests, embedding). */
  add(model: LensModel): ServedModel {
    const id = model.info.id;
    if (this.served.has(id)) throw new Error(`Duplicate model id "${id}"`);
    const entry = { model, scheduler: new ModelScheduler(model, this.schedulerOptions) };
    this.served.set(id, entry);
    return entry;
  }

  /** Opens every spec; /ready turns 200 once all of them are loaded. */
  load(specs: ModelSpec[], open: ModelOpener, device: Device = 'auto'): Promise<void> {
    this.loading = (async () => {
      for (const spec of specs) {
        const model = await open(spec.dir, { id: spec.id, modelType: spec.modelType, device: spec.device ?? device, dtype: spec.dtype, lenses: spec.lenses });
        this.add(model);
      }
      this.ready = true;
    })().catch((err: unknown) => {
      this.failure = err instanceof Error ? err : new Error(String(err));
      throw this.failure;
    });
    return this.loading;
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

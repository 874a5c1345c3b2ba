// Per-model admission control and request batching.
//
// Concurrent lens requests for one model are folded into one `lensBatch` call (one padded forward
// pass). A DataLoader collects them: its batch is dispatched only after a short window *and* once
// the model is idle, so requests that arrive while a batch is running join the next one instead of
// queueing behind it one by one. The queue is bounded: past `maxQueue` outstanding jobs a request
// fails at once with OVERLOADED rather than waiting an unbounded time.

import DataLoader from 'dataloader';
import { LensError } from '../errors.js';
import type { LensModel, LensOptions, LensResult } from '../lens/types.js';

export interface SchedulerOptions {
  /** Outstanding jobs (waiting + running) allowed before new ones get OVERLOADED. */
  maxQueue?: number;
  /** Most requests folded into one forward pass. */
  maxBatchSize?: number;
  /** How long the first request of a batch waits for company, in ms. */
  batchWindowMs?: number;
}

interface Job {
  prompt: string;
  options: LensOptions;
  enqueuedAt: number;
}

export interface SchedulerStats {
  queued: number;
  running: number;
  batches: number;
  requests: number;
  largestBatch: number;
}

function cancelled(): LensError {
  return new LensError('CANCELLED', 'The lens request was cancelled');
}

export class ModelScheduler {
  readonly maxQueue: number;
  private readonly loader: DataLoader<Job, LensResult>;
  private outstanding = 0;
  private running = 0;
  private idle: Promise<void> = Promise.resolve();
  private closed = false;
  /** Aborts every job's work on close(), whatever its own signal says. */
  private readonly shutdown = new AbortController();
  private readonly stats = { batches: 0, requests: 0, largestBatch: 0 };

  constructor(
    readonly model: LensModel,
    options: SchedulerOptions = {},
  ) {
    this.maxQueue = options.maxQueue ?? 64;
    const windowMs = options.batchWindowMs ?? 2;
    this.loader = new DataLoader<Job, LensResult>((jobs) => this.runBatch(jobs), {
      cache: false,
      maxBatchSize: options.maxBatchSize ?? 8,
      // Dispatching only when the model is free keeps the batch open while the previous one runs.
      batchScheduleFn: (dispatch) => {
        setTimeout(() => void this.idle.then(dispatch), windowMs);
      },
    });
  }

  /** Throws OVERLOADED synchronously when a new job would not be admitted. */
  assertCapacity(): void {
    if (this.closed) throw new LensError('CANCELLED', 'The server is shutting down');
    if (this.outstanding >= this.maxQueue) {
      throw new LensError(
        'OVERLOADED',
        `Model "${this.model.info.id}" has ${this.outstanding} requests in flight (limit ${this.maxQueue}); retry later`,
      );
    }
  }

  /**
   * Runs one lens request, batched with whatever else arrives in the window. Rejects with OVERLOADED
   * immediately when the queue is full, and with CANCELLED as soon as `options.signal` aborts
   * (the model stops that request's work between layers).
   */
  run(prompt: string, options: LensOptions = {}): Promise<LensResult> {
    try {
      this.assertCapacity();
    } catch (err) {
      return Promise.reject(err);
    }
    const callerSignal = options.signal;
    if (callerSignal?.aborted) return Promise.reject(cancelled());
    const signal = callerSignal
      ? AbortSignal.any([callerSignal, this.shutdown.signal])
      : this.shutdown.signal;
    this.outstanding++;
    const job: Job = { prompt, options: { ...options, signal }, enqueuedAt: performance.now() };
    const done = this.loader.load(job).finally(() => {
      this.outstanding--;
    });
    // The caller hears about cancellation at once; the slot frees when the model has let go of it.
    return new Promise<LensResult>((resolve, reject) => {
      const onAbort = () => reject(cancelled());
      signal.addEventListener('abort', onAbort, { once: true });
      done.then(
        (r) => {
          signal.removeEventListener('abort', onAbort);
          resolve(r);
        },
        (e) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        },
      );
    });
  }

  getStats(): SchedulerStats {
    return { queued: this.outstanding - this.running, running: this.running, ...this.stats };
  }

  /** Cancels every waiting and running job; later requests are refused. */
  close(): void {
    this.closed = true;
    this.shutdown.abort();
  }

  private async runBatch(jobs: readonly Job[]): Promise<Array<LensResult | Error>> {
    let release!: () => void;
    const previous = this.idle;
    this.idle = new Promise<void>((r) => (release = r));
    await previous;
    const started = performance.now();
    // Jobs cancelled while they waited never reach the model; the live ones' slots are filled below.
    const live = jobs.flatMap((job, i) => (job.options.signal?.aborted ? [] : [i]));
    const out: Array<LensResult | Error> = jobs.map(() => cancelled());
    this.running = live.length;
    try {
      if (live.length > 0) {
        this.stats.batches++;
        this.stats.requests += live.length;
        this.stats.largestBatch = Math.max(this.stats.largestBatch, live.length);
        const results = await this.model.lensBatch(
          live.map((i) => ({ prompt: jobs[i].prompt, options: jobs[i].options })),
        );
        results.forEach((r, j) => {
          const i = live[j];
          out[i] =
            r instanceof Error
              ? r
              : { ...r, timings: { ...r.timings, queueMs: started - jobs[i].enqueuedAt, batchSize: live.length } };
        });
      }
    } catch (err) {
      const e = err instanceof Error ? err : new LensError('INTERNAL', String(err));
      for (const i of live) out[i] = e;
    } finally {
      this.running = 0;
      release();
    }
    return out;
  }
}

// The gateway's scheduler for a model served by cluster workers. A job goes into the model's
// BullMQ queue (any worker holding the model takes it); its layers come back over Redis pub/sub as
// each is done; the result is read from the shared store. It never waits forever: the job's state
// is watched, a job whose worker died is retried by BullMQ on another worker holding the model
// (layers already sent are not sent twice), and when none is left the client gets UNAVAILABLE.

import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { LensError, type LensOptions, type LensResult } from '../../lens/types.js';
import type { SchedulerStats } from '../scheduler.js';
import type { LensScheduler } from '../models.js';
import type { ResultStore } from '../result-store.js';
import { CANCEL_TOPIC, decodeFailure, JOB_TOPIC, type ClusterPubSub, type JobEvent, type LensJobData } from './protocol.js';

export interface ClusterSchedulerDeps {
  modelId: string;
  queue: Queue<LensJobData>;
  /** For reading a running job's lock. */
  redis: Redis;
  pubsub: ClusterPubSub;
  store: ResultStore;
  /** Live workers holding this model right now (from heartbeats). */
  liveWorkers(): number;
  /** Cluster-wide outstanding jobs allowed for this model. */
  maxQueue: number;
  /** How often a waiting job's state and its workers are checked. */
  watchMs: number;
  /** How long a job may wait with no live worker for its model before it fails. */
  orphanGraceMs: number;
  /** Longest a job may take in all. */
  jobTimeoutMs: number;
}

export class ClusterScheduler implements LensScheduler {
  readonly storesResults = true;
  private depth = { waiting: 0, active: 0 };
  /** Jobs this gateway added since the last count (so bursts are not admitted past the limit). */
  private pendingHere = 0;
  private readonly stats = { requests: 0, batches: 0, largestBatch: 0 };
  private readonly aborts = new Set<AbortController>();
  private closed = false;

  constructor(private readonly deps: ClusterSchedulerDeps) {}

  /** Re-reads the cluster queue depth for this model (all gateways' jobs). */
  async refresh(): Promise<void> {
    const c = await this.deps.queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active');
    this.depth = { waiting: (c.waiting ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0), active: c.active ?? 0 };
    this.pendingHere = 0;
  }

  private outstanding(): number {
    return this.depth.waiting + this.depth.active + this.pendingHere;
  }

  assertCapacity(): void {
    if (this.closed) throw new LensError('CANCELLED', 'The server is shutting down');
    if (this.deps.liveWorkers() === 0) {
      throw new LensError('UNAVAILABLE', `No worker is serving model "${this.deps.modelId}" right now; retry later`);
    }
    if (this.outstanding() >= this.deps.maxQueue) {
      throw new LensError(
        'OVERLOADED',
        `Model "${this.deps.modelId}" has ${this.outstanding()} requests queued or running across the cluster (limit ${this.deps.maxQueue}); retry later`,
      );
    }
  }

  getStats(): SchedulerStats {
    return { queued: this.depth.waiting, running: this.depth.active, ...this.stats };
  }

  close(): void {
    this.closed = true;
    for (const a of this.aborts) a.abort();
  }

  async run(prompt: string, options: LensOptions = {}, job?: { id: string; cacheKey?: string; owner?: string | null }): Promise<LensResult> {
    this.assertCapacity();
    await this.refresh();
    this.assertCapacity();
    const id = job?.id ?? randomUUID();
    const local = new AbortController();
    this.aborts.add(local);
    const signal = options.signal ? AbortSignal.any([options.signal, local.signal]) : local.signal;
    const events = this.deps.pubsub.subscribe(JOB_TOPIC, id)[Symbol.asyncIterator]();
    try {
      await this.subscribed(id, events);
      if (signal.aborted) throw new LensError('CANCELLED', 'The lens request was cancelled');
      const { signal: _s, onLayer: _o, onPosition: _p, onNormed: _n, ...wire } = options;
      this.pendingHere++;
      this.stats.requests++;
      const data: LensJobData = { prompt, options: wire, ...(job?.cacheKey ? { cacheKey: job.cacheKey } : {}), ...(job?.owner ? { owner: job.owner } : {}) };
      await this.deps.queue.add('lens', data, {
        jobId: id,
        removeOnComplete: { age: 600, count: 1000 },
        removeOnFail: { age: 600, count: 1000 },
      });
      await this.follow(id, events, signal, options);
    } finally {
      this.aborts.delete(local);
      void events.return?.();
    }
    const stored = await this.deps.store.get(id);
    if (!stored) throw new LensError('INTERNAL', `job ${id} completed but its result is not in the store`);
    return stored.result;
  }

  /** Publishes pings on the job's channel until one comes back: the subscription is live before the job exists. */
  private async subscribed(id: string, events: AsyncIterator<JobEvent>): Promise<void> {
    const first = events.next();
    for (let i = 0; i < 50; i++) {
      this.deps.pubsub.publish(JOB_TOPIC, id, { type: 'ping' });
      const got = await Promise.race([first.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 100))]);
      if (got) return;
    }
    throw new LensError('UNAVAILABLE', 'Redis pub/sub did not answer');
  }

  private follow(
    id: string,
    events: AsyncIterator<JobEvent>,
    signal: AbortSignal,
    { onLayer, onPosition }: Pick<LensOptions, 'onLayer' | 'onPosition'>,
  ): Promise<void> {
    const { queue, pubsub, watchMs, orphanGraceMs, jobTimeoutMs, liveWorkers } = this.deps;
    const sent = new Set<string>();
    return new Promise<void>((resolve, reject) => {
      let finished = false;
      const started = Date.now();
      let orphanSince: number | null = null;
      const finish = (err: LensError | null) => {
        if (finished) return;
        finished = true;
        clearInterval(watch);
        signal.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const giveUp = async (err: LensError) => {
        // Nobody will run it: take it out of the queue so it cannot run later for no one.
        await queue.remove(id).catch(() => undefined);
        finish(err);
      };
      const onAbort = () => {
        pubsub.publish(CANCEL_TOPIC, id);
        void giveUp(new LensError('CANCELLED', 'The lens request was cancelled'));
      };
      signal.addEventListener('abort', onAbort, { once: true });

      const fromState = async () => {
        const state = await queue.getJobState(id);
        if (state === 'completed') return finish(null);
        if (state === 'failed') {
          const j = await queue.getJob(id);
          const f = decodeFailure(j?.failedReason);
          return finish(
            f
              ? new LensError(f.code, f.message)
              : new LensError('UNAVAILABLE', `The worker running this request stopped and its retry did not finish (${j?.failedReason ?? 'unknown reason'}); retry later`),
          );
        }
        if (state === 'unknown') return finish(new LensError('UNAVAILABLE', 'The request left the queue without a result; retry'));
        // A running job whose lock is still renewed has a live worker, whatever the heartbeats say
        // (a worker busy computing may miss a heartbeat; it never holds a lock once dead).
        const locked = state === 'active' && (await this.deps.redis.exists(queue.toKey(`${id}:lock`))) === 1;
        if (liveWorkers() === 0 && !locked) {
          orphanSince ??= Date.now();
          if (Date.now() - orphanSince > orphanGraceMs) {
            return giveUp(new LensError('UNAVAILABLE', `No worker is serving model "${this.deps.modelId}" any more; retry later`));
          }
        } else orphanSince = null;
        if (Date.now() - started > jobTimeoutMs) return giveUp(new LensError('UNAVAILABLE', `The request did not finish within ${jobTimeoutMs} ms`));
      };
      const watch = setInterval(() => {
        if (!finished) fromState().catch(() => undefined);
      }, watchMs);

      void (async () => {
        for (;;) {
          const next = await events.next();
          if (next.done || finished) return;
          const ev = next.value;
          if (ev.type === 'layer') {
            const key = `${ev.event.point}:${ev.event.layer}`;
            if (sent.has(key)) continue;
            sent.add(key);
            try {
              onLayer?.({ ...ev.event, worker: ev.worker });
            } catch {
              // the listener's failure is the caller's business
            }
          } else if (ev.type === 'position') {
            const key = `${ev.event.point}:p${ev.event.position}`;
            if (sent.has(key)) continue;
            sent.add(key);
            try {
              onPosition?.(ev.event);
            } catch {
              // the listener's failure is the caller's business
            }
          } else if (ev.type === 'completed') finish(null);
          else if (ev.type === 'failed') finish(new LensError(ev.code, ev.message));
        }
      })().catch(() => undefined);
    });
  }
}

// A model worker: takes lens jobs for the models it holds from their BullMQ queues, streams each
// layer to the job's channel as it is done, stores the result in the shared store, and heartbeats
// so gateways know where each model is served. Concurrent jobs of one model are batched by the
// same ModelScheduler a single-process server uses.

import { readFileSync, existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { modelContentHash } from '../../checkpoint/content-hash.js';
import { LensError, type LensModel } from '../../lens/types.js';
import { ModelScheduler, type SchedulerOptions } from '../scheduler.js';
import {
  CANCEL_TOPIC,
  createClusterPubSub,
  encodeFailure,
  JOB_TOPIC,
  type ClusterPubSub,
  type JobEvent,
  type LensJobData,
  type ModelDescriptor,
  type WorkerRecord,
} from './protocol.js';
import { RedisResultStore } from './redis-store.js';
import { connect, keys, queueName } from './redis.js';

export interface ClusterWorkerOptions {
  redisUrl: string;
  /** Opened models and the directories they came from (for the content hash and tokenizer). */
  models: Array<{ model: LensModel; dir: string }>;
  id?: string;
  /** Jobs per model taken at once (they are batched into shared forward passes). Default 8. */
  concurrency?: number;
  /** A job whose worker stops renewing its lock for this long is retried elsewhere. Default 10 s. */
  lockDurationMs?: number;
  /** How often workers look for such jobs. Default 5 s. */
  stalledIntervalMs?: number;
  /** Heartbeat period; a worker silent for 3 periods (at least 5 s) is considered gone. Default 1 s. */
  heartbeatMs?: number;
  storeMaxBytes?: number;
  /** Results older than this are swept when this worker stores one (give gateways the same). */
  resultTtlMs?: number;
  scheduler?: SchedulerOptions;
  log?: (line: string) => void;
}

interface Held {
  model: LensModel;
  scheduler: ModelScheduler;
  worker: Worker<LensJobData>;
  contentHash: string;
}

export class ClusterWorker {
  readonly id: string;
  private readonly held = new Map<string, Held>();
  private readonly running = new Map<string, AbortController>();
  private heartbeat: NodeJS.Timeout | null = null;
  private cancelLoop: Promise<void> | null = null;
  private cancelIterator: AsyncIterator<string> | null = null;
  private closed = false;
  private readonly stats = { completed: 0, failed: 0 };

  private constructor(
    private readonly options: ClusterWorkerOptions,
    private readonly redis: Redis,
    private readonly sub: Redis,
    private readonly pubsub: ClusterPubSub,
    private readonly store: RedisResultStore,
  ) {
    this.id = options.id ?? `${hostname()}:${process.pid}`;
  }

  static async start(options: ClusterWorkerOptions): Promise<ClusterWorker> {
    const redis = connect(options.redisUrl, 'lensgate-worker');
    const sub = connect(options.redisUrl, 'lensgate-worker-sub');
    const pubsub = createClusterPubSub(redis, sub);
    const w = new ClusterWorker(options, redis, sub, pubsub, new RedisResultStore(redis, { maxBytes: options.storeMaxBytes, ttlMs: options.resultTtlMs }));
    try {
      for (const { model, dir } of options.models) await w.hold(model, dir);
      w.listenForCancels();
      await w.beat();
      w.heartbeat = setInterval(() => void w.beat().catch((e: unknown) => w.log(`heartbeat failed: ${String(e)}`)), w.heartbeatMs);
    } catch (err) {
      await w.close();
      throw err;
    }
    return w;
  }

  get heartbeatMs(): number {
    return this.options.heartbeatMs ?? 1000;
  }

  private log(line: string): void {
    (this.options.log ?? console.log)(`lensgate worker ${this.id}: ${line}`);
  }

  private async hold(model: LensModel, dir: string): Promise<void> {
    const info = model.info;
    const contentHash = await modelContentHash(dir, this.store);
    // One model id means one set of weights across the cluster, or cached results would mix them.
    const existing = await this.redis.get(keys.model(info.id));
    if (existing) {
      const other = JSON.parse(existing) as ModelDescriptor;
      if (other.contentHash !== contentHash && (await this.servedElsewhere(info.id))) {
        throw new Error(`model id "${info.id}" is served by other workers with different weights (content hash ${other.contentHash.slice(0, 12)}…, here ${contentHash.slice(0, 12)}…)`);
      }
    }
    const cfg = join(dir, 'tokenizer_config.json');
    const descriptor: ModelDescriptor = {
      info,
      contentHash,
      tokenizerJson: JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')),
      tokenizerConfig: existsSync(cfg) ? JSON.parse(readFileSync(cfg, 'utf8')) : {},
    };
    await this.redis.set(keys.model(info.id), JSON.stringify(descriptor));
    const scheduler = new ModelScheduler(model, this.options.scheduler);
    const worker = new Worker<LensJobData>(queueName(info.id), (job) => this.process(info.id, job), {
      connection: this.redis.duplicate(),
      concurrency: this.options.concurrency ?? 8,
      lockDuration: this.options.lockDurationMs ?? 10_000,
      stalledInterval: this.options.stalledIntervalMs ?? 5_000,
      // A job whose worker died is retried once on another worker; a second death fails it.
      maxStalledCount: 1,
    });
    worker.on('error', (err) => this.log(`queue error: ${err.message}`));
    this.held.set(info.id, { model, scheduler, worker, contentHash });
    this.log(`serving ${info.id} (${info.device}, ${info.computeType}), content hash ${contentHash.slice(0, 12)}…`);
  }

  private async servedElsewhere(modelId: string): Promise<boolean> {
    for (const r of await liveWorkers(this.redis)) {
      if (r.id !== this.id && r.models.some((m) => m.id === modelId)) return true;
    }
    return false;
  }

  private async process(modelId: string, job: Job<LensJobData>): Promise<{ resultId: string }> {
    const held = this.held.get(modelId)!;
    const id = job.id!;
    const attempt = job.attemptsStarted;
    const abort = new AbortController();
    this.running.set(id, abort);
    const publish = (event: JobEvent) => this.pubsub.publish(JOB_TOPIC, id, event);
    publish({ type: 'started', worker: this.id, attempt });
    try {
      const { prompt, options, cacheKey, owner } = job.data;
      const result = await held.scheduler.run(prompt, {
        ...options,
        signal: abort.signal,
        onLayer: (event) => publish({ type: 'layer', worker: this.id, attempt, event }),
        onPosition: (event) => publish({ type: 'position', worker: this.id, attempt, event }),
      });
      // Stored before the job is reported done: a completed result is never lost with its worker.
      await this.store.put({ id, modelId, prompt, createdAt: new Date(), result, owner: owner ?? null, ...(cacheKey ? { cacheKey } : {}) });
      publish({ type: 'completed', worker: this.id });
      this.stats.completed++;
      return { resultId: id };
    } catch (err) {
      const code = err instanceof LensError ? err.code : 'INTERNAL';
      const message = err instanceof Error ? err.message : String(err);
      if (code === 'INTERNAL') this.log(`job ${id} failed: ${message}`);
      publish({ type: 'failed', worker: this.id, code, message });
      this.stats.failed++;
      // Bad input or a cancelled job does not get better on another worker.
      throw new UnrecoverableError(encodeFailure(code, message));
    } finally {
      this.running.delete(id);
    }
  }

  private listenForCancels(): void {
    const it = this.pubsub.subscribe(CANCEL_TOPIC)[Symbol.asyncIterator]();
    this.cancelIterator = it;
    this.cancelLoop = (async () => {
      for (;;) {
        const next = await it.next();
        if (next.done) return;
        this.running.get(next.value)?.abort();
      }
    })();
  }

  private async beat(): Promise<void> {
    const record: WorkerRecord = {
      id: this.id,
      host: hostname(),
      pid: process.pid,
      startedAt: Date.now(),
      models: [...this.held.values()].map((h) => ({
        id: h.model.info.id,
        device: h.model.info.device,
        computeType: h.model.info.computeType,
        contentHash: h.contentHash,
      })),
    };
    // Lenient: a worker whose event loop is busy with a forward pass must not look gone.
    const ttl = Math.max(this.heartbeatMs * 3, 5000);
    await this.redis
      .multi()
      .set(keys.worker(this.id), JSON.stringify(record), 'PX', ttl)
      .zadd(keys.workers, Date.now() + ttl, this.id)
      .exec();
  }

  getStats(): { models: string[]; running: number; completed: number; failed: number } {
    return { models: [...this.held.keys()], running: this.running.size, ...this.stats };
  }

  /** Stops taking jobs, lets running ones finish (BullMQ waits for them), and leaves the cluster. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    await Promise.allSettled([...this.held.values()].map((h) => h.worker.close()));
    await this.redis.multi().del(keys.worker(this.id)).zrem(keys.workers, this.id).exec().catch(() => undefined);
    await this.cancelIterator?.return?.();
    await this.cancelLoop?.catch(() => undefined);
    for (const h of this.held.values()) h.scheduler.close();
    this.redis.disconnect();
    this.sub.disconnect();
  }
}

/** Workers whose heartbeat has not expired. */
export async function liveWorkers(redis: Redis): Promise<WorkerRecord[]> {
  const now = Date.now();
  await redis.zremrangebyscore(keys.workers, '-inf', now);
  const ids = await redis.zrangebyscore(keys.workers, now, '+inf');
  if (ids.length === 0) return [];
  const raw = await redis.mget(ids.map((id) => keys.worker(id)));
  return raw.filter((r): r is string => r !== null).map((r) => JSON.parse(r) as WorkerRecord);
}

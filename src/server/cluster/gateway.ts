// A gateway's view of the cluster: which models the live workers serve and where (from their
// heartbeats), one ClusterScheduler per model, the shared store, and the queue depths that
// OVERLOADED and /metrics report.

import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ModelRegistry, Placement, ServedModel } from '../models.js';
import { ClusterScheduler } from './cluster-scheduler.js';
import { createClusterPubSub, type ClusterPubSub, type LensJobData, type ModelDescriptor } from './protocol.js';
import { RedisResultStore } from './redis-store.js';
import { connect, keys, queueName } from './redis.js';
import { RemoteLensModel } from './remote-model.js';
import { liveWorkers } from './worker.js';

export interface ClusterGatewayOptions {
  redisUrl: string;
  registry: ModelRegistry;
  /** Cluster-wide outstanding jobs per model before OVERLOADED. Default 64. */
  maxQueue?: number;
  /** How often workers and queue depths are re-read. Default 1000 ms. */
  refreshMs?: number;
  /** How often a running job's state is checked. Default 500 ms. */
  watchMs?: number;
  /** A job with no live worker for its model fails after this long. Default 3000 ms. */
  orphanGraceMs?: number;
  jobTimeoutMs?: number;
  storeMaxBytes?: number;
  /** Results older than this are RESULT_EXPIRED (give workers the same); default: kept until the budget evicts them. */
  resultTtlMs?: number;
  log?: (line: string) => void;
}

export class ClusterGateway {
  readonly store: RedisResultStore;
  private readonly pubsub: ClusterPubSub;
  private readonly queues = new Map<string, Queue<LensJobData>>();
  private readonly schedulers = new Map<string, ClusterScheduler>();
  private timer: NodeJS.Timeout | null = null;
  private refreshing: Promise<void> | null = null;
  private readonly looking = new Map<string, Promise<ServedModel | undefined>>();

  private constructor(
    private readonly options: ClusterGatewayOptions,
    private readonly redis: Redis,
    private readonly sub: Redis,
  ) {
    this.pubsub = createClusterPubSub(redis, sub);
    this.store = new RedisResultStore(redis, { maxBytes: options.storeMaxBytes, ttlMs: options.resultTtlMs });
  }

  /** Connects and reads the cluster once (so /ready and Query.models are right from the start). */
  static async start(options: ClusterGatewayOptions): Promise<ClusterGateway> {
    const g = new ClusterGateway(options, connect(options.redisUrl, 'lensgate-gateway'), connect(options.redisUrl, 'lensgate-gateway-sub'));
    options.registry.setDiscoverer(async (id) => void (await g.known(id)));
    await g.refresh();
    g.timer = setInterval(() => void g.refresh().catch((e: unknown) => g.log(`cluster refresh failed: ${String(e)}`)), options.refreshMs ?? 1000);
    return g;
  }

  private log(line: string): void {
    (this.options.log ?? console.log)(`lensgate: ${line}`);
  }

  refresh(): Promise<void> {
    this.refreshing ??= this.readCluster().finally(() => (this.refreshing = null));
    return this.refreshing;
  }

  private async readCluster(): Promise<void> {
    const placements = new Map<string, Placement[]>();
    const hashes = new Map<string, string>();
    for (const w of await liveWorkers(this.redis)) {
      for (const m of w.models) {
        const list = placements.get(m.id) ?? [];
        list.push({ worker: w.id, host: w.host, device: m.device, computeType: m.computeType });
        placements.set(m.id, list);
        hashes.set(m.id, m.contentHash);
      }
    }
    for (const [id, list] of placements) {
      const served = await this.known(id);
      if (!served) continue;
      served.placements = list;
      // Workers restarted with new weights: the cache must not answer with the old ones' results.
      served.contentHash = hashes.get(id) ?? served.contentHash;
    }
    for (const served of this.options.registry.list()) {
      if (served.placements && !placements.has(served.model.info.id)) served.placements = [];
    }
    await Promise.all([...this.schedulers.values()].map((s) => s.refresh().catch(() => undefined)));
  }

  /**
   * The registry's entry for a model any worker ever announced (its descriptor stays in Redis after
   * the worker leaves), created on first sight; one lookup at a time per id.
   */
  private known(id: string): Promise<ServedModel | undefined> {
    const served = this.options.registry.get(id);
    if (served) return Promise.resolve(served);
    let pending = this.looking.get(id);
    if (!pending) {
      pending = this.redis
        .get(keys.model(id))
        .then((raw) => {
          if (!raw) return undefined;
          const entry = this.options.registry.get(id) ?? this.serve(JSON.parse(raw) as ModelDescriptor);
          this.log(`cluster knows ${id}`);
          return entry;
        })
        .finally(() => this.looking.delete(id));
      this.looking.set(id, pending);
    }
    return pending;
  }

  private serve(descriptor: ModelDescriptor): ServedModel {
    const id = descriptor.info.id;
    const queue = new Queue<LensJobData>(queueName(id), { connection: this.redis.duplicate() });
    this.queues.set(id, queue);
    let entry: ServedModel;
    const scheduler = new ClusterScheduler({
      modelId: id,
      queue,
      redis: this.redis,
      pubsub: this.pubsub,
      store: this.store,
      liveWorkers: () => entry.placements?.length ?? 0,
      maxQueue: this.options.maxQueue ?? 64,
      watchMs: this.options.watchMs ?? 500,
      orphanGraceMs: this.options.orphanGraceMs ?? 3000,
      jobTimeoutMs: this.options.jobTimeoutMs ?? 10 * 60_000,
    });
    this.schedulers.set(id, scheduler);
    entry = {
      model: new RemoteLensModel(descriptor),
      scheduler,
      placements: [],
      contentHash: descriptor.contentHash,
      cache: { hits: 0, misses: 0 },
    };
    this.options.registry.addServed(entry);
    return entry;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.refreshing?.catch(() => undefined);
    for (const s of this.schedulers.values()) s.close();
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
    this.redis.disconnect();
    this.sub.disconnect();
  }
}

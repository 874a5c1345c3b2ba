// Redis connections and key names of the distributed mode (`--redis redis://…`).

import { Redis } from 'ioredis';

/** Every key and channel lensgate uses starts with this, so one Redis can hold other data too. */
export const PREFIX = 'lensgate';

export const keys = {
  result: (id: string) => `${PREFIX}:result:${id}`,
  resultsByAge: `${PREFIX}:results:by-age`,
  resultBytes: `${PREFIX}:results:bytes`,
  /** Marker of a result that expired (kept a week, so a late link says RESULT_EXPIRED, not "unknown"). */
  expired: (id: string) => `${PREFIX}:expired:${id}`,
  cache: (key: string) => `${PREFIX}:cache:${key}`,
  digests: `${PREFIX}:file-digests`,
  /** ZSET worker id → expiry (ms epoch); the worker's record lives under worker(id) with a TTL. */
  workers: `${PREFIX}:workers`,
  worker: (id: string) => `${PREFIX}:worker:${id}`,
  /** What a gateway needs to serve a model without loading it: info, content hash, tokenizer. */
  model: (id: string) => `${PREFIX}:model:${id}`,
};

/** BullMQ queue of one model's lens jobs (queue names may not contain ':'). */
export const queueName = (modelId: string) => `lens-${modelId}`;

/** BullMQ needs maxRetriesPerRequest: null on the connections it blocks on. */
export function connect(url: string, name: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, connectionName: name, lazyConnect: false });
}

export async function ping(url: string): Promise<void> {
  const r = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true, connectTimeout: 3000, retryStrategy: () => null });
  try {
    await r.connect();
    await r.ping();
  } finally {
    r.disconnect();
  }
}

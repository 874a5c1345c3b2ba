// The shared result store of the distributed mode: every gateway reads what any worker stored.
// Redis rather than PostgreSQL: the cluster already needs Redis for the job queue and the per-layer
// pub/sub, results are write-once blobs read by key (no relational queries), and the byte budget
// with oldest-first eviction is one atomic script. Durability is Redis's own (appendonly yes in
// deploy/): a result is acknowledged by Redis before the worker reports the job done.

import type { Redis } from 'ioredis';
import type { DigestMemo } from '../../checkpoint/content-hash.js';
import { deserializeResult, serializeResult, type ResultStore, type StoredResult } from '../result-store.js';
import { keys } from './redis.js';

// KEYS: result, by-age, bytes, cache(or ''); ARGV: id, body, createdAt, maxBytes, resultPrefix.
// Stores, then deletes the oldest results until the budget holds (never the one just stored).
const PUT_AND_EVICT = `
local old = redis.call('STRLEN', KEYS[1])
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local total = redis.call('INCRBY', KEYS[3], string.len(ARGV[2]) - old)
if KEYS[4] ~= '' then redis.call('SET', KEYS[4], ARGV[1]) end
local max = tonumber(ARGV[4])
while total > max do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if (not oldest) or oldest == ARGV[1] then break end
  local k = ARGV[5] .. oldest
  total = redis.call('DECRBY', KEYS[3], redis.call('STRLEN', k))
  redis.call('DEL', k)
  redis.call('ZREM', KEYS[2], oldest)
end
return total
`;

export class RedisResultStore implements ResultStore, DigestMemo {
  constructor(
    private readonly redis: Redis,
    private readonly maxBytes = 1024 ** 3,
  ) {}

  async put(record: StoredResult): Promise<void> {
    await this.redis.eval(
      PUT_AND_EVICT,
      4,
      keys.result(record.id),
      keys.resultsByAge,
      keys.resultBytes,
      record.cacheKey ? keys.cache(record.cacheKey) : '',
      record.id,
      serializeResult(record),
      record.createdAt.getTime(),
      this.maxBytes,
      keys.result(''),
    );
  }

  async get(id: string): Promise<StoredResult | null> {
    const text = await this.redis.get(keys.result(id));
    return text ? deserializeResult(text) : null;
  }

  async findByCacheKey(key: string): Promise<StoredResult | null> {
    const id = await this.redis.get(keys.cache(key));
    return id ? this.get(id) : null;
  }

  getDigest(key: string): Promise<string | null> {
    return this.redis.hget(keys.digests, key);
  }

  async setDigest(key: string, digest: string): Promise<void> {
    await this.redis.hset(keys.digests, key, digest);
  }
}

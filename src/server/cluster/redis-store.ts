// The shared result store of the distributed mode: every gateway reads what any worker stored.
// Redis rather than PostgreSQL: the cluster already needs Redis for the job queue and the per-layer
// pub/sub, results are write-once blobs read by key (no relational queries), and the byte budget
// with oldest-first eviction is one atomic script. Durability is Redis's own (appendonly yes in
// deploy/): a result is acknowledged by Redis before the worker reports the job done.
//
// Time to live: results are kept ttlMs after they were stored (by-age holds the store time). It is
// enforced by whoever touches the store — every put sweeps what has expired, every get checks its
// own id — rather than by Redis key expiry, so the byte counter stays exact. An expired id leaves a
// marker for a week, so a late link gets RESULT_EXPIRED instead of "unknown". Give gateways and
// workers the same --result-ttl-s; the shorter one wins.

import type { Redis } from 'ioredis';
import type { DigestMemo } from '../../checkpoint/content-hash.js';
import { deserializeResult, expiredError, serializeResult, type ResultStore, type StoredResult } from '../result-store.js';
import { keys } from './redis.js';

const EXPIRED_MARK_MS = 7 * 24 * 3600 * 1000;

// Drops every result stored at or before ARGV cutoff (by-age is ordered by store time), leaving a
// marker per id. Shared by both scripts: KEYS[2] = by-age, KEYS[3] = bytes; prefixes in ARGV.
const SWEEP = `
local function sweep(cutoff, resultPrefix, expiredPrefix, markMs)
  if cutoff < 0 then return end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', cutoff)) do
    local k = resultPrefix .. id
    redis.call('DECRBY', KEYS[3], redis.call('STRLEN', k))
    redis.call('DEL', k)
    redis.call('ZREM', KEYS[2], id)
    redis.call('SET', expiredPrefix .. id, '1', 'PX', markMs)
  end
end
`;

// KEYS: result, by-age, bytes, cache(or ''); ARGV: id, body, storedAt, maxBytes, resultPrefix,
// expiredPrefix, ttl cutoff (storedAt − ttl, or −1 without a TTL), marker ms.
// Sweeps expired results, stores, then deletes the oldest results until the budget holds (never the
// one just stored).
const PUT_AND_EVICT = `${SWEEP}
sweep(tonumber(ARGV[7]), ARGV[5], ARGV[6], ARGV[8])
local old = redis.call('STRLEN', KEYS[1])
redis.call('SET', KEYS[1], ARGV[2])
redis.call('DEL', ARGV[6] .. ARGV[1])
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

// KEYS: result, by-age, bytes, expired marker; ARGV: id, ttl cutoff (now − ttl, or −1), resultPrefix,
// expiredPrefix, marker ms. Returns the body, or 1 when expired, or nil when unknown.
const GET_LIVE = `${SWEEP}
local at = redis.call('ZSCORE', KEYS[2], ARGV[1])
if at and tonumber(ARGV[2]) >= 0 and tonumber(at) <= tonumber(ARGV[2]) then
  sweep(tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5])
  return 1
end
local body = redis.call('GET', KEYS[1])
if body then return body end
if redis.call('EXISTS', KEYS[4]) == 1 then return 1 end
return nil
`;

export interface RedisStoreOptions {
  /** Total size of stored results; the oldest are deleted past it. Default 1 GiB. */
  maxBytes?: number;
  /** How long a result is kept after it was stored; default: until the byte budget evicts it. */
  ttlMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

export class RedisResultStore implements ResultStore, DigestMemo {
  private readonly maxBytes: number;
  private readonly ttlMs: number | null;
  private readonly now: () => number;

  constructor(
    private readonly redis: Redis,
    options: RedisStoreOptions = {},
  ) {
    this.maxBytes = options.maxBytes ?? 1024 ** 3;
    this.ttlMs = options.ttlMs ?? null;
    this.now = options.now ?? Date.now;
  }

  private cutoff(now: number): number {
    return this.ttlMs === null ? -1 : now - this.ttlMs;
  }

  async put(record: StoredResult): Promise<void> {
    const body = await serializeResult(record);
    const now = this.now();
    await this.redis.eval(
      PUT_AND_EVICT,
      4,
      keys.result(record.id),
      keys.resultsByAge,
      keys.resultBytes,
      record.cacheKey ? keys.cache(record.cacheKey) : '',
      record.id,
      body,
      now,
      this.maxBytes,
      keys.result(''),
      keys.expired(''),
      this.cutoff(now),
      EXPIRED_MARK_MS,
    );
  }

  async get(id: string): Promise<StoredResult | null> {
    const got = (await this.redis.eval(
      GET_LIVE,
      4,
      keys.result(id),
      keys.resultsByAge,
      keys.resultBytes,
      keys.expired(id),
      id,
      this.cutoff(this.now()),
      keys.result(''),
      keys.expired(''),
      EXPIRED_MARK_MS,
    )) as string | number | null;
    if (got === 1) throw expiredError(id);
    return typeof got === 'string' ? deserializeResult(got) : null;
  }

  async findByCacheKey(key: string): Promise<StoredResult | null> {
    const id = await this.redis.get(keys.cache(key));
    // An expired result is no answer: the request runs again.
    return id ? this.get(id).catch(() => null) : null;
  }

  getDigest(key: string): Promise<string | null> {
    return this.redis.hget(keys.digests, key);
  }

  async setDigest(key: string, digest: string): Promise<void> {
    await this.redis.hset(keys.digests, key, digest);
  }
}

// Where computed lens results live so they can be fetched again by id. The ResultStore contract
// (resolvers/services.ts) is async so a persistent or shared store (SQLite, Redis) can replace the
// in-memory one; a result may vanish (budget, time-to-live), and `owner` is kept with it so the
// resolver shows it only to the API key that created it.

import type { EvictionReason, ResultStore, ResultStoreStats, StoredResult } from '../../resolvers/services.js';
import { LensError } from '../errors.js';
import { stringifyInTurns } from './json-in-turns.js';
import { packedBytes, packResult, unpackResult, type PackedResult } from './packed-result.js';

export type { EvictionReason, ResultStore, ResultStoreStats, StoredResult };

export interface MemoryStoreOptions {
  /** Budget for all kept results, in bytes of their packed form (default 256 MiB). */
  maxBytes?: number;
  /** How long a result is kept after it was computed (default 1 h). */
  ttlMs?: number;
  /** Upper bound on the number of results, however small (default 10 000). */
  maxResults?: number;
  /** Clock, for tests. */
  now?: () => number;
}

export const DEFAULT_STORE_BYTES = 256 * 2 ** 20;
export const DEFAULT_RESULT_TTL_MS = 60 * 60 * 1000;
/** How many expired ids a store remembers, to answer RESULT_EXPIRED rather than "unknown". */
export const EXPIRED_IDS_KEPT = 100_000;

export function expiredError(id: string): LensError {
  return new LensError('RESULT_EXPIRED', `Result ${id} has expired: the store keeps results for a limited time (--result-ttl-s); run the request again`);
}

/** Ids whose results expired, oldest forgotten first. */
export class ExpiredIds {
  private readonly ids = new Set<string>();
  constructor(private readonly max = EXPIRED_IDS_KEPT) {}
  add(id: string): void {
    this.ids.delete(id);
    this.ids.add(id);
    if (this.ids.size > this.max) this.ids.delete(this.ids.values().next().value as string);
  }
  has(id: string): boolean {
    return this.ids.has(id);
  }
  delete(id: string): void {
    this.ids.delete(id);
  }
}

interface Entry {
  record: Omit<StoredResult, 'result'>;
  packed: PackedResult;
  bytes: number;
  expiresAt: number;
}

/** Results packed into typed arrays; oldest evicted first when the byte or count budget is reached. */
export class MemoryResultStore implements ResultStore {
  private readonly entries = new Map<string, Entry>();
  private readonly byCacheKey = new Map<string, string>();
  private bytes = 0;
  private readonly evictions: Record<EvictionReason, number> = { bytes: 0, count: 0, ttl: 0, too_large: 0 };
  private readonly expired = new ExpiredIds();
  readonly maxBytes: number;
  readonly ttlMs: number;
  readonly maxResults: number;
  private readonly now: () => number;

  constructor(options: MemoryStoreOptions = {}) {
    this.maxBytes = options.maxBytes ?? DEFAULT_STORE_BYTES;
    this.ttlMs = options.ttlMs ?? DEFAULT_RESULT_TTL_MS;
    this.maxResults = options.maxResults ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  async put(stored: StoredResult): Promise<void> {
    const { result, cached: _cached, ...record } = stored;
    const packed = await packResult(result);
    const bytes = packedBytes(packed, record.prompt);
    this.remove(record.id);
    this.expired.delete(record.id);
    this.sweep();
    if (bytes > this.maxBytes) {
      this.evictions.too_large++;
      return;
    }
    this.entries.set(record.id, { record, packed, bytes, expiresAt: this.now() + this.ttlMs });
    if (record.cacheKey) this.byCacheKey.set(record.cacheKey, record.id);
    this.bytes += bytes;
    // Map order is insertion order, so the first key is always the oldest result.
    while (this.bytes > this.maxBytes || this.entries.size > this.maxResults) {
      this.evictions[this.bytes > this.maxBytes ? 'bytes' : 'count']++;
      this.remove(this.entries.keys().next().value as string);
    }
  }

  async get(id: string): Promise<StoredResult | null> {
    const entry = this.entries.get(id);
    if (!entry) {
      if (this.expired.has(id)) throw expiredError(id);
      return null;
    }
    if (entry.expiresAt <= this.now()) {
      this.expire(id);
      throw expiredError(id);
    }
    return { ...entry.record, result: await unpackResult(entry.packed) };
  }

  private expire(id: string): void {
    this.remove(id);
    this.expired.add(id);
    this.evictions.ttl++;
  }

  stats(): ResultStoreStats {
    this.sweep();
    return { results: this.entries.size, bytes: this.bytes, maxBytes: this.maxBytes, evictions: { ...this.evictions } };
  }

  get size(): number {
    return this.entries.size;
  }

  /** Drops expired results from the front (all results share one TTL, so they expire in order). */
  private sweep(): void {
    const now = this.now();
    for (const [id, entry] of this.entries) {
      if (entry.expiresAt > now) break;
      this.expire(id);
    }
  }

  async findByCacheKey(key: string): Promise<StoredResult | null> {
    const id = this.byCacheKey.get(key);
    // An expired result is no answer: the request runs again.
    return id ? this.get(id).catch(() => null) : null;
  }

  private remove(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    this.bytes -= entry.bytes;
    const key = entry.record.cacheKey;
    if (key && this.byCacheKey.get(key) === id) this.byCacheKey.delete(key);
  }
}

/**
 * The persisted form (SQLite, Redis): the whole record but the per-response `cached` flag, dates as
 * epoch ms. Serialized in event-loop turns: a large result's JSON is several MB.
 */
export function serializeResult(record: StoredResult): Promise<string> {
  const { cached: _cached, ...rest } = record;
  return stringifyInTurns({ ...rest, createdAt: record.createdAt.getTime() });
}

export function deserializeResult(text: string): StoredResult {
  const raw = JSON.parse(text) as Omit<StoredResult, 'createdAt'> & { createdAt: number };
  return { ...raw, createdAt: new Date(raw.createdAt) };
}

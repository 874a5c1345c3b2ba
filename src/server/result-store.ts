// Where computed lens results live so they can be fetched again by id, and found again by the
// identical-request cache key. Implementations: memory (--store memory), a SQLite file (the
// default, sqlite-store.ts) and Redis (distributed mode, redis-store.ts).

import type { LensResult } from '../lens/types.js';

export interface StoredResult {
  id: string;
  modelId: string;
  prompt: string;
  createdAt: Date;
  result: LensResult;
  /** Identical requests share this key (see cache-key.ts); absent when the model's hash is unknown. */
  cacheKey?: string;
  /** True on a response answered from the store instead of running the model; never stored. */
  cached?: boolean;
}

export interface ResultStore {
  put(record: StoredResult): Promise<void>;
  get(id: string): Promise<StoredResult | null>;
  /** The newest result stored under this cache key, if any is still held. */
  findByCacheKey(key: string): Promise<StoredResult | null>;
  close?(): Promise<void>;
}

/** The stored form: everything but the per-response `cached` flag, dates as epoch ms. */
export function serializeResult(record: StoredResult): string {
  const { cached: _cached, ...rest } = record;
  return JSON.stringify({ ...rest, createdAt: record.createdAt.getTime() });
}

export function deserializeResult(text: string): StoredResult {
  const raw = JSON.parse(text) as Omit<StoredResult, 'createdAt'> & { createdAt: number };
  return { ...raw, createdAt: new Date(raw.createdAt) };
}

/** Bounded, least-recently-stored eviction so a long-running server does not grow without limit. */
export class MemoryResultStore implements ResultStore {
  private readonly records = new Map<string, StoredResult>();
  private readonly byKey = new Map<string, string>();

  constructor(private readonly capacity = 1000) {}

  async put(record: StoredResult): Promise<void> {
    const { cached: _cached, ...kept } = record;
    this.records.delete(record.id);
    this.records.set(record.id, kept);
    if (record.cacheKey) this.byKey.set(record.cacheKey, record.id);
    while (this.records.size > this.capacity) {
      const oldest = this.records.keys().next().value as string;
      const evicted = this.records.get(oldest);
      if (evicted?.cacheKey && this.byKey.get(evicted.cacheKey) === oldest) this.byKey.delete(evicted.cacheKey);
      this.records.delete(oldest);
    }
  }

  async get(id: string): Promise<StoredResult | null> {
    return this.records.get(id) ?? null;
  }

  async findByCacheKey(key: string): Promise<StoredResult | null> {
    const id = this.byKey.get(key);
    return id ? (this.records.get(id) ?? null) : null;
  }

  get size(): number {
    return this.records.size;
  }
}

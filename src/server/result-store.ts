// Where computed lens results live so they can be fetched again by id. In memory for now; the
// interface is async so a shared store (PostgreSQL, Redis) can replace it for several replicas.

import type { LensResult } from '../lens/types.js';

export interface StoredResult {
  id: string;
  modelId: string;
  prompt: string;
  createdAt: Date;
  result: LensResult;
}

export interface ResultStore {
  put(record: StoredResult): Promise<void>;
  get(id: string): Promise<StoredResult | null>;
}

/** Bounded, least-recently-stored eviction so a long-running server does not grow without limit. */
export class MemoryResultStore implements ResultStore {
  private readonly records = new Map<string, StoredResult>();

  constructor(private readonly capacity = 1000) {}

  async put(record: StoredResult): Promise<void> {
    this.records.delete(record.id);
    this.records.set(record.id, record);
    while (this.records.size > this.capacity) {
      const oldest = this.records.keys().next().value as string;
      this.records.delete(oldest);
    }
  }

  async get(id: string): Promise<StoredResult | null> {
    return this.records.get(id) ?? null;
  }

  get size(): number {
    return this.records.size;
  }
}

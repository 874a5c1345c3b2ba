// Where computed lens results live so they can be fetched again by id. In memory for now; the
// interface (resolvers/services.ts) is async so a shared store can replace it for several replicas.

import type { ResultStore, StoredResult } from '../../resolvers/services.js';

export type { ResultStore, StoredResult };

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

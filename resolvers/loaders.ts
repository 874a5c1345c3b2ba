// Per-request DataLoaders: several fields asking for the same stored result or the same
// tokenization within one operation share one lookup. (Cross-request batching of lens work is the
// scheduler's job, in src/server/scheduler.ts.)

import DataLoader from 'dataloader';
import type { Token } from '../src/lens/types.js';
import type { StoredResult } from './services.js';
import type { GatewayServices } from './services.js';

export interface Loaders {
  result: DataLoader<string, StoredResult | null>;
  tokens: DataLoader<{ model: string; text: string }, Token[], string>;
}

export function createLoaders({ store, registry }: GatewayServices): Loaders {
  return {
    // An Error in the array fails only its own key (an expired result), not the whole batch.
    result: new DataLoader((ids) => Promise.all(ids.map((id) => store.get(id).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))))))),
    tokens: new DataLoader(
      async (keys) =>
        keys.map(({ model, text }) => {
          const served = registry.get(model);
          if (!served) return new Error(`unknown model ${model}`);
          return served.model.tokenize(text);
        }),
      { cacheKeyFn: ({ model, text }) => `${model}\u0000${text}` },
    ),
  };
}

// The one path from a validated request to a stored result, shared by Query.lens and
// Subscription.lensLayers: an identical earlier request answers from the store, anything else runs
// through the model's queue (here or on cluster workers) and is stored.

import { randomUUID } from 'node:crypto';
import type { LayerEvent, LensOptions, LensPoint, LensReadout, LensResult, PositionEvent } from '../src/lens/types.js';
import { lensCacheKey } from '../src/lens/cache-key.js';
import type { GatewayContext } from './context.js';
import { gatewayError, toGraphQLError } from './errors.js';
import type { ValidLensRequest } from './lens-input.js';
import type { StoredResult } from './services.js';

export interface CacheLookup {
  /** Null while the model's content hash is not known yet: then nothing is cached. */
  key: string | null;
  hit: StoredResult | null;
}

/** An earlier identical request's stored result, marked `cached`, and the key to store a new one under. */
export async function lookupCache(ctx: GatewayContext, req: ValidLensRequest): Promise<CacheLookup> {
  const { served } = req;
  if (!served.contentHash) return { key: null, hit: null };
  const info = served.model.info;
  const key = lensCacheKey(
    { modelId: info.id, contentHash: served.contentHash, computeType: info.computeType, lenses: info.lenses, quantization: info.quantization },
    req.prompt,
    req.options,
  );
  const found = await ctx.store.findByCacheKey(scopedCacheKey(ctx, key));
  // With API keys, another key's result is not this caller's to read: compute its own.
  const hit = found && !visibleTo(ctx, found) ? null : found;
  if (hit) served.cache.hits++;
  else served.cache.misses++;
  return { key: scopedCacheKey(ctx, key), hit: hit ? { ...hit, cached: true } : null };
}

/**
 * With API keys on, each key has its own cache entries: the store keeps one result per cache key,
 * so a shared key would let one key's request replace another's entry (and never answer it).
 */
function scopedCacheKey(ctx: GatewayContext, key: string): string {
  return ctx.caller ? `${key}@${ctx.caller.key}` : key;
}

/** With API keys on, a result is visible to the key that created it and to admin keys only. */
export function visibleTo(ctx: GatewayContext, stored: StoredResult): boolean {
  if (!ctx.caller || ctx.caller.admin) return true;
  return stored.owner === ctx.caller.key;
}

export type ReplayEvent = { kind: 'layer'; event: LayerEvent } | { kind: 'position'; event: PositionEvent };

/**
 * The events a live run would have sent, rebuilt from a stored result in the live order: per layer
 * (residual-stream order: attention output, then block output) over the prompt positions; then, for
 * a generated result, one column per written position and read point (block output first), as the
 * engine's generation loop sends them.
 */
export function replayEvents(r: LensResult): ReplayEvent[] {
  const promptLen = r.generation ? r.tokens.filter((t) => !t.generated).length : r.tokens.length;
  const reads: Array<[LensPoint, LensReadout]> = [[r.point, r], ...(r.attention ? [['ATTENTION_OUTPUT', r.attention] as [LensPoint, LensReadout]] : [])];
  const events: ReplayEvent[] = [];
  r.layers.forEach((layer, index) => {
    for (const [point, read] of [...reads].reverse()) {
      const event = { layer, index, count: r.layers.length, point, topIndices: read.topIndices[index], topProbs: read.topProbs[index] };
      events.push({ kind: 'layer', event: promptLen < r.tokens.length ? promptRows(event, promptLen) : event });
    }
  });
  for (const token of r.tokens.slice(promptLen)) {
    const { position } = token;
    for (const [point, read] of reads) {
      events.push({
        kind: 'position',
        event: {
          position,
          token: { ...token, generated: true },
          point,
          topIndices: read.topIndices.map((rows) => rows[position]),
          topProbs: read.topProbs.map((rows) => rows[position]),
        },
      });
    }
  }
  return events;
}

function promptRows(e: LayerEvent, promptLen: number): LayerEvent {
  return { ...e, topIndices: e.topIndices.slice(0, promptLen), topProbs: e.topProbs.slice(0, promptLen) };
}

/** Answers from the cache when an identical request is stored, else runs the request and stores the result. */
export async function computeLens(
  ctx: GatewayContext,
  req: ValidLensRequest,
  extra: {
    id?: string;
    signal?: AbortSignal;
    onLayer?: LensOptions['onLayer'];
    onPosition?: LensOptions['onPosition'];
    onNormed?: LensOptions['onNormed'];
    cache?: CacheLookup;
  } = {},
): Promise<StoredResult> {
  // Normed rows (lensCompare) exist only in a live run, so those requests never answer from the cache.
  const cache: CacheLookup = extra.onNormed ? { key: null, hit: null } : (extra.cache ?? (await lookupCache(ctx, req)));
  if (cache.hit) return cache.hit;
  const id = extra.id ?? randomUUID();
  const { scheduler } = req.served;
  let result: LensResult;
  try {
    result = await scheduler.run(
      req.prompt,
      { ...req.options, signal: extra.signal, onLayer: extra.onLayer, onPosition: extra.onPosition, onNormed: extra.onNormed },
      { id, client: ctx.client, owner: ctx.caller?.key ?? null, ...(cache.key ? { cacheKey: cache.key } : {}) },
    );
  } catch (err) {
    throw toGraphQLError(err);
  }
  if (scheduler.storesResults) {
    // A cluster worker stored it before reporting the job done.
    const stored = await ctx.store.get(id);
    if (!stored) throw gatewayError('INTERNAL', `result ${id} was computed but is not in the store`);
    return stored;
  }
  const stored: StoredResult = {
    id,
    modelId: req.served.model.info.id,
    prompt: req.prompt,
    createdAt: new Date(),
    result,
    owner: ctx.caller?.key ?? null,
    ...(cache.key ? { cacheKey: cache.key } : {}),
  };
  await ctx.store.put(stored);
  return stored;
}

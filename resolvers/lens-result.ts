// LensResult and its parts; Query.lens computes one, Query.lensResult fetches a stored one.

import { randomUUID } from 'node:crypto';
import type { LensOptions, LensResult, TrackedPosition } from '../src/lens/types.js';
import type { StoredResult } from '../src/server/result-store.js';
import { builder } from './builder.js';
import type { GatewayContext } from './context.js';
import { gatewayError, toGraphQLError } from './errors.js';
import { LensInputRef, LensPointEnum, validateLensInput, type ValidLensRequest } from './lens-input.js';
import { LensKindEnum } from './lens-kind.js';
import { ModelRef, requireModel, TokenRef } from './model.js';
import { PromptRef } from './prompt.js';
import { toWidgetV1, toWidgetV2 } from './widget.js';

export const LensResultRef = builder.objectRef<StoredResult>('LensResult');

interface TrackedShape {
  modelId: string;
  tracked: TrackedPosition;
}
const TrackedPositionRef = builder.objectRef<TrackedShape>('TrackedPosition');

interface CellShape {
  modelId: string;
  layer: number;
  position: number;
  ids: number[];
  probs: number[];
  entropy: number | null;
  klToFinal: number | null;
  finalTop1Rank: number | null;
}
export const LensCellRef = builder.objectRef<CellShape>('LensCell');

interface TokenProbShape {
  id: number;
  text: string;
  prob: number;
}
const TokenProbRef = builder.objectRef<TokenProbShape>('TokenProb');

interface AttentionShape {
  modelId: string;
  part: NonNullable<LensResult['attention']>;
}
const LensAttentionRef = builder.objectRef<AttentionShape>('LensAttention');

const WidgetFormatEnum = builder.enumType('WidgetFormat', {
  description: 'logitlenskit widget JSON layout: V2 (compact, recommended) or V1 (legacy, per cell).',
  values: ['V1', 'V2'] as const,
});

export function decoder(ctx: GatewayContext, modelId: string): (id: number) => string {
  const model = requireModel(ctx, modelId).model;
  return (id) => model.decode(id);
}

TokenProbRef.implement({
  description: 'A predicted token and its probability.',
  fields: (t) => ({
    id: t.exposeInt('id'),
    text: t.exposeString('text'),
    prob: t.exposeFloat('prob'),
  }),
});

LensCellRef.implement({
  description: 'One (layer, position) cell with decoded predictions, for front ends.',
  fields: (t) => ({
    layer: t.exposeInt('layer'),
    position: t.exposeInt('position'),
    token: t.string({ description: 'Top-1 text.', resolve: (c, _a, ctx) => decoder(ctx, c.modelId)(c.ids[0]) }),
    prob: t.float({ description: 'Top-1 probability.', resolve: (c) => c.probs[0] }),
    topk: t.field({
      type: [TokenProbRef],
      resolve: (c, _a, ctx) => {
        const decode = decoder(ctx, c.modelId);
        return c.ids.map((id, k) => ({ id, text: decode(id), prob: c.probs[k] }));
      },
    }),
    entropy: t.exposeFloat('entropy', { nullable: true, description: 'Nats; null unless stats were requested.' }),
    klToFinal: t.exposeFloat('klToFinal', { nullable: true, description: 'KL(final ‖ this layer), nats.' }),
    finalTop1Rank: t.exposeInt('finalTop1Rank', {
      nullable: true,
      description: "Rank here of the final layer's top-1 (0 = also top-1 here).",
    }),
  }),
});

TrackedPositionRef.implement({
  description: 'Trajectories at one position: every token that was top-k at any requested layer.',
  fields: (t) => ({
    position: t.int({ resolve: (s) => s.tracked.position }),
    tokenIds: t.intList({ resolve: (s) => s.tracked.tokenIds }),
    tokens: t.field({
      type: [TokenRef],
      resolve: (s, _a, ctx) => {
        const decode = decoder(ctx, s.modelId);
        return s.tracked.tokenIds.map((id) => ({ position: s.tracked.position, id, text: decode(id) }));
      },
    }),
    probs: t.field({
      type: t.listRef(t.listRef('Float')),
      description: '[layerIndex][j]: probability of tokenIds[j] at the j-th requested layer.',
      resolve: (s) => s.tracked.probs,
    }),
  }),
});

const LensStatsRef = builder.objectRef<NonNullable<LensResult['stats']>>('LensStats');
LensStatsRef.implement({
  description: 'Per-cell statistics, indexed [layerIndex][position].',
  fields: (t) => ({
    entropy: t.field({ type: t.listRef(t.listRef('Float')), resolve: (s) => s.entropy }),
    klToFinal: t.field({ type: t.listRef(t.listRef('Float')), resolve: (s) => s.klToFinal }),
    finalTop1Rank: t.field({ type: t.listRef(t.listRef('Int')), resolve: (s) => s.finalTop1Rank }),
  }),
});

const LensTimingsRef = builder.objectRef<LensResult['timings']>('LensTimings');
LensTimingsRef.implement({
  description: 'Where the time went, in milliseconds.',
  fields: (t) => ({
    totalMs: t.exposeFloat('totalMs'),
    embedMs: t.exposeFloat('embedMs'),
    blocksMs: t.exposeFloat('blocksMs'),
    headMs: t.exposeFloat('headMs'),
    trackMs: t.exposeFloat('trackMs'),
    statsMs: t.exposeFloat('statsMs'),
    queueMs: t.exposeFloat('queueMs', { description: 'Waiting for a batch slot.' }),
    batchSize: t.exposeInt('batchSize', { description: 'Requests computed in the same forward pass.' }),
  }),
});

LensAttentionRef.implement({
  description: 'The same reduction read after each block’s attention sub-layer.',
  fields: (t) => ({
    topIndices: t.field({ type: t.listRef(t.listRef(t.listRef('Int'))), resolve: (a) => a.part.topIndices }),
    topProbs: t.field({ type: t.listRef(t.listRef(t.listRef('Float'))), resolve: (a) => a.part.topProbs }),
    tracked: t.field({
      type: [TrackedPositionRef],
      nullable: true,
      resolve: (a) => a.part.tracked?.map((tracked) => ({ modelId: a.modelId, tracked })) ?? null,
    }),
    stats: t.field({
      type: LensStatsRef,
      nullable: true,
      description: 'Entropy, KL to the final layer and rank of its top-1 for these reads; null unless stats were requested.',
      resolve: (a) => a.part.stats,
    }),
  }),
});

/** Cells of one layer, optionally narrowed to `positions` and the first `k` predictions. */
export function layerCells(
  modelId: string,
  r: Pick<LensResult, 'topIndices' | 'topProbs' | 'stats' | 'layers'>,
  li: number,
  positions: readonly number[] | null | undefined,
  k: number | null | undefined,
): CellShape[] {
  const ids = r.topIndices[li];
  const probs = r.topProbs[li];
  const pos = positions ?? ids.map((_, p) => p);
  return pos.map((p) => ({
    modelId,
    layer: r.layers[li],
    position: p,
    ids: k ? ids[p].slice(0, k) : ids[p],
    probs: k ? probs[p].slice(0, k) : probs[p],
    entropy: r.stats?.entropy[li][p] ?? null,
    klToFinal: r.stats?.klToFinal[li][p] ?? null,
    finalTop1Rank: r.stats?.finalTop1Rank[li][p] ?? null,
  }));
}

export function checkCellArgs(
  nPositions: number,
  k: number | null | undefined,
  positions: readonly number[] | null | undefined,
): void {
  if (k != null && k < 1) throw gatewayError('BAD_USER_INPUT', `k must be ≥ 1, got ${k}`);
  for (const p of positions ?? []) {
    if (p < 0 || p >= nPositions) {
      throw gatewayError('BAD_USER_INPUT', `position ${p} is out of range 0..${nPositions - 1}`);
    }
  }
}

LensResultRef.implement({
  description: 'A computed logit lens: per requested layer and prompt position, the top-k next-token predictions.',
  fields: (t) => ({
    id: t.exposeID('id'),
    model: t.field({ type: ModelRef, resolve: (s) => s.result.model }),
    prompt: t.field({ type: PromptRef, resolve: (s) => ({ text: s.prompt, modelId: s.modelId }) }),
    tokens: t.field({ type: [TokenRef], resolve: (s) => s.result.tokens }),
    layers: t.intList({ resolve: (s) => s.result.layers }),
    lens: t.field({ type: LensKindEnum, description: 'The lens kind these cells were read with.', resolve: (s) => s.result.lens }),
    topK: t.int({ resolve: (s) => s.result.topK }),
    point: t.field({ type: LensPointEnum, resolve: (s) => s.result.point }),
    topIndices: t.field({
      type: t.listRef(t.listRef(t.listRef('Int'))),
      description: '[layerIndex][position][k] vocabulary ids, most likely first.',
      resolve: (s) => s.result.topIndices,
    }),
    topProbs: t.field({
      type: t.listRef(t.listRef(t.listRef('Float'))),
      description: '[layerIndex][position][k] probabilities matching topIndices.',
      resolve: (s) => s.result.topProbs,
    }),
    tracked: t.field({
      type: [TrackedPositionRef],
      nullable: true,
      description: 'Per position trajectories; null unless trackAcrossLayers was set.',
      resolve: (s) => s.result.tracked?.map((tracked) => ({ modelId: s.modelId, tracked })) ?? null,
    }),
    attention: t.field({
      type: LensAttentionRef,
      nullable: true,
      description: 'Present when points included ATTENTION_OUTPUT.',
      resolve: (s) => (s.result.attention ? { modelId: s.modelId, part: s.result.attention } : null),
    }),
    stats: t.field({
      type: LensStatsRef,
      nullable: true,
      description: 'Null unless stats were requested.',
      resolve: (s) => s.result.stats,
    }),
    cells: t.field({
      type: t.listRef(t.listRef(LensCellRef)),
      description: '[layerIndex][position] decoded cells; filter by layers (a subset of `layers`) and positions, cut to k.',
      args: {
        layers: t.arg.intList(),
        positions: t.arg.intList(),
        k: t.arg.int(),
      },
      resolve: (s, args) => {
        const r = s.result;
        checkCellArgs(r.tokens.length, args.k, args.positions);
        const indices = (args.layers ?? r.layers).map((l) => {
          const li = r.layers.indexOf(l);
          if (li < 0) throw gatewayError('BAD_USER_INPUT', `layer ${l} is not in this result (layers ${r.layers.join(',')})`);
          return li;
        });
        return indices.map((li) => layerCells(s.modelId, r, li, args.positions, args.k));
      },
    }),
    widget: t.field({
      type: 'JSON',
      description: 'The result as logitlenskit widget data (V2 by default).',
      args: { format: t.arg({ type: WidgetFormatEnum, defaultValue: 'V2' }) },
      resolve: (s, { format }, ctx) => {
        const decode = decoder(ctx, s.modelId);
        return format === 'V1'
          ? toWidgetV1(s.result, decode)
          : toWidgetV2(s.result, decode, { timestamp: s.createdAt, model: s.modelId });
      },
    }),
    timings: t.field({ type: LensTimingsRef, resolve: (s) => s.result.timings }),
    createdAt: t.string({ description: 'ISO 8601.', resolve: (s) => s.createdAt.toISOString() }),
  }),
});

/** Runs a validated request through the model's scheduler and stores the result. */
export async function computeLens(
  ctx: GatewayContext,
  req: ValidLensRequest,
  extra: { id?: string; signal?: AbortSignal; onLayer?: LensOptions['onLayer'] } = {},
): Promise<StoredResult> {
  let result: LensResult;
  try {
    result = await req.served.scheduler.run(req.prompt, { ...req.options, signal: extra.signal, onLayer: extra.onLayer });
  } catch (err) {
    throw toGraphQLError(err);
  }
  const stored: StoredResult = {
    id: extra.id ?? randomUUID(),
    modelId: req.served.model.info.id,
    prompt: req.prompt,
    createdAt: new Date(),
    result,
  };
  await ctx.store.put(stored);
  return stored;
}

builder.queryFields((t) => ({
  lens: t.field({
    type: LensResultRef,
    args: { input: t.arg({ type: LensInputRef, required: true }) },
    resolve: async (_root, { input }, ctx) => {
      const req = validateLensInput(ctx, input);
      return computeLens(ctx, req, { signal: ctx.signal });
    },
  }),
  lensResult: t.field({
    type: LensResultRef,
    nullable: true,
    description: 'A result this server computed earlier, by id; null when unknown or evicted (results are kept in memory for now).',
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, { id }, ctx) => {
      const stored = await ctx.loaders.result.load(id);
      // A stored result whose model was since removed cannot decode tokens any more.
      return stored && ctx.registry.get(stored.modelId) ? stored : null;
    },
  }),
}));

// Subscription.lensLayers: LensStarted, then one LayerResult per requested layer as soon as the core
// has reduced it (with generate: over the prompt positions, then one PositionResult per written
// token), then LensCompleted with the whole (stored) result. A cached answer replays the same shape.

import { Repeater } from 'graphql-yoga';
import type { LayerEvent, LensPoint, PositionEvent, Token } from '../src/lens/types.js';
import type { StoredResult } from './services.js';
import { randomUUID } from 'node:crypto';
import type { GraphQLError } from 'graphql';
import { builder } from './builder.js';
import { toGraphQLError } from './errors.js';
import { LensInputRef, LensPointEnum, validateLensInput } from './lens-input.js';
import { computeLens, lookupCache, replayEvents } from './compute-lens.js';
import { checkCellArgs, layerCells, LensCellRef } from './lens-cell.js';
import { cellsBytes, gridBytes, ID_BYTES, PROB_BYTES } from './response-budget.js';
import { inTurns } from './in-turns.js';
import { LensResultRef } from './lens-result.js';
import { ModelRef, TokenRef } from './model.js';
import { PromptRef } from './prompt.js';
import { PRECISION_DESCRIPTION, rounded } from './precision.js';
import type { ModelInfo } from '../src/lens/types.js';

interface StartedShape {
  kind: 'started';
  resultId: string;
  model: ModelInfo;
  prompt: string;
  tokens: Token[];
  layers: number[];
  topK: number;
  points: LensPoint[];
  maxNewTokens: number | null;
}
interface LayerShape {
  kind: 'layer';
  resultId: string;
  modelId: string;
  event: LayerEvent;
  layers: number[];
}
interface PositionShape {
  kind: 'position';
  resultId: string;
  modelId: string;
  event: PositionEvent;
  layers: number[];
}
interface CompletedShape {
  kind: 'completed';
  result: StoredResult;
}
/** Not a GraphQL type: a failure after the stream started, raised by the field resolver. */
interface FailedShape {
  kind: 'failed';
  error: GraphQLError;
}
type EventShape = StartedShape | LayerShape | PositionShape | CompletedShape;

const LensStartedRef = builder.objectRef<StartedShape>('LensStarted');
LensStartedRef.implement({
  description: 'First event: the prompt is tokenized and the job is admitted.',
  fields: (t) => ({
    resultId: t.exposeID('resultId', { description: 'Id under which Query.lensResult will find the completed result.' }),
    model: t.field({ type: ModelRef, resolve: (s) => s.model }),
    prompt: t.field({ type: PromptRef, resolve: (s) => ({ text: s.prompt, modelId: s.model.id }) }),
    tokens: t.field({ type: [TokenRef], resolve: (s) => s.tokens }),
    layers: t.exposeIntList('layers'),
    topK: t.exposeInt('topK'),
    points: t.field({ type: [LensPointEnum], resolve: (s) => s.points }),
    maxNewTokens: t.int({
      nullable: true,
      description: 'Tokens the model may write after the prompt (LensInput.generate); null when not generating.',
      resolve: (s) => s.maxNewTokens,
    }),
  }),
});

export const LayerResultRef = builder.objectRef<LayerShape>('LayerResult');
LayerResultRef.implement({
  description: 'One requested layer, sent as soon as it is computed.',
  fields: (t) => ({
    resultId: t.exposeID('resultId'),
    layer: t.int({ resolve: (s) => s.event.layer }),
    index: t.int({ description: 'Position of this layer among the requested layers.', resolve: (s) => s.event.index }),
    count: t.int({ description: 'Number of requested layers.', resolve: (s) => s.event.count }),
    worker: t.string({
      nullable: true,
      description: 'Distributed mode: the worker that computed this layer (after a worker died, later layers come from the one that took over); null otherwise.',
      resolve: (s) => s.event.worker ?? null,
    }),
    point: t.field({ type: LensPointEnum, resolve: (s) => s.event.point }),
    topIndices: t.field({ type: t.listRef(t.listRef('Int')), description: '[position][k]', resolve: (s, _a, ctx) => {
        ctx.budget.charge(gridBytes([s.event.topIndices], ID_BYTES), 'topIndices');
        return s.event.topIndices;
      } }),
    topProbs: t.field({
      type: t.listRef(t.listRef('Float')),
      description: '[position][k]',
      args: { precision: t.arg.int({ description: PRECISION_DESCRIPTION }) },
      resolve: (s, { precision }, ctx) => {
        ctx.budget.charge(gridBytes([s.event.topProbs], PROB_BYTES), 'topProbs');
        return rounded(s.event.topProbs, precision);
      },
    }),
    cells: t.field({
      type: [LensCellRef],
      description: 'Decoded cells of this layer, one per position.',
      args: { positions: t.arg.intList(), k: t.arg.int() },
      resolve: (s, args, ctx) => {
        const size = checkCellArgs({ positions: s.event.topIndices.length, topK: s.event.topIndices[0]?.length ?? 0 }, args.k, args.positions);
        ctx.budget.charge(cellsBytes(size.positions, size.k), 'cells');
        const r = { topIndices: [s.event.topIndices], topProbs: [s.event.topProbs], stats: null, layers: [s.event.layer] };
        return inTurns(layerCells(s.modelId, r, 0, args.positions, args.k), size.k);
      },
    }),
  }),
});

const PositionResultRef = builder.objectRef<PositionShape>('PositionResult');
PositionResultRef.implement({
  description:
    'One generated position, sent as soon as the model has written its token and lensed it: the column of every requested layer.',
  fields: (t) => ({
    resultId: t.exposeID('resultId'),
    position: t.int({ resolve: (s) => s.event.position }),
    token: t.field({ type: TokenRef, description: 'The token at this position (generated: true).', resolve: (s) => s.event.token }),
    point: t.field({ type: LensPointEnum, resolve: (s) => s.event.point }),
    layers: t.intList({ resolve: (s) => s.layers }),
    topIndices: t.field({
      type: t.listRef(t.listRef('Int')),
      description: '[layerIndex][k]',
      resolve: (s, _a, ctx) => {
        ctx.budget.charge(gridBytes([s.event.topIndices], ID_BYTES), 'topIndices');
        return s.event.topIndices;
      },
    }),
    topProbs: t.field({
      type: t.listRef(t.listRef('Float')),
      description: '[layerIndex][k]',
      resolve: (s, _a, ctx) => {
        ctx.budget.charge(gridBytes([s.event.topProbs], PROB_BYTES), 'topProbs');
        return s.event.topProbs;
      },
    }),
    cells: t.field({
      type: [LensCellRef],
      description: 'Decoded cells of this position, one per requested layer (ascending).',
      args: { k: t.arg.int() },
      resolve: (s, args, ctx) => {
        const size = checkCellArgs({ positions: 1, topK: s.event.topIndices[0]?.length ?? 1 }, args.k, null);
        ctx.budget.charge(cellsBytes(s.layers.length, size.k), 'cells');
        const r = { topIndices: s.event.topIndices.map((c) => [c]), topProbs: s.event.topProbs.map((c) => [c]), stats: null, layers: s.layers };
        return s.layers.map((_, li) => ({ ...layerCells(s.modelId, r, li, [0], args.k)[0], position: s.event.position }));
      },
    }),
  }),
});

const LensCompletedRef = builder.objectRef<CompletedShape>('LensCompleted');
LensCompletedRef.implement({
  description: 'Last event: the whole result with trajectories and stats, also stored under its id.',
  fields: (t) => ({
    result: t.field({ type: LensResultRef, resolve: (s) => s.result }),
  }),
});

const LensEventUnion = builder.unionType('LensEvent', {
  types: [LensStartedRef, LayerResultRef, PositionResultRef, LensCompletedRef],
  resolveType: (e) => {
    switch (e.kind) {
      case 'started':
        return 'LensStarted';
      case 'layer':
        return 'LayerResult';
      case 'position':
        return 'PositionResult';
      case 'completed':
        return 'LensCompleted';
    }
  },
});

builder.subscriptionFields((t) => ({
  lensLayers: t.field({
    type: LensEventUnion,
    args: { input: t.arg({ type: LensInputRef, required: true }) },
    // Validation and admission happen before the stream exists, so a bad or overloaded request
    // is a plain error result and never an exception inside a running stream.
    subscribe: (_root, { input }, ctx) => {
      const req = validateLensInput(ctx, input);
      try {
        req.served.scheduler.assertCapacity(ctx.client);
      } catch (err) {
        throw toGraphQLError(err);
      }
      const modelId = req.served.model.info.id;
      // A Repeater (not an async generator): its stop promise settles at once on unsubscribe or
      // disconnect, even while a layer is running, and the abort reaches the scheduler from there.
      return new Repeater<EventShape | FailedShape>(async (push, stop) => {
        const abort = new AbortController();
        void stop.then(() => abort.abort());
        let cache;
        try {
          cache = await lookupCache(ctx, req);
        } catch (err) {
          await push({ kind: 'failed', error: toGraphQLError(err) });
          stop();
          return;
        }
        // A cached answer keeps its stored id, so links to it stay the same.
        const resultId = cache.hit?.id ?? randomUUID();
        await push({
          kind: 'started',
          resultId,
          model: req.served.model.info,
          prompt: req.prompt,
          tokens: req.tokens,
          layers: req.layers,
          topK: req.options.topK ?? 5,
          points: req.points,
          maxNewTokens: req.options.generate?.maxNewTokens ?? null,
        });
        if (cache.hit) {
          for (const e of replayEvents(cache.hit.result)) await push({ ...e, resultId, modelId, layers: req.layers });
          await push({ kind: 'completed', result: cache.hit });
          stop();
          return;
        }
        try {
          const result = await computeLens(ctx, req, {
            id: resultId,
            cache,
            signal: abort.signal,
            onLayer: (event) => void push({ kind: 'layer', resultId, modelId, event, layers: req.layers }),
            onPosition: (event) => void push({ kind: 'position', resultId, modelId, event, layers: req.layers }),
          });
          await push({ kind: 'completed', result });
        } catch (err) {
          if (!abort.signal.aborted || !isCancelled(err)) await push({ kind: 'failed', error: toGraphQLError(err) });
        }
        stop();
      });
    },
    resolve: (event: EventShape | FailedShape) => {
      if (event.kind === 'failed') throw event.error;
      return event;
    },
  }),
}));

function isCancelled(err: unknown): boolean {
  return toGraphQLError(err).extensions.code === 'CANCELLED';
}

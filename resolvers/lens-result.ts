// LensResult; Query.lens computes one, Query.lensResult fetches a stored one.

import { toWidgetV1, toWidgetV2 } from '../src/lens/widget.js';
import { builder } from './builder.js';
import { gatewayError, toGraphQLError } from './errors.js';
import { computeLens, visibleTo } from './compute-lens.js';
import { LensAttentionRef } from './lens-attention.js';
import { cellLayerIndices, checkCellArgs, layerCells, LensCellRef } from './lens-cell.js';
import { cellsBytes, trackedBytes } from './response-budget.js';
import { gridInTurns } from './in-turns.js';
import { LensInputRef, LensPointEnum, validateLensInput } from './lens-input.js';
import { LensKindEnum } from './lens-kind.js';
import { readoutFields } from './lens-readout.js';
import { GenerationRef } from './generation.js';
import { LensTimingsRef } from './lens-timings.js';
import { decoder, ModelRef, TokenRef } from './model.js';
import { PromptRef } from './prompt.js';
import type { StoredResult } from './services.js';
import { WidgetFormatEnum } from './widget-format.js';

export const LensResultRef = builder.objectRef<StoredResult>('LensResult');

LensResultRef.implement({
  description: 'A computed logit lens: per requested layer and prompt position, the top-k next-token predictions.',
  fields: (t) => {
    const readout = readoutFields(t, (s) => ({ modelId: s.modelId, readout: s.result }), {
      topIndices: '[layerIndex][position][k] vocabulary ids, most likely first.',
      topProbs: '[layerIndex][position][k] probabilities matching topIndices.',
      tracked: 'Per position trajectories; null unless trackAcrossLayers was set.',
      stats: 'Null unless stats were requested.',
    });
    return {
      id: t.exposeID('id'),
      model: t.field({ type: ModelRef, resolve: (s) => s.result.model }),
      prompt: t.field({ type: PromptRef, resolve: (s) => ({ text: s.prompt, modelId: s.modelId }) }),
      tokens: t.field({ type: [TokenRef], resolve: (s) => s.result.tokens }),
      layers: t.intList({ resolve: (s) => s.result.layers }),
      lens: t.field({ type: LensKindEnum, description: 'The lens kind these cells were read with.', resolve: (s) => s.result.lens }),
      topK: t.int({ resolve: (s) => s.result.topK }),
      point: t.field({ type: LensPointEnum, resolve: (s) => s.result.point }),
      topIndices: readout.topIndices,
      topProbs: readout.topProbs,
      tracked: readout.tracked,
      attention: t.field({
        type: LensAttentionRef,
        nullable: true,
        description: 'Present when points included ATTENTION_OUTPUT.',
        resolve: (s) => (s.result.attention ? { modelId: s.modelId, readout: s.result.attention } : null),
      }),
      stats: readout.stats,
      cells: t.field({
        type: t.listRef(t.listRef(LensCellRef)),
        description: '[layerIndex][position] decoded cells; filter by layers (a subset of `layers`) and positions, cut to k.',
        args: {
          layers: t.arg.intList(),
          positions: t.arg.intList(),
          k: t.arg.int(),
        },
        resolve: (s, args, ctx) => {
          const r = s.result;
          const size = checkCellArgs({ positions: r.tokens.length, topK: r.topK }, args.k, args.positions);
          const indices = cellLayerIndices(r.layers, args.layers);
          ctx.budget.charge(cellsBytes(indices.length * size.positions, size.k), 'cells');
          return gridInTurns(indices.map((li) => layerCells(s.modelId, r, li, args.positions, args.k)), size.k);
        },
      }),
      widget: t.field({
        type: 'JSON',
        description: 'The result as logitlenskit widget data (V2 by default).',
        args: { format: t.arg({ type: WidgetFormatEnum, defaultValue: 'V2' }) },
        resolve: (s, { format }, ctx) => {
          const r = s.result;
          const cells = r.layers.length * r.tokens.length;
          // V1 repeats each trajectory in every cell; V2 keeps texts per cell and trajectories once.
          ctx.budget.charge(
            format === 'V1' ? cellsBytes(cells, r.topK) * (1 + r.layers.length / 4) : cells * r.topK * 24 + trackedBytes(r.tracked, r.layers.length),
            'widget',
          );
          const decode = decoder(ctx, s.modelId);
          return format === 'V1'
            ? toWidgetV1(s.result, decode)
            : toWidgetV2(s.result, decode, { timestamp: s.createdAt, model: s.modelId });
        },
      }),
      generation: t.field({
        type: GenerationRef,
        nullable: true,
        description: 'Null unless LensInput.generate was given; then tokens holds prompt + generated tokens, each with a column.',
        resolve: (s) => s.result.generation ?? null,
      }),
      timings: t.field({
        type: LensTimingsRef,
        description: 'Of the run that computed this result (also when this response came from the cache).',
        resolve: (s) => s.result.timings,
      }),
      cached: t.boolean({
        description: 'True when this lens request was answered from an earlier identical request without running the model.',
        resolve: (s) => s.cached ?? false,
      }),
      createdAt: t.string({ description: 'ISO 8601.', resolve: (s) => s.createdAt.toISOString() }),
    };
  },
});

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
    description:
      'A stored result by id; null when unknown or evicted to keep the store within its size budget; error RESULT_EXPIRED when its time to live (--result-ttl-s) has passed. ' +
      'Results live in the result store (a SQLite file by default, Redis in distributed mode).',
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, { id }, ctx) => {
      let stored;
      try {
        stored = await ctx.loaders.result.load(id);
      } catch (err) {
        throw toGraphQLError(err);
      }
      if (stored && !visibleTo(ctx, stored)) throw gatewayError('FORBIDDEN', `Result ${id} belongs to another API key`);
      if (!stored) return null;
      // A stored result whose model was since removed cannot decode tokens any more.
      const served = ctx.registry.get(stored.modelId) ?? (await ctx.registry.discover?.(stored.modelId));
      return served ? stored : null;
    },
  }),
}));

// Query.lensCompare: two lens requests (two models sharing a tokenizer, or two prompts) compared per
// aligned cell over the full vocabulary. Both requests run through their models' schedulers like any
// lens request and are stored; the divergences are computed from their normed rows afterwards.

import { checkComparable, compareLens, type LensComparison } from '../src/lens/compare.js';
import type { StoredResult } from './services.js';
import { builder } from './builder.js';
import { toGraphQLError } from './errors.js';
import { LensInputRef, validateLensInput } from './lens-input.js';
import { computeLens } from './compute-lens.js';
import { LensResultRef } from './lens-result.js';
import { gridBytes, ID_BYTES, PROB_BYTES } from './response-budget.js';
import type { GatewayContext } from './context.js';

/** Each grid counts toward the operation's response budget before it is returned. */
function charged<T extends readonly (readonly unknown[])[]>(ctx: GatewayContext, grid: T, perEntry: number, what: string): T {
  ctx.budget.charge(gridBytes(grid, perEntry), what);
  return grid;
}

interface ComparisonShape {
  a: StoredResult;
  b: StoredResult;
  c: LensComparison;
}


const LensComparisonRef = builder.objectRef<ComparisonShape>('LensComparison');
LensComparisonRef.implement({
  description:
    'Two lens results compared cell by cell. Positions are aligned by index from the start, up to the shorter sequence; layers by index in each side’s requested layers. Divergences are exact: computed from the full distributions (every vocabulary entry) inside ONNX Runtime, in nats.',
  fields: (t) => ({
    a: t.field({ type: LensResultRef, description: 'The first request’s result (stored under its id).', resolve: (s) => s.a }),
    b: t.field({ type: LensResultRef, resolve: (s) => s.b }),
    positions: t.int({ description: 'Aligned positions: min(length of a, length of b).', resolve: (s) => s.c.positions }),
    layersA: t.intList({ resolve: (s) => s.c.layersA }),
    layersB: t.intList({ description: 'layersB[i] is compared with layersA[i].', resolve: (s) => s.c.layersB }),
    kl: t.field({
      type: t.listRef(t.listRef('Float')),
      description: '[layerIndex][position] KL(a ‖ b).',
      resolve: (s, _a, ctx) => charged(ctx, s.c.kl, PROB_BYTES, 'kl'),
    }),
    klReverse: t.field({ type: t.listRef(t.listRef('Float')), description: '[layerIndex][position] KL(b ‖ a).', resolve: (s, _a, ctx) => charged(ctx, s.c.klReverse, PROB_BYTES, 'klReverse') }),
    js: t.field({
      type: t.listRef(t.listRef('Float')),
      description: '[layerIndex][position] Jensen–Shannon divergence, 0 ≤ js ≤ ln 2.',
      resolve: (s, _a, ctx) => charged(ctx, s.c.js, PROB_BYTES, 'js'),
    }),
    top1Differs: t.field({
      type: t.listRef(t.listRef('Boolean')),
      description: '[layerIndex][position] the two top-1 predictions differ.',
      resolve: (s, _a, ctx) => charged(ctx, s.c.top1Differs, 6, 'top1Differs'),
    }),
    top1A: t.field({ type: t.listRef(t.listRef('Int')), description: '[layerIndex][position] top-1 id of a.', resolve: (s, _a, ctx) => charged(ctx, s.c.top1A, ID_BYTES, 'top1A') }),
    top1B: t.field({ type: t.listRef(t.listRef('Int')), description: '[layerIndex][position] top-1 id of b.', resolve: (s, _a, ctx) => charged(ctx, s.c.top1B, ID_BYTES, 'top1B') }),
    sameToken: t.field({
      type: ['Boolean'],
      description: 'Per aligned position: both sequences hold the same token there.',
      resolve: (s) => s.c.sameToken,
    }),
  }),
});

builder.queryFields((t) => ({
  lensCompare: t.field({
    type: LensComparisonRef,
    description:
      'The same prompt under two models that share a tokenizer, or two prompts under one model: KL, JS and top-1 differences per aligned (layer, position). TOKENIZER_MISMATCH when the models tokenize differently.',
    args: {
      a: t.arg({ type: LensInputRef, required: true }),
      b: t.arg({ type: LensInputRef, required: true }),
    },
    resolve: async (_root, args, ctx) => {
      const ra = validateLensInput(ctx, args.a);
      const rb = validateLensInput(ctx, args.b);
      try {
        checkComparable(ra.served.model, rb.served.model, ra.layers, rb.layers);
      } catch (err) {
        throw toGraphQLError(err);
      }
      let normedA: Float32Array[] = [];
      let normedB: Float32Array[] = [];
      const [a, b] = await Promise.all([
        computeLens(ctx, ra, { signal: ctx.signal, onNormed: (n) => (normedA = n) }),
        computeLens(ctx, rb, { signal: ctx.signal, onNormed: (n) => (normedB = n) }),
      ]);
      try {
        const c = await compareLens(
          { model: ra.served.model, result: a.result, normed: normedA },
          { model: rb.served.model, result: b.result, normed: normedB },
        );
        return { a, b, c };
      } catch (err) {
        throw toGraphQLError(err);
      }
    },
  }),
}));

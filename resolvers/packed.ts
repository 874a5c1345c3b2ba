// The PACKED encoding in GraphQL: `LensResult.packed` and `LayerResult.packed` return base64
// little-endian typed arrays (src/lens/packed.ts, docs/wire-format.md) next to the JSON fields, which
// stay as they are. A separate field rather than an `encoding:` argument because a GraphQL field's
// type cannot depend on an argument. Each array is encoded only when selected.

import {
  packF32,
  packP16,
  packTopLocal,
  trackedMatrix,
  packU32,
  probCode,
  DEFAULT_PACK,
  type PackedArray,
  type ProbCode,
} from '../src/lens/packed.js';
import type { LensResult } from '../src/lens/types.js';
import { GraphQLError } from 'graphql';
import { builder } from './builder.js';
import { toGraphQLError } from './errors.js';
import { LayerResultRef } from './lens-events.js';
import { LensResultRef } from './lens-result.js';
import { decoder } from './model.js';
import type { GatewayContext } from './context.js';
import { packedBytes } from './response-budget.js';

// An array is one atomic value (its bytes mean nothing without dtype and shape), so it is a scalar:
// clients select `topProbs`, not five sub-fields, and deep packed selections stay cheap for the
// query-cost limit.
const PackedArrayRef = builder.scalarType('PackedArray', {
  description:
    'A row-major array as JSON: { dtype, shape, data, scale, maxCode } (packed format version 2). data is base64 (RFC 4648, padded) of the bytes; ' +
    'dtype U8, U16, U32 = unsigned LE, F32 = float32 LE, P16v2 = 16-bit probability codes c stored first axis fastest, each as its ' +
    'zigzag-mapped difference (mod 65536) from the previous along the first axis, in two byte planes (all low bytes, then all high bytes): ' +
    'p = exp((c − maxCode) / scale) for c ≥ scale, else c · exp((scale − maxCode) / scale) / scale. scale and maxCode are null except for P16v2. ' +
    'See docs/wire-format.md.',
  serialize: (v) => v as PackedArray,
  parseValue: () => {
    throw new GraphQLError('PackedArray is an output type only');
  },
});

type Types = typeof builder extends PothosSchemaTypes.SchemaBuilder<infer T> ? T : never;
type Read = Pick<LensResult, 'topIndices' | 'topProbs' | 'tracked' | 'stats'>;
/** One read point: the after-attention read (PackedRead). */
interface ReadShape {
  modelId: string;
  read: Read;
  layers: number;
  positions: number;
  k: number;
  code: ProbCode;
}
/** The whole result (PackedLens): its own read plus the after-attention one. */
interface LensShape extends ReadShape {
  attention: Read | null;
}

/** Packed arrays count toward the operation's response budget like the JSON fields (RESPONSE_TOO_LARGE). */
function charge(ctx: GatewayContext, elements: number, bytesPerElement: number, what: string): void {
  ctx.budget.charge(packedBytes(elements, bytesPerElement), what);
}

function trackedCount(tracked: NonNullable<Read['tracked']>): number {
  return tracked.reduce((n, p) => n + p.tokenIds.length, 0);
}

const TokenTextRef = builder.objectRef<{ id: number; text: string }>('TokenText');
TokenTextRef.implement({
  description: 'A vocabulary id and its decoded text.',
  fields: (t) => ({ id: t.exposeInt('id'), text: t.exposeString('text') }),
});

/** One [layers, positions] stats array (4 bytes an element, F32 or U32); null unless stats were requested. */
function stat(
  t: PothosSchemaTypes.InterfaceFieldBuilder<Types, ReadShape>,
  key: keyof NonNullable<Read['stats']>,
  pack: (values: number[], shape: number[]) => PackedArray,
  description: string,
) {
  return t.field({
    type: PackedArrayRef,
    nullable: true,
    description,
    resolve: (s, _a, ctx) => {
      if (!s.read.stats) return null;
      charge(ctx, s.layers * s.positions, 4, `packed.${key}`);
      return pack(s.read.stats[key].flat(), [s.layers, s.positions]);
    },
  });
}

// Flat on purpose: trajectories and stats are sibling arrays rather than nested objects, which keeps
// a whole packed subscription well inside the query depth limit. The whole result and its
// after-attention read carry the same arrays: one interface defines them, so one client fragment on
// PackedReadout serves both.
const PackedReadoutRef = builder.interfaceRef<ReadShape>('PackedReadout');
PackedReadoutRef.implement({
  description: 'One read point’s top-k, trajectories and stats in the PACKED encoding: the whole result (PackedLens) or its after-attention read (PackedRead).',
  resolveType: (s) => ('attention' in s ? 'PackedLens' : 'PackedRead'),
  fields: (t) => ({
    topIndices: t.field({
      type: PackedArrayRef,
      description: 'U32 [layers, positions, k]: vocabulary ids, most likely first.',
      resolve: (s, _a, ctx) => {
        charge(ctx, s.layers * s.positions * s.k, 4, 'packed.topIndices');
        return packU32(s.read.topIndices.flat(2), [s.layers, s.positions, s.k]);
      },
    }),
    topProbs: t.field({
      type: PackedArrayRef,
      description: 'P16v2 [layers, positions, k].',
      resolve: (s, _a, ctx) => {
        charge(ctx, s.layers * s.positions * s.k, 2, 'packed.topProbs');
        return packP16(s.read.topProbs.flat(2), [s.layers, s.positions, s.k], s.code);
      },
    }),
    topLocal: t.field({
      type: PackedArrayRef,
      nullable: true,
      description:
        'U8 (U16 when a position tracks more than 256 ids) [layers, positions, k]: each top-k id as its index among its position’s trackedIds. ' +
        'With trackedCounts, trackedIds and trackedProbs it gives topIndices and topProbs without sending them again; null unless trackAcrossLayers was set.',
      resolve: (s) => (s.read.tracked ? packTopLocal(s.read.topIndices, s.read.tracked) : null),
    }),
    trackedCounts: t.field({
      type: PackedArrayRef,
      nullable: true,
      description: 'U32 [positions]: how many ids each position tracks; null unless trackAcrossLayers was set.',
      resolve: (s, _a, ctx) => {
        if (!s.read.tracked) return null;
        charge(ctx, s.positions, 4, 'packed.trackedCounts');
        return packU32(s.read.tracked.map((p) => p.tokenIds.length), [s.positions]);
      },
    }),
    trackedIds: t.field({
      type: PackedArrayRef,
      nullable: true,
      description: 'U32 [N]: each position’s ascending ids (top-k at any requested layer), concatenated in position order; N = sum of trackedCounts.',
      resolve: (s, _a, ctx) => {
        if (!s.read.tracked) return null;
        charge(ctx, trackedCount(s.read.tracked), 4, 'packed.trackedIds');
        const ids = s.read.tracked.flatMap((p) => p.tokenIds);
        return packU32(ids, [ids.length]);
      },
    }),
    trackedProbs: t.field({
      type: PackedArrayRef,
      nullable: true,
      description: 'P16v2 [layers, N]: probability of each tracked id at each requested layer.',
      resolve: (s, _a, ctx) => {
        if (!s.read.tracked) return null;
        charge(ctx, s.layers * trackedCount(s.read.tracked), 2, 'packed.trackedProbs');
        const m = trackedMatrix(s.read.tracked, s.layers);
        return packP16(m.probs, [s.layers, m.ids.length], s.code);
      },
    }),
    entropy: stat(t, 'entropy', packF32, 'F32 [layers, positions], nats; null unless stats were requested.'),
    klToFinal: stat(t, 'klToFinal', packF32, 'F32 [layers, positions], KL(final ‖ layer) in nats; null unless stats were requested.'),
    finalTop1Rank: stat(t, 'finalTop1Rank', packU32, 'U32 [layers, positions]; null unless stats were requested.'),
  }),
});

const PackedReadRef = builder.objectRef<ReadShape>('PackedRead');
PackedReadRef.implement({
  description: 'One read point (the after-attention read) in the PACKED encoding.',
  interfaces: [PackedReadoutRef],
});

const PackedLensRef = builder.objectRef<LensShape>('PackedLens');
PackedLensRef.implement({
  description: 'A LensResult in the PACKED encoding (docs/wire-format.md).',
  interfaces: [PackedReadoutRef],
  fields: (t) => ({
    attention: t.field({
      type: PackedReadRef,
      nullable: true,
      description: 'Present when points included ATTENTION_OUTPUT.',
      resolve: ({ attention, ...whole }) => (attention ? { ...whole, read: attention } : null),
    }),
    tokens: t.field({
      type: [TokenTextRef],
      description: 'Each distinct id of the top-k and tracked ids (both reads) once, ascending, with its text, so a front end can label them without a vocabulary.',
      resolve: (s, _a, ctx) => {
        const decode = decoder(ctx, s.modelId);
        const ids = new Set<number>();
        for (const r of [s.read, s.attention]) {
          if (!r) continue;
          for (const id of r.topIndices.flat(2)) ids.add(id);
          for (const t of r.tracked ?? []) for (const id of t.tokenIds) ids.add(id);
        }
        return [...ids].sort((a, b) => a - b).map((id) => ({ id, text: decode(id) }));
      },
    }),
  }),
});

const PackedLayerRef = builder.objectRef<{ modelId: string; event: { topIndices: number[][]; topProbs: number[][] }; code: ProbCode }>('PackedLayer');
PackedLayerRef.implement({
  description: 'One LayerResult in the PACKED encoding.',
  fields: (t) => ({
    topIndices: t.field({
      type: PackedArrayRef,
      description: 'U32 [positions, k].',
      resolve: (s, _a, ctx) => {
        charge(ctx, s.event.topIndices.length * (s.event.topIndices[0]?.length ?? 0), 4, 'packed.topIndices');
        return packU32(s.event.topIndices.flat(), [s.event.topIndices.length, s.event.topIndices[0]?.length ?? 0]);
      },
    }),
    topProbs: t.field({
      type: PackedArrayRef,
      description: 'P16v2 [positions, k].',
      resolve: (s, _a, ctx) => {
        charge(ctx, s.event.topProbs.length * (s.event.topProbs[0]?.length ?? 0), 2, 'packed.topProbs');
        return packP16(s.event.topProbs.flat(), [s.event.topProbs.length, s.event.topProbs[0]?.length ?? 0], s.code);
      },
    }),
    tokens: t.field({
      type: [TokenTextRef],
      description: 'Each distinct id of topIndices once (ascending) with its text, so a front end can label cells without a vocabulary.',
      resolve: (s, _a, ctx) => {
        const decode = decoder(ctx, s.modelId);
        const ids = new Set(s.event.topIndices.flat());
        ctx.budget.charge(ids.size * 40, 'packed.tokens');
        return [...ids].sort((a, b) => a - b).map((id) => ({ id, text: decode(id) }));
      },
    }),
  }),
});

const BOUND = {
  relativeError: 'P16v2 bound: |p′ − p| ≤ relativeError · max(p, floor); 1e-5 … 0.5, and with floor it must fit 16 bits.',
  floor: 'Below this the P16v2 error is absolute: at most relativeError · floor. 1e-30 … 0.5. The default 5e-3 keeps what the viewer and the widget format show (docs/wire-format.md).',
};

function code(args: { relativeError?: number | null; floor?: number | null }): ProbCode {
  try {
    return probCode({ relativeError: args.relativeError ?? undefined, floor: args.floor ?? undefined });
  } catch (err) {
    throw toGraphQLError(err);
  }
}

builder.objectField(LensResultRef, 'packed', (t) =>
  t.field({
    type: PackedLensRef,
    description: 'The same result as base64 typed arrays, probabilities within the stated bound (docs/wire-format.md).',
    args: {
      relativeError: t.arg.float({ defaultValue: DEFAULT_PACK.relativeError, description: BOUND.relativeError }),
      floor: t.arg.float({ defaultValue: DEFAULT_PACK.floor, description: BOUND.floor }),
    },
    resolve: (s, args) => {
      const r = s.result;
      return { modelId: s.modelId, read: r, attention: r.attention ?? null, layers: r.layers.length, positions: r.tokens.length, k: r.topK, code: code(args) };
    },
  }),
);

builder.objectField(LayerResultRef, 'packed', (t) =>
  t.field({
    type: PackedLayerRef,
    description: 'This layer as base64 typed arrays (docs/wire-format.md).',
    args: {
      relativeError: t.arg.float({ defaultValue: DEFAULT_PACK.relativeError, description: BOUND.relativeError }),
      floor: t.arg.float({ defaultValue: DEFAULT_PACK.floor, description: BOUND.floor }),
    },
    resolve: (s, args) => ({ modelId: s.modelId, event: s.event, code: code(args) }),
  }),
);

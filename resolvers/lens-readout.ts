// The fields LensResult and LensAttention share: one read point's top-k, trajectories and stats.
// Defined once here; each type adds its own descriptions (the schema documents LensResult's).

import type { LensReadout } from '../src/lens/types.js';
import { builder } from './builder.js';
import { gridBytes, ID_BYTES, PROB_BYTES, trackedBytes } from './response-budget.js';
import { gridInTurns, inTurns } from './in-turns.js';
import { LensStatsRef } from './lens-stats.js';
import { PRECISION_DESCRIPTION, rounded } from './precision.js';
import { TrackedPositionRef } from './tracked-position.js';

type Types = typeof builder extends PothosSchemaTypes.SchemaBuilder<infer T> ? T : never;

export interface ReadoutOf {
  modelId: string;
  readout: LensReadout;
}

export type ReadoutDescriptions = Partial<Record<keyof LensReadout, string>>;

export function readoutFields<Parent>(
  t: PothosSchemaTypes.ObjectFieldBuilder<Types, Parent>,
  of: (parent: Parent) => ReadoutOf,
  descriptions: ReadoutDescriptions = {},
) {
  return {
    topIndices: t.field({
      type: t.listRef(t.listRef(t.listRef('Int'))),
      description: descriptions.topIndices,
      resolve: (p, _a, ctx) => {
        const { topIndices } = of(p).readout;
        ctx.budget.charge(gridBytes(topIndices, ID_BYTES), 'topIndices');
        return gridInTurns(topIndices, topIndices[0]?.[0]?.length ?? 1);
      },
    }),
    topProbs: t.field({
      type: t.listRef(t.listRef(t.listRef('Float'))),
      description: descriptions.topProbs,
      args: { precision: t.arg.int({ description: PRECISION_DESCRIPTION }) },
      resolve: (p, { precision }, ctx) => {
        const { topProbs } = of(p).readout;
        ctx.budget.charge(gridBytes(topProbs, PROB_BYTES), 'topProbs');
        return gridInTurns(rounded(topProbs, precision), topProbs[0]?.[0]?.length ?? 1);
      },
    }),
    tracked: t.field({
      type: [TrackedPositionRef],
      nullable: true,
      description: descriptions.tracked,
      resolve: (p, _a, ctx) => {
        const { modelId, readout } = of(p);
        ctx.budget.charge(trackedBytes(readout.tracked, readout.topIndices.length), 'tracked');
        if (!readout.tracked) return null;
        const layers = readout.topIndices.length;
        const perPosition = readout.tracked.reduce((n, t) => n + t.tokenIds.length, 0) / Math.max(1, readout.tracked.length);
        return inTurns(readout.tracked.map((tracked) => ({ modelId, tracked })), perPosition * (layers + 1));
      },
    }),
    stats: t.field({
      type: LensStatsRef,
      nullable: true,
      description: descriptions.stats,
      resolve: (p, _a, ctx) => {
        const { stats } = of(p).readout;
        if (stats) ctx.budget.charge(3 * gridBytes(stats.entropy, PROB_BYTES), 'stats');
        return stats;
      },
    }),
  };
}

// LensStats: entropy, KL to the final layer and rank of the final top-1, per cell.

import type { CellStats } from '../src/lens/types.js';
import { builder } from './builder.js';
import { PRECISION_DESCRIPTION, rounded } from './precision.js';

export const LensStatsRef = builder.objectRef<CellStats>('LensStats');

LensStatsRef.implement({
  description: 'Per-cell statistics, indexed [layerIndex][position].',
  fields: (t) => ({
    entropy: t.field({
      type: t.listRef(t.listRef('Float')),
      args: { precision: t.arg.int({ description: PRECISION_DESCRIPTION }) },
      resolve: (s, { precision }) => rounded(s.entropy, precision),
    }),
    klToFinal: t.field({
      type: t.listRef(t.listRef('Float')),
      args: { precision: t.arg.int({ description: PRECISION_DESCRIPTION }) },
      resolve: (s, { precision }) => rounded(s.klToFinal, precision),
    }),
    finalTop1Rank: t.field({ type: t.listRef(t.listRef('Int')), resolve: (s) => s.finalTop1Rank }),
  }),
});

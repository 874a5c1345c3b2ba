// TrackedPosition: the trajectories of one prompt position (mode 2, trackAcrossLayers).

import type { TrackedPosition } from '../src/lens/types.js';
import { builder } from './builder.js';
import { decoder, TokenRef } from './model.js';
import { PRECISION_DESCRIPTION, rounded } from './precision.js';

export interface TrackedShape {
  modelId: string;
  tracked: TrackedPosition;
}

export const TrackedPositionRef = builder.objectRef<TrackedShape>('TrackedPosition');

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
      args: { precision: t.arg.int({ description: PRECISION_DESCRIPTION }) },
      resolve: (s, { precision }) => rounded(s.tracked.probs, precision),
    }),
  }),
});

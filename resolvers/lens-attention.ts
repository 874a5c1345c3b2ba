// LensAttention: the same readout as LensResult, taken right after each block's attention.

import { builder } from './builder.js';
import { readoutFields, type ReadoutOf } from './lens-readout.js';

export const LensAttentionRef = builder.objectRef<ReadoutOf>('LensAttention');

LensAttentionRef.implement({
  description: 'The same reduction read after each block’s attention sub-layer.',
  fields: (t) =>
    readoutFields(t, (a) => a, {
      stats: 'Entropy, KL to the final layer and rank of its top-1 for these reads; null unless stats were requested.',
    }),
});

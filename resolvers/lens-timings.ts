// LensTimings: where the time of one lens request went.

import type { LensTimings } from '../src/lens/types.js';
import { builder } from './builder.js';

export const LensTimingsRef = builder.objectRef<LensTimings>('LensTimings');

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

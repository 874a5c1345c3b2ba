// TokenProb: a predicted token with its probability (the top-k list of a LensCell).

import { builder } from './builder.js';

export interface TokenProbShape {
  id: number;
  text: string;
  prob: number;
}

export const TokenProbRef = builder.objectRef<TokenProbShape>('TokenProb');

TokenProbRef.implement({
  description: 'A predicted token and its probability.',
  fields: (t) => ({
    id: t.exposeInt('id'),
    text: t.exposeString('text'),
    prob: t.exposeFloat('prob'),
  }),
});

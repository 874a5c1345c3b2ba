// The lens kinds (LensInput.lens, LensResult.lens, Model.lenses).

import { builder } from './builder.js';

export const LensKindEnum = builder.enumType('LensKind', {
  description: 'How a residual-stream row becomes a distribution over the vocabulary (see docs/lenses.md).',
  values: {
    LOGIT: { description: 'Final norm, then the unembedding: the row read as if it were the last layer.' },
    TUNED: { description: 'A tuned lens: the layer\'s learned affine translator (h + A h + b) first, then final norm and unembedding.' },
    JACOBIAN: { description: 'A Jacobian lens: the layer\'s average Jacobian to the last layer (J h) first, then final norm and unembedding.' },
  } as const,
});

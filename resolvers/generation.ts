// Generation: how a greedy continuation (LensInput.generate) ended.

import type { GenerationInfo } from '../src/lens/types.js';
import { builder } from './builder.js';

export const GenerationRef = builder.objectRef<GenerationInfo>('Generation');
GenerationRef.implement({
  description: 'How a greedy generation went; the written tokens are the tokens with generated: true.',
  fields: (t) => ({
    maxNewTokens: t.exposeInt('maxNewTokens'),
    newTokens: t.exposeInt('newTokens', { description: 'Tokens written (the last is EOS when stoppedAtEos).' }),
    stoppedAtEos: t.exposeBoolean('stoppedAtEos'),
    eosTokenIds: t.exposeIntList('eosTokenIds', {
      description: "The model's end-of-sequence ids (generation_config.json, else config.json); empty when it names none.",
    }),
  }),
});

// Prompt: the text of a lens request as a first-class value, tokenizable by any served model.

import { createHash } from 'node:crypto';
import { builder } from './builder.js';
import { TokenRef } from './model.js';
import { gatewayError } from './errors.js';
import { requireModel } from './model.js';

export interface PromptShape {
  text: string;
  /** The model the prompt was run with; `tokens` uses it when no model is given. */
  modelId: string | null;
}

/** Content-addressed so the same text has the same id in every result and on every replica. */
export function promptId(text: string): string {
  return 'prompt:' + createHash('sha256').update(text).digest('base64url').slice(0, 22);
}

export const PromptRef = builder.objectRef<PromptShape>('Prompt');

PromptRef.implement({
  fields: (t) => ({
    id: t.id({ resolve: (p) => promptId(p.text) }),
    text: t.exposeString('text'),
    tokens: t.field({
      type: [TokenRef],
      description: "The prompt's tokens under a model's tokenizer; default: the model it was run with.",
      args: { model: t.arg.id() },
      resolve: (p, args, ctx) => {
        const model = args.model ?? p.modelId;
        if (!model) throw gatewayError('BAD_USER_INPUT', 'Prompt.tokens needs a model');
        requireModel(ctx, model);
        return ctx.loaders.tokens.load({ model, text: p.text });
      },
    }),
  }),
});

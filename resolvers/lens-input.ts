// LensInput and its validation. Input is checked here, before a job is queued, so bad requests fail
// fast with BAD_USER_INPUT / PROMPT_TOO_LONG / MODEL_NOT_FOUND and never take a queue slot.

import type { LensKind, LensOptions, LensPoint, Token } from '../src/lens/types.js';
import { validate, type ValidRequest } from '../src/lens/validate.js';
import type { ServedModel } from './services.js';
import { builder } from './builder.js';
import type { GatewayContext } from './context.js';
import { gatewayError, toGraphQLError } from './errors.js';
import { LensKindEnum } from './lens-kind.js';
import { requireModel } from './model.js';

export const LensPointEnum = builder.enumType('LensPoint', {
  description: 'Where in each block the residual stream is read.',
  values: {
    BLOCK_OUTPUT: { description: 'After the whole block (the classic logit lens).' },
    ATTENTION_OUTPUT: { description: 'After the attention sub-layer, before the MLP.' },
  } as const,
});

export const GenerateInputRef = builder.inputType('GenerateInput', {
  description:
    'Greedy continuation: the model writes up to maxNewTokens tokens (stopping after its EOS token) and the lens runs at every written position too.',
  fields: (t) => ({
    maxNewTokens: t.int({ required: true, description: '1 ≤ maxNewTokens ≤ the server limit (default 64; `npm start -- --max-new-tokens N`), and prompt + maxNewTokens ≤ Model.maxPositions.' }),
  }),
});

export const LensInputRef = builder.inputType('LensInput', {
  fields: (t) => ({
    model: t.id({ required: true, description: 'Id of a served model (see Query.models).' }),
    prompt: t.string({ required: true }),
    lens: t.field({
      type: LensKindEnum,
      defaultValue: 'LOGIT',
      description: 'Lens kind; Model.lenses lists what a model serves. A kind it lacks is an error with code LENS_UNAVAILABLE.',
    }),
    topK: t.int({ defaultValue: 5, description: 'Predictions kept per cell; 1 ≤ topK ≤ min(vocabSize, server limit).' }),
    trackAcrossLayers: t.boolean({
      defaultValue: false,
      description: 'Per position, the probability at every requested layer of each token that was top-k at any of them.',
    }),
    layers: t.intList({ description: 'Layer subset (0-based, any order, no duplicates); default all layers.' }),
    stats: t.boolean({ defaultValue: false, description: 'Per-cell entropy, KL to the final layer, and rank of the final top-1.' }),
    points: t.field({
      type: [LensPointEnum],
      description: 'Read points; default [BLOCK_OUTPUT]. Adding ATTENTION_OUTPUT fills LensResult.attention.',
    }),
    generate: t.field({
      type: GenerateInputRef,
      description: 'Continue the prompt greedily; LensResult.tokens then ends with the generated tokens (Token.generated).',
    }),
  }),
});

export interface LensInputValue {
  model: string;
  prompt: string;
  lens?: LensKind | null;
  topK?: number | null;
  trackAcrossLayers?: boolean | null;
  layers?: readonly number[] | null;
  stats?: boolean | null;
  points?: readonly LensPoint[] | null;
  generate?: { maxNewTokens: number } | null;
}

export interface ValidLensRequest {
  served: ServedModel;
  prompt: string;
  tokens: Token[];
  layers: number[];
  points: LensPoint[];
  options: LensOptions;
}

/**
 * Checks a LensInput with the core's validation (src/lens/validate.ts), adding only this server's
 * limits. The prompt is tokenized once, here: the ids travel with the request (LensOptions.promptIds)
 * so the model does not tokenize it again.
 */
export function validateLensInput(ctx: GatewayContext, input: LensInputValue): ValidLensRequest {
  const served = requireModel(ctx, input.model);
  const info = served.model.info;
  // Before tokenizing: a huge prompt must not cost the server a tokenization.
  if (input.prompt.length > ctx.limits.maxPromptChars) {
    throw gatewayError('PROMPT_TOO_LONG', `prompt is longer than ${ctx.limits.maxPromptChars} characters`);
  }
  const tokens = input.prompt.length ? served.model.tokenize(input.prompt) : [];
  const options: LensOptions = {
    topK: input.topK ?? 5,
    trackAcrossLayers: input.trackAcrossLayers ?? false,
    layers: input.layers == null ? undefined : [...input.layers],
    points: input.points == null ? undefined : [...input.points],
    stats: input.stats ?? false,
    generate: input.generate ? { maxNewTokens: input.generate.maxNewTokens } : undefined,
    lens: input.lens ?? 'LOGIT',
  };
  let valid: ValidRequest;
  try {
    valid = validate(
      input.prompt,
      tokens.map((t) => t.id),
      options,
      info,
      { maxTopK: ctx.limits.maxTopK, maxNewTokens: ctx.limits.maxNewTokens },
    );
  } catch (err) {
    throw toGraphQLError(err);
  }
  return {
    served,
    prompt: input.prompt,
    tokens,
    layers: valid.layers,
    points: valid.points,
    options: {
      ...options,
      // Canonical forms (layers ascending, points in residual order), so equal requests share a cache key.
      layers: input.layers == null ? undefined : valid.layers,
      points: valid.points,
      promptIds: valid.ids,
    },
  };
}

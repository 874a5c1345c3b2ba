// LensInput and its validation. Input is checked here, before a job is queued, so bad requests fail
// fast with BAD_USER_INPUT / PROMPT_TOO_LONG / MODEL_NOT_FOUND and never take a queue slot.

import type { LensKind, LensOptions, LensPoint, Token } from '../src/lens/types.js';
import { lensOf } from '../src/lens/validate.js';
import type { ServedModel } from './services.js';
import { builder } from './builder.js';
import type { GatewayContext } from './context.js';
import { gatewayError } from './errors.js';
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

const POINT_ORDER: LensPoint[] = ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'];

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

export function validateLensInput(ctx: GatewayContext, input: LensInputValue): ValidLensRequest {
  const served = requireModel(ctx, input.model);
  const info = served.model.info;
  if (input.prompt.length === 0) throw gatewayError('BAD_USER_INPUT', 'prompt must not be empty');
  if (input.prompt.length > ctx.limits.maxPromptChars) {
    throw gatewayError('PROMPT_TOO_LONG', `prompt is longer than ${ctx.limits.maxPromptChars} characters`);
  }
  const topK = input.topK ?? 5;
  const maxK = Math.min(info.vocabSize, ctx.limits.maxTopK);
  if (!Number.isInteger(topK) || topK < 1 || topK > maxK) {
    throw gatewayError('BAD_USER_INPUT', `topK must be between 1 and ${maxK}, got ${topK}`);
  }
  const lens = input.lens ?? 'LOGIT';
  let lensLayers: number[];
  try {
    lensLayers = lensOf(lens, info)?.layers ?? Array.from({ length: info.numLayers }, (_, i) => i);
  } catch (e) {
    throw gatewayError('LENS_UNAVAILABLE', (e as Error).message);
  }
  let layers: number[];
  if (input.layers == null) {
    layers = [...lensLayers];
  } else {
    if (input.layers.length === 0) throw gatewayError('BAD_USER_INPUT', 'layers must not be empty (omit it for all layers)');
    const seen = new Set<number>();
    for (const l of input.layers) {
      if (l < 0 || l >= info.numLayers) {
        throw gatewayError('BAD_USER_INPUT', `layer ${l} is out of range: ${info.id} has layers 0..${info.numLayers - 1}`);
      }
      if (seen.has(l)) throw gatewayError('BAD_USER_INPUT', `layer ${l} is listed twice`);
      seen.add(l);
    }
    layers = [...seen].sort((a, b) => a - b);
    const missing = layers.filter((l) => !lensLayers.includes(l));
    if (missing.length) {
      throw gatewayError('LENS_UNAVAILABLE', `the ${lens} lens of ${info.id} does not read layer(s) ${missing.join(', ')}; it reads ${lensLayers.join(', ')}`);
    }
  }
  if (input.points && input.points.length === 0) throw gatewayError('BAD_USER_INPUT', 'points must not be empty (omit it for BLOCK_OUTPUT)');
  if (input.points && new Set(input.points).size !== input.points.length) throw gatewayError('BAD_USER_INPUT', 'points contains duplicates');
  // Same order as the core reports them: block output first.
  const points = POINT_ORDER.filter((p) => (input.points ?? ['BLOCK_OUTPUT']).includes(p));
  const tokens = served.model.tokenize(input.prompt);
  if (tokens.length === 0) throw gatewayError('BAD_USER_INPUT', 'prompt has no tokens');
  if (tokens.length > info.maxPositions) {
    throw gatewayError(
      'PROMPT_TOO_LONG',
      `prompt has ${tokens.length} tokens; ${info.id} accepts at most ${info.maxPositions}`,
    );
  }
  let generate: LensOptions['generate'];
  if (input.generate) {
    const n = input.generate.maxNewTokens;
    if (n < 1 || n > ctx.limits.maxNewTokens) {
      throw gatewayError('BAD_USER_INPUT', `generate.maxNewTokens must be between 1 and ${ctx.limits.maxNewTokens} (server limit), got ${n}`);
    }
    if (tokens.length + n > info.maxPositions) {
      throw gatewayError(
        'PROMPT_TOO_LONG',
        `prompt (${tokens.length} tokens) + maxNewTokens (${n}) exceeds the ${info.maxPositions} positions ${info.id} takes`,
      );
    }
    generate = { maxNewTokens: n };
  }
  return {
    served,
    prompt: input.prompt,
    tokens,
    layers,
    points,
    options: {
      lens,
      topK,
      trackAcrossLayers: input.trackAcrossLayers ?? false,
      layers: input.layers == null ? undefined : layers,
      points,
      stats: input.stats ?? false,
      generate,
    },
  };
}

// Model and Token types; the model list and tokenization queries.

import { hostname } from 'node:os';
import type { ModelInfo, QuantizationInfo, Token } from '../src/lens/types.js';
import type { Placement } from './services.js';
import { builder } from './builder.js';
import type { GatewayContext } from './context.js';
import { gatewayError } from './errors.js';

export const ModelRef = builder.objectRef<ModelInfo>('Model');

const PlacementRef = builder.objectRef<Placement>('ModelPlacement');
PlacementRef.implement({
  description: 'One process that runs a model: this server, or a cluster worker in distributed mode.',
  fields: (t) => ({
    worker: t.exposeString('worker', { description: 'Process id, "host:pid" unless the operator named it.' }),
    host: t.exposeString('host'),
    device: t.exposeString('device', { description: 'Execution provider in use there: "cpu" or "cuda".' }),
    computeType: t.exposeString('computeType'),
  }),
});

const QuantizationRef = builder.objectRef<QuantizationInfo>('Quantization');
QuantizationRef.implement({
  description:
    'Weight-only quantization of the transformer blocks (ONNX Runtime MatMulNBits on CPU, int8 activations inside the kernel). ' +
    'The unembedding (lens head, stats, trajectories) and the embedding stay exact; the error this adds is documented in the README.',
  fields: (t) => ({
    mode: t.exposeString('mode', { description: '"int8" or "int4".' }),
    bits: t.exposeInt('bits'),
    blockSize: t.exposeInt('blockSize', { description: 'Weights per scale and zero point (along the input dimension).' }),
    cached: t.boolean({
      description: 'Whether the quantized weights are cached next to the checkpoint (else they are quantized at every load).',
      resolve: (q) => q.cacheDir !== null,
    }),
  }),
});

ModelRef.implement({
  description: 'A checkpoint the operator configured. Clients choose among these by id; they never supply paths.',
  fields: (t) => ({
    id: t.exposeID('id'),
    modelType: t.exposeString('modelType', { description: 'Architecture family, e.g. "gpt2", "llama".' }),
    numLayers: t.exposeInt('numLayers'),
    hiddenSize: t.exposeInt('hiddenSize'),
    vocabSize: t.exposeInt('vocabSize'),
    maxPositions: t.exposeInt('maxPositions', { description: 'Longest prompt in tokens.' }),
    device: t.exposeString('device', { description: 'Execution provider in use: "cpu" or "cuda".' }),
    deviceNote: t.exposeString('deviceNote', {
      nullable: true,
      description: 'Why the device differs from what was asked (e.g. CUDA fallback reason); null otherwise.',
    }),
    dtype: t.exposeString('dtype', { description: 'Checkpoint weight dtype: "F32", "F16" or "BF16".' }),
    computeType: t.exposeString('computeType', { description: 'Type the graphs compute in: "float32" or "float16".' }),
    // Float, not Int: parameter counts pass 2^31 (an 8B model) and GraphQL Int is 32-bit.
    parameters: t.exposeFloat('parameters', { description: 'Parameter count (exact up to 2^53).' }),
    quantization: t.field({
      type: QuantizationRef,
      nullable: true,
      description: 'How the blocks\' weights are quantized; null when they are used as stored (float32, float16 or bfloat16).',
      resolve: (m) => m.quantization ?? null,
    }),
    tokenizerHash: t.string({
      nullable: true,
      description: 'sha256 of what decides token ids (vocabulary, merges, added tokens, pre/post-processing): models with equal hashes can be compared (Query.lensCompare).',
      resolve: (m) => m.tokenizerHash ?? null,
    }),
    servedBy: t.field({
      type: [PlacementRef],
      description: 'Where the model runs: this server, or each live cluster worker holding it (distributed mode).',
      resolve: (info, _args, ctx) =>
        ctx.registry.get(info.id)?.placements ?? [
          { worker: `${hostname()}:${process.pid}`, host: hostname(), device: info.device, computeType: info.computeType },
        ],
    }),
  }),
});

export const TokenRef = builder.objectRef<Token>('Token');

TokenRef.implement({
  description: 'One token of a prompt (or a vocabulary entry when it stands for a prediction).',
  fields: (t) => ({
    position: t.exposeInt('position'),
    id: t.exposeInt('id'),
    text: t.exposeString('text', { description: 'Decoded text of this single token; "" for ids without text.' }),
    generated: t.boolean({
      description: 'True for tokens the model wrote (LensInput.generate); false for prompt tokens and predictions.',
      resolve: (tok) => tok.generated ?? false,
    }),
  }),
});

export function requireModel(ctx: GatewayContext, id: string) {
  const served = ctx.registry.get(id);
  if (!served) {
    const known = ctx.registry.list().map((s) => s.model.info.id);
    throw gatewayError('MODEL_NOT_FOUND', `No model "${id}" is served here (available: ${known.join(', ') || 'none'})`);
  }
  return served;
}

/** Decodes vocabulary ids with the tokenizer of a served model. */
export function decoder(ctx: GatewayContext, modelId: string): (id: number) => string {
  const model = requireModel(ctx, modelId).model;
  return (id) => model.decode(id);
}

builder.queryFields((t) => ({
  models: t.field({
    type: [ModelRef],
    description: 'Every model this server serves (in distributed mode: that at least one live worker holds).',
    resolve: (_root, _args, ctx) =>
      ctx.registry
        .list()
        .filter((s) => s.placements === null || s.placements.length > 0)
        .map((s) => s.model.info),
  }),
  model: t.field({
    type: ModelRef,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, ctx) => ctx.registry.get(id)?.model.info ?? null,
  }),
  tokenize: t.field({
    type: [TokenRef],
    args: {
      model: t.arg.id({ required: true }),
      text: t.arg.string({ required: true }),
    },
    resolve: (_root, args, ctx) => {
      requireModel(ctx, args.model);
      if (args.text.length > ctx.limits.maxPromptChars) {
        throw gatewayError('PROMPT_TOO_LONG', `Text is longer than ${ctx.limits.maxPromptChars} characters`);
      }
      return ctx.loaders.tokens.load({ model: args.model, text: args.text });
    },
  }),
}));

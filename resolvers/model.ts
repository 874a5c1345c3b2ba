// Model (with its load status and progress) and Token types; the model list, tokenization, and
// Subscription.modelStatus.

import { hostname } from 'node:os';
import type { LensInfo, ModelInfo, QuantizationInfo, Token } from '../src/lens/types.js';
import { Repeater } from 'graphql-yoga';
import { builder } from './builder.js';
import { LensKindEnum } from './lens-kind.js';
import type { GatewayContext } from './context.js';
import { gatewayError } from './errors.js';
import { readyModelState, type ModelLoadError, type ModelState, type Placement } from './services.js';

/** A served model as results carry it (READY), or any configured model's load state. */
export type ModelParent = ModelInfo | ModelState;

const infoOf = (m: ModelParent): ModelInfo | null => ('status' in m ? m.info : m);
/** The live load state; results carry ModelInfo only. */
const stateOf = (ctx: GatewayContext, m: ModelParent): ModelState | null => ('status' in m ? m : (ctx.registry.state(m.id) ?? null));

export const ModelRef = builder.objectRef<ModelParent>('Model');

export const ModelStatusEnum = builder.enumType('ModelStatus', {
  description: 'Where a configured model stands. Lens requests are answered only for READY models.',
  values: {
    LOADING: { description: 'Being opened (see Model.progress); lens requests get MODEL_LOADING.' },
    READY: { description: 'Serving.' },
    FAILED: { description: 'Could not be opened (see Model.error); lens requests get MODEL_FAILED. Other models are unaffected.' },
  } as const,
});

const ModelLoadProgressRef = builder.objectRef<ModelState>('ModelLoadProgress');
ModelLoadProgressRef.implement({
  description: 'How far opening a model has got: block sessions created and checkpoint bytes mapped.',
  fields: (t) => ({
    layersBuilt: t.exposeInt('layersBuilt', { description: 'Transformer blocks ready, of layersTotal.' }),
    layersTotal: t.exposeInt('layersTotal', { nullable: true, description: 'Null until the checkpoint is read.' }),
    bytesMapped: t.exposeFloat('bytesMapped', { description: 'Checkpoint bytes handed to ONNX Runtime (memory-mapped) so far.' }),
    bytesTotal: t.exposeFloat('bytesTotal', { nullable: true, description: 'Checkpoint bytes the model uses; null until the checkpoint is read.' }),
    fraction: t.float({
      nullable: true,
      description: 'bytesMapped / bytesTotal (1 when READY); null until known.',
      resolve: (s) => (s.status === 'READY' ? 1 : s.bytesTotal ? s.bytesMapped / s.bytesTotal : null),
    }),
    elapsedMs: t.float({
      description: 'Time spent opening the model (so far while LOADING).',
      resolve: (s) => (s.finishedAt ?? Date.now()) - s.startedAt,
    }),
  }),
});

const ModelLoadErrorRef = builder.objectRef<ModelLoadError>('ModelLoadError');
ModelLoadErrorRef.implement({
  description: 'Why a model could not be opened. The message names files relative to the model directory, never server paths.',
  fields: (t) => ({
    code: t.exposeString('code', { description: 'e.g. CHECKPOINT_INVALID, UNKNOWN_MODEL_TYPE, DEVICE_UNAVAILABLE.' }),
    message: t.exposeString('message'),
  }),
});

const ModelLensRef = builder.objectRef<LensInfo>('ModelLens').implement({
  description: 'A lens kind a model serves.',
  fields: (t) => ({
    kind: t.field({ type: LensKindEnum, resolve: (l) => l.kind }),
    layers: t.intList({ description: 'Layers this lens reads (a Jacobian lens file may cover only some).', resolve: (l) => l.layers }),
    about: t.string({
      nullable: true,
      description: 'JSON of what the lens file says about itself (tuned: base model; Jacobian: n_prompts, provenance); null for LOGIT.',
      resolve: (l) => (l.about ? JSON.stringify(l.about) : null),
    }),
    contentHash: t.string({
      nullable: true,
      description: 'sha256 over the lens\'s translators (layer, dtype, shape, numbers): equal hashes, same lens; null for LOGIT.',
      resolve: (l) => l.contentHash ?? null,
    }),
  }),
});

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

/** A field of the model's info: known once the checkpoint is read, so null for a model that failed before. */
function infoField<K extends keyof ModelInfo>(key: K) {
  return (m: ModelParent) => (infoOf(m)?.[key] ?? null) as ModelInfo[K] | null;
}

ModelRef.implement({
  description:
    'A checkpoint the operator configured. Clients choose among these by id; they never supply paths. ' +
    'The descriptive fields are known early while LOADING and are null only for a model that failed before its checkpoint was read.',
  fields: (t) => ({
    id: t.exposeID('id'),
    status: t.field({ type: ModelStatusEnum, resolve: (m, _a, ctx) => stateOf(ctx, m)?.status ?? 'READY' }),
    progress: t.field({
      type: ModelLoadProgressRef,
      description: 'Load progress; Subscription.modelStatus streams it.',
      // A model known only from a stored result (never registered) is serving.
      resolve: (m, _a, ctx) => stateOf(ctx, m) ?? readyModelState(m as ModelInfo),
    }),
    error: t.field({ type: ModelLoadErrorRef, nullable: true, description: 'Set when status is FAILED.', resolve: (m, _a, ctx) => stateOf(ctx, m)?.error ?? null }),
    modelType: t.string({ nullable: true, description: 'Architecture family, e.g. "gpt2", "llama".', resolve: infoField('modelType') }),
    numLayers: t.int({ nullable: true, resolve: infoField('numLayers') }),
    hiddenSize: t.int({ nullable: true, resolve: infoField('hiddenSize') }),
    vocabSize: t.int({ nullable: true, resolve: infoField('vocabSize') }),
    maxPositions: t.int({ nullable: true, description: 'Longest prompt in tokens.', resolve: infoField('maxPositions') }),
    device: t.string({ nullable: true, description: 'Execution provider in use: "cpu" or "cuda".', resolve: infoField('device') }),
    deviceNote: t.string({
      nullable: true,
      description: 'Why the device differs from what was asked (e.g. CUDA fallback reason); null otherwise.',
      resolve: infoField('deviceNote'),
    }),
    dtype: t.string({ nullable: true, description: 'Checkpoint weight dtype: "F32", "F16" or "BF16".', resolve: infoField('dtype') }),
    computeType: t.string({ nullable: true, description: 'Type the graphs compute in: "float32" or "float16".', resolve: infoField('computeType') }),
    // Float, not Int: parameter counts pass 2^31 (an 8B model) and GraphQL Int is 32-bit.
    parameters: t.float({ nullable: true, description: 'Parameter count (exact up to 2^53).', resolve: infoField('parameters') }),
    quantization: t.field({
      type: QuantizationRef,
      nullable: true,
      description: 'How the blocks\' weights are quantized; null when they are used as stored (float32, float16 or bfloat16), or not known yet.',
      resolve: (m) => infoOf(m)?.quantization ?? null,
    }),
    tokenizerHash: t.string({
      nullable: true,
      description: 'sha256 of what decides token ids (vocabulary, merges, added tokens, pre/post-processing): models with equal hashes can be compared (Query.lensCompare).',
      resolve: (m) => infoOf(m)?.tokenizerHash ?? null,
    }),
    lenses: t.field({
      type: [ModelLensRef],
      description: 'Lens kinds this model serves: LOGIT always, TUNED and JACOBIAN when the operator loaded their files; empty until READY.',
      resolve: (m) => {
        const info = infoOf(m);
        if (!info) return [];
        return info.lenses ?? [{ kind: 'LOGIT', layers: Array.from({ length: info.numLayers }, (_, i) => i), about: null, contentHash: null }];
      },
    }),
    servedBy: t.field({
      type: [PlacementRef],
      description: 'Where the model runs: this server, or each live cluster worker holding it (distributed mode); empty until READY.',
      resolve: (m, _args, ctx) => {
        const info = ctx.registry.get(m.id)?.model.info ?? ('status' in m ? null : m);
        if (!info) return [];
        return (
          ctx.registry.get(m.id)?.placements ?? [
            { worker: `${hostname()}:${process.pid}`, host: hostname(), device: info.device, computeType: info.computeType },
          ]
        );
      },
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

/** A READY model, or a coded error: MODEL_NOT_FOUND, MODEL_LOADING (with progress) or MODEL_FAILED. */
export function requireModel(ctx: GatewayContext, id: string) {
  const served = ctx.registry.get(id);
  if (served) return served;
  const state = ctx.registry.state(id);
  if (state?.status === 'LOADING') {
    const of = state.layersTotal === null ? '' : ` (${state.layersBuilt}/${state.layersTotal} layers built)`;
    throw gatewayError('MODEL_LOADING', `Model "${id}" is still loading${of}; retry when Model.status is READY`);
  }
  if (state?.status === 'FAILED') {
    throw gatewayError('MODEL_FAILED', `Model "${id}" failed to load (${state.error?.code}): ${state.error?.message}`);
  }
  const known = ctx.registry.all().map((s) => s.id);
  throw gatewayError('MODEL_NOT_FOUND', `No model "${id}" is served here (available: ${known.join(', ') || 'none'})`);
}

/** Decodes vocabulary ids with the tokenizer of a served model. */
export function decoder(ctx: GatewayContext, modelId: string): (id: number) => string {
  const model = requireModel(ctx, modelId).model;
  return (id) => model.decode(id);
}

builder.queryFields((t) => ({
  models: t.field({
    type: [ModelRef],
    description:
      'Every configured model, in configuration order, whatever its status (in distributed mode, READY models only while a live worker holds them).',
    resolve: (_root, _args, ctx) =>
      ctx.registry.all().filter((s) => {
        const placements = ctx.registry.get(s.id)?.placements;
        return placements == null || placements.length > 0;
      }),
  }),
  model: t.field({
    type: ModelRef,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, ctx) => ctx.registry.state(id) ?? null,
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

builder.subscriptionFields((t) => ({
  modelStatus: t.field({
    type: ModelRef,
    args: { id: t.arg.id({ description: 'One model; omit for every configured model.' }) },
    description:
      'The model\'s current state at once, then every status or progress change (one event per block loaded). ' +
      'Ends after the model is READY or FAILED (without id: once no model is LOADING).',
    subscribe: (_root, { id }, ctx) => {
      const registry = ctx.registry;
      if (id != null && !registry.state(id)) {
        const known = registry.all().map((s) => s.id);
        throw gatewayError('MODEL_NOT_FOUND', `No model "${id}" is configured here (available: ${known.join(', ') || 'none'})`);
      }
      const settled = () => (id != null ? registry.state(id)!.status !== 'LOADING' : registry.all().every((s) => s.status !== 'LOADING'));
      return new Repeater<ModelState>(async (push, stop) => {
        const unsubscribe = registry.onChange((s) => {
          if (id != null && s.id !== id) return;
          void push(s);
          if (settled()) stop();
        });
        void stop.then(unsubscribe);
        // Queued without awaiting, so no change can slip in between and be followed by a stale state.
        for (const s of id != null ? [registry.state(id)!] : registry.all()) void push(s);
        if (settled()) stop();
        await stop;
        unsubscribe();
      });
    },
    resolve: (s: ModelState) => s,
  }),
}));

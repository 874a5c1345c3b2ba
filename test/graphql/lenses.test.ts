// LensInput.lens and Model.lenses over GraphQL (HTTP and SSE) against a live gateway serving a tiny
// Llama with a tuned lens and a Jacobian lens that covers only layers 0 and 2 (files made by PyTorch,
// test/fixtures/lenses/make.py). Expected values: the lens core called directly.
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { parse } from 'graphql';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openModel } from '../../src/lens/index.js';
import type { LensModel, LensResult } from '../../src/lens/types.js';
import { makeCheckpoint, RECIPES, type FixtureRecipe } from '../helpers/fixtures.js';
import { collect, http, sseClient, startGateway, type Gateway } from '../server/harness.js';
import { openTinyGpt2 } from '../server/models.js';

const FIX = resolve('test/fixtures/lenses');
const D16: FixtureRecipe = {
  ...RECIPES['llama-gqa-tied'],
  name: 'llama-d16-4layers',
  seed: 91,
  hidden: 16,
  heads: 1,
  kvHeads: 1,
  headDim: 16,
  layers: 4,
} as FixtureRecipe;
const PROMPT = 'Hello world, hello';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const doc = (s: string) => parse(s) as TypedDocumentNode<any, any>;

let gw: Gateway;
let lensed: LensModel;
let plain: LensModel;

beforeAll(async () => {
  lensed = await openModel(makeCheckpoint(D16), {
    id: 'd16',
    device: 'cpu',
    lenses: { tuned: join(FIX, 'tuned-d16'), jacobian: join(FIX, 'jacobian-d16.pt') },
  });
  plain = await openTinyGpt2();
  gw = await startGateway([lensed, plain]);
});
afterAll(async () => {
  await gw?.stop();
  await lensed?.close();
  await plain?.close();
});

const LENS = doc(`query ($input: LensInput!) {
  lens(input: $input) { lens layers topIndices topProbs attention { topIndices topProbs } stats { entropy klToFinal } widget }
}`);

describe('lens kinds over GraphQL', () => {
  test('Model.lenses lists each kind with the layers it reads and what its file says', async () => {
    const r = await http(gw.url, doc('{ models { id lenses { kind layers about } } }'));
    expect(r.errors).toBeUndefined();
    const [d16, gpt2] = r.data.models;
    expect(d16.lenses.map((l: { kind: string; layers: number[] }) => [l.kind, l.layers])).toEqual([
      ['LOGIT', [0, 1, 2, 3]],
      ['TUNED', [0, 1, 2, 3]],
      ['JACOBIAN', [0, 2, 3]],
    ]);
    expect(JSON.parse(d16.lenses[2].about)).toMatchObject({ n_prompts: 3 });
    expect(JSON.parse(d16.lenses[1].about)).toMatchObject({ base_model_name_or_path: 'random-d16' });
    expect(gpt2.lenses).toEqual([{ kind: 'LOGIT', layers: [0, 1, 2], about: null }]);
  });

  for (const kind of ['TUNED', 'JACOBIAN'] as const) {
    test(`lens: ${kind} returns what the core computes, both read points and stats`, async () => {
      const opts = { lens: kind, topK: 3, points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] as const, stats: true };
      const direct: LensResult = await lensed.lens(PROMPT, { ...opts, points: [...opts.points] });
      const r = await http(gw.url, LENS, { input: { model: 'd16', prompt: PROMPT, ...opts } });
      expect(r.errors).toBeUndefined();
      const got = r.data.lens;
      expect(got.lens).toBe(kind);
      expect(got.layers).toEqual(direct.layers);
      expect(got.topIndices).toEqual(direct.topIndices);
      expect(got.topProbs).toEqual(direct.topProbs);
      expect(got.attention.topIndices).toEqual(direct.attention!.topIndices);
      expect(got.stats.klToFinal).toEqual(direct.stats!.klToFinal);
      // The widget carries the same layers and predictions.
      expect(got.widget.layers).toEqual(direct.layers);
    });
  }

  test('a kind the model lacks, or a layer the lens does not read, is LENS_UNAVAILABLE', async () => {
    const a = await http(gw.url, LENS, { input: { model: 'gpt2-tiny', prompt: PROMPT, lens: 'TUNED' } });
    expect(a.errors![0].extensions!.code).toBe('LENS_UNAVAILABLE');
    expect(a.errors![0].message).toMatch(/available: LOGIT/);
    const b = await http(gw.url, LENS, { input: { model: 'd16', prompt: PROMPT, lens: 'JACOBIAN', layers: [1, 2] } });
    expect(b.errors![0].extensions!.code).toBe('LENS_UNAVAILABLE');
    expect(b.errors![0].message).toMatch(/layer\(s\) 1/);
  });

  test('the subscription streams one LayerResult per layer the lens reads (SSE)', async () => {
    const sub = doc(`subscription ($input: LensInput!) {
      lensLayers(input: $input) {
        __typename
        ... on LayerResult { layer point topIndices topProbs }
        ... on LensCompleted { result { lens topIndices } }
      }
    }`);
    const direct = await lensed.lens(PROMPT, { lens: 'JACOBIAN', topK: 2 });
    const client = sseClient(gw.url);
    const events = await collect(client, sub, { input: { model: 'd16', prompt: PROMPT, lens: 'JACOBIAN', topK: 2 } });
    client.dispose();
    const layers = events.map((e) => e.data!.lensLayers).filter((e) => e.__typename === 'LayerResult');
    expect(layers.map((e) => e.layer)).toEqual([0, 2, 3]);
    layers.forEach((e, i) => {
      expect(e.topIndices).toEqual(direct.topIndices[i]);
      expect(e.topProbs).toEqual(direct.topProbs[i]);
    });
    const done = events.at(-1)!.data!.lensLayers;
    expect(done.result).toEqual({ lens: 'JACOBIAN', topIndices: direct.topIndices });
  });
});

// LensInput.lens and Model.lenses over GraphQL (HTTP and SSE) against a live gateway serving a tiny
// Llama with a tuned lens and a Jacobian lens that covers only layers 0 and 2 (files made by PyTorch,
// test/fixtures/lenses/make.py). Expected values: the lens core called directly.
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openModel } from '../../src/lens/index.js';
import type { LensModel, LensResult } from '../../src/lens/types.js';
import { LENS_FILES_D16, LENSED_D16, makeCheckpoint } from '../helpers/fixtures.js';
import { collect, http, sseClient, startGateway, type Gateway } from '../server/harness.js';
import { openTinyGpt2 } from '../server/models.js';

const PROMPT = 'Hello world, hello';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const doc = (s: string) => parse(s) as TypedDocumentNode<any, any>;

let gw: Gateway;
let lensed: LensModel;
let plain: LensModel;

beforeAll(async () => {
  lensed = await openModel(makeCheckpoint(LENSED_D16), { id: 'd16', device: 'cpu', lenses: LENS_FILES_D16 });
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
    const r = await http(gw.url, doc('{ models { id lenses { kind layers about contentHash } } }'));
    expect(r.errors).toBeUndefined();
    const [d16, gpt2] = r.data.models;
    expect(d16.lenses.map((l: { kind: string; layers: number[] }) => [l.kind, l.layers])).toEqual([
      ['LOGIT', [0, 1, 2, 3]],
      ['TUNED', [0, 1, 2, 3]],
      ['JACOBIAN', [0, 2, 3]],
    ]);
    expect(JSON.parse(d16.lenses[2].about)).toMatchObject({ n_prompts: 3 });
    expect(JSON.parse(d16.lenses[1].about)).toMatchObject({ base_model_name_or_path: 'random-d16' });
    expect(gpt2.lenses).toEqual([{ kind: 'LOGIT', layers: [0, 1, 2], about: null, contentHash: null }]);
    // The translators' hash: one per file, the same for the file read as .pt or as safetensors.
    expect(d16.lenses[0].contentHash).toBeNull();
    expect(d16.lenses[1].contentHash).toMatch(/^[0-9a-f]{64}$/);
    expect(d16.lenses[2].contentHash).not.toBe(d16.lenses[1].contentHash);
    const st = await openModel(makeCheckpoint(LENSED_D16), { device: 'cpu', lenses: { jacobian: LENS_FILES_D16.jacobian.replace(/\.pt$/, '.safetensors') } });
    try {
      expect(st.info.lenses[1].contentHash).toBe(d16.lenses[2].contentHash);
    } finally {
      await st.close();
    }
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

  test('a tuned lens over generated positions: LensStarted, prompt layers, one PositionResult per written token, all as the core computes', async () => {
    const sub = doc(`subscription ($input: LensInput!) {
      lensLayers(input: $input) {
        __typename
        ... on LensStarted { maxNewTokens }
        ... on LayerResult { layer }
        ... on PositionResult { position token { id generated } topIndices topProbs }
        ... on LensCompleted { result { lens tokens { id generated } topIndices topProbs } }
      }
    }`);
    const opts = { lens: 'TUNED' as const, topK: 3, generate: { maxNewTokens: 3 } };
    const direct = await lensed.lens(PROMPT, opts);
    const client = sseClient(gw.url);
    const events = (await collect(client, sub, { input: { model: 'd16', prompt: PROMPT, ...opts } })).map((e) => {
      expect(e.errors).toBeUndefined();
      return e.data!.lensLayers;
    });
    client.dispose();
    const promptLen = direct.tokens.filter((t) => !t.generated).length;
    expect(events.map((e) => e.__typename)).toEqual(['LensStarted', ...Array(4).fill('LayerResult'), ...Array(3).fill('PositionResult'), 'LensCompleted']);
    events.slice(5, 8).forEach((e, i) => {
      const p = promptLen + i;
      expect(e.position).toBe(p);
      expect(e.token).toEqual({ id: direct.tokens[p].id, generated: true });
      expect(e.topIndices).toEqual(direct.topIndices.map((layer) => layer[p]));
      expect(e.topProbs).toEqual(direct.topProbs.map((layer) => layer[p]));
    });
    const done = events.at(-1)!.result;
    expect(done.lens).toBe('TUNED');
    expect(done.topIndices).toEqual(direct.topIndices);
    // The tuned lens reads the generated columns differently from the logit lens; the tokens written are the model's.
    const logit = await lensed.lens(PROMPT, { topK: 3, generate: { maxNewTokens: 3 } });
    expect(logit.tokens).toEqual(direct.tokens);
    expect(logit.topProbs).not.toEqual(direct.topProbs);
  });

  test('lensCompare pairs lens kinds: TUNED against LOGIT of one prompt, and a kind against itself is 0', async () => {
    const CMP = doc(`query ($a: LensInput!, $b: LensInput!) {
      lensCompare(a: $a, b: $b) { positions kl js top1Differs a { lens } b { lens } }
    }`);
    const a = { model: 'd16', prompt: PROMPT, lens: 'TUNED' };
    const diff = await http(gw.url, CMP, { a, b: { ...a, lens: 'LOGIT' } });
    expect(diff.errors).toBeUndefined();
    const c = diff.data.lensCompare;
    expect([c.a.lens, c.b.lens]).toEqual(['TUNED', 'LOGIT']);
    // The last layer has no translator (the model's own output): 0 there, > 0 below it.
    const kl = c.kl as number[][];
    expect(Math.max(...kl[3])).toBeLessThan(1e-9);
    expect(Math.min(...kl.slice(0, 3).flat())).toBeGreaterThan(1e-6);
    const same = await http(gw.url, CMP, { a: { ...a, lens: 'JACOBIAN' }, b: { ...a, lens: 'JACOBIAN' } });
    expect(same.errors).toBeUndefined();
    for (const x of (same.data.lensCompare.js as number[][]).flat()) expect(x).toBeLessThan(1e-9);
    const bad = await http(gw.url, CMP, { a: { ...a, lens: 'JACOBIAN' }, b: { ...a, lens: 'TUNED' } });
    // JACOBIAN reads 3 layers and TUNED 4: layers are paired by index.
    expect(bad.errors![0].extensions!.code).toBe('BAD_USER_INPUT');
  });

  test('the result cache keys on the lens kind and its file: LOGIT, TUNED and JACOBIAN of one prompt are three results', async () => {
    gw.registry.setContentHash('d16', 'test-hash-d16');
    const input = { model: 'd16', prompt: 'Cache me, hello', layers: [0, 2, 3], topK: 2 };
    const Q = doc(`query ($input: LensInput!) { lens(input: $input) { id cached lens topProbs } }`);
    const first = [];
    for (const lens of ['LOGIT', 'TUNED', 'JACOBIAN']) {
      const r = await http(gw.url, Q, { input: { ...input, lens } });
      expect(r.errors).toBeUndefined();
      expect(r.data.lens).toMatchObject({ cached: false, lens });
      first.push(r.data.lens);
    }
    for (const [i, lens] of ['LOGIT', 'TUNED', 'JACOBIAN'].entries()) {
      const again = await http(gw.url, Q, { input: { ...input, lens } });
      expect(again.data.lens).toEqual({ ...first[i], cached: true });
    }
  });
});

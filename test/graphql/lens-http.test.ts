// Queries over HTTP with the generated typed documents against a live gateway serving a real tiny
// GPT-2 checkpoint. Expected values come from the lens core called directly (the gateway must carry
// them unchanged) and from the real GPT-2 tokenizer.

import { print } from 'graphql';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  LensAttentionDocument,
  LensCellsDocument,
  LensDeferredDocument,
  LensDocument,
  LensResultByIdDocument,
  LensWidgetDocument,
  ModelDocument,
  ModelsDocument,
  TokenizeDocument,
} from '../../src/client/graphql.js';
import type { LensModel, LensResult } from '../../src/lens/types.js';
import { http, startGateway, type Gateway } from '../server/harness.js';
import { openTinyGpt2 } from '../server/models.js';

let gw: Gateway;
let model: LensModel;
const PROMPT = 'The quick brown fox';
let direct: LensResult;

beforeAll(async () => {
  model = await openTinyGpt2();
  direct = await model.lens(PROMPT, { trackAcrossLayers: true, stats: true });
  gw = await startGateway([model]);
});
afterAll(async () => {
  await gw.stop();
  await model.close();
});

describe('models and tokens', () => {
  test('Query.models / Query.model describe the served checkpoint', async () => {
    const r = await http(gw.url, ModelsDocument);
    expect(r.errors).toBeUndefined();
    expect(r.data!.models).toEqual([
      {
        id: 'gpt2-tiny',
        status: 'READY',
        progress: expect.objectContaining({ layersBuilt: 3, layersTotal: 3, fraction: 1 }),
        error: null,
        modelType: 'gpt2',
        numLayers: 3,
        hiddenSize: 64,
        vocabSize: 50257,
        maxPositions: 128,
        device: 'cpu',
        deviceNote: null,
        dtype: 'F32',
        computeType: 'float32',
        parameters: model.info.parameters,
        lenses: [{ kind: 'LOGIT', layers: [0, 1, 2] }],
        quantization: null,
      },
    ]);
    const one = await http(gw.url, ModelDocument, { id: 'gpt2-tiny' });
    expect(one.data!.model!.id).toBe('gpt2-tiny');
    const none = await http(gw.url, ModelDocument, { id: 'nope' });
    expect(none.errors).toBeUndefined();
    expect(none.data!.model).toBeNull();
  });

  test('Query.tokenize uses the real GPT-2 tokenizer', async () => {
    const r = await http(gw.url, TokenizeDocument, { model: 'gpt2-tiny', text: PROMPT });
    expect(r.data!.tokenize).toEqual([
      { position: 0, id: 464, text: 'The' },
      { position: 1, id: 2068, text: ' quick' },
      { position: 2, id: 7586, text: ' brown' },
      { position: 3, id: 21831, text: ' fox' },
    ]);
  });
});

describe('Query.lens', () => {
  test('returns exactly what the core computes, and can be fetched again by id', async () => {
    const r = await http(gw.url, LensDocument, {
      input: { model: 'gpt2-tiny', prompt: PROMPT, trackAcrossLayers: true, stats: true },
    });
    expect(r.errors).toBeUndefined();
    const lens = r.data!.lens;
    expect(lens.layers).toEqual([0, 1, 2]);
    expect(lens.topK).toBe(5);
    expect(lens.point).toBe('BLOCK_OUTPUT');
    expect(lens.topIndices).toEqual(direct.topIndices);
    expect(lens.topProbs).toEqual(direct.topProbs);
    expect(lens.tracked!.map((t) => ({ position: t.position, tokenIds: t.tokenIds, probs: t.probs }))).toEqual(direct.tracked);
    expect(lens.tracked![0].tokens.map((t) => t.text)).toEqual(direct.tracked![0].tokenIds.map((id) => model.decode(id)));
    expect(lens.stats).toEqual(direct.stats);
    expect(lens.prompt.text).toBe(PROMPT);
    expect(lens.model).toEqual({ id: 'gpt2-tiny', numLayers: 3 });
    expect(lens.timings.batchSize).toBeGreaterThanOrEqual(1);

    const again = await http(gw.url, LensResultByIdDocument, { id: lens.id });
    expect(again.errors).toBeUndefined();
    expect(again.data!.lensResult!.topIndices).toEqual(direct.topIndices);
    expect(again.data!.lensResult!.prompt.tokens.map((t) => t.id)).toEqual([464, 2068, 7586, 21831]);
    const missing = await http(gw.url, LensResultByIdDocument, { id: 'no-such-id' });
    expect(missing.data!.lensResult).toBeNull();
  });

  test('without tracking or stats those fields are null; layer subsets come back ascending', async () => {
    const r = await http(gw.url, LensDocument, { input: { model: 'gpt2-tiny', prompt: PROMPT, layers: [2, 0], topK: 3 } });
    expect(r.errors).toBeUndefined();
    expect(r.data!.lens.layers).toEqual([0, 2]);
    expect(r.data!.lens.tracked).toBeNull();
    expect(r.data!.lens.stats).toBeNull();
    const sub = await model.lens(PROMPT, { layers: [0, 2], topK: 3 });
    expect(r.data!.lens.topIndices).toEqual(sub.topIndices);
  });

  test('cells decode the top-k per layer and position, with filters', async () => {
    const r = await http(gw.url, LensCellsDocument, {
      input: { model: 'gpt2-tiny', prompt: PROMPT, stats: true },
      k: 2,
      layers: [1],
      positions: [3, 0],
    });
    expect(r.errors).toBeUndefined();
    const cells = r.data!.lens.cells;
    expect(cells).toHaveLength(1);
    expect(cells[0].map((c) => c.position)).toEqual([3, 0]);
    const c = cells[0][0];
    expect(c.layer).toBe(1);
    expect(c.topk.map((t) => t.id)).toEqual(direct.topIndices[1][3].slice(0, 2));
    expect(c.topk.map((t) => t.text)).toEqual(direct.topIndices[1][3].slice(0, 2).map((id) => model.decode(id)));
    expect(c.token).toBe(model.decode(direct.topIndices[1][3][0]));
    expect(c.prob).toBe(direct.topProbs[1][3][0]);
    expect(c.entropy).toBe(direct.stats!.entropy[1][3]);
    expect(c.finalTop1Rank).toBe(direct.stats!.finalTop1Rank[1][3]);

    const bad = await http(gw.url, LensCellsDocument, { input: { model: 'gpt2-tiny', prompt: PROMPT }, positions: [9] });
    expect(bad.errors![0].extensions!.code).toBe('BAD_USER_INPUT');
  });

  test('ATTENTION_OUTPUT adds the sub-layer lens', async () => {
    const r = await http(gw.url, LensAttentionDocument, {
      input: { model: 'gpt2-tiny', prompt: PROMPT, points: ['ATTENTION_OUTPUT', 'BLOCK_OUTPUT'], trackAcrossLayers: true },
    });
    expect(r.errors).toBeUndefined();
    const both = await model.lens(PROMPT, { points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'], trackAcrossLayers: true });
    expect(r.data!.lens.topIndices).toEqual(both.topIndices);
    expect(r.data!.lens.attention!.topIndices).toEqual(both.attention!.topIndices);
    expect(r.data!.lens.attention!.tracked).toEqual(both.attention!.tracked);
    expect(r.data!.lens.attention!.stats).toBeNull();
  });

  test('with stats, the sub-layer lens carries its own entropy, KL to final and rank', async () => {
    const input = { model: 'gpt2-tiny', prompt: PROMPT, points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'], stats: true } as const;
    const r = await http(gw.url, LensAttentionDocument, { input: { ...input, points: [...input.points] } });
    expect(r.errors).toBeUndefined();
    const both = await model.lens(PROMPT, { points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'], stats: true });
    expect(r.data!.lens.attention!.stats).toEqual(both.attention!.stats);
    expect(both.attention!.stats!.entropy).toHaveLength(3);
  });

  test('@defer delivers the widget in a later part', async () => {
    const res = await fetch(gw.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'multipart/mixed' },
      body: JSON.stringify({ query: print(LensDeferredDocument), variables: { input: { model: 'gpt2-tiny', prompt: PROMPT } } }),
    });
    expect(res.headers.get('content-type')).toMatch(/^multipart\/mixed/);
    const text = await res.text();
    expect(text).toContain('"hasNext":true');
    expect(text).toContain('"label":"widget"');
    expect(text).toContain('"hasNext":false');
  });

  test('@stream sends the rows of cells incrementally, in layer order, the same as the plain query', async () => {
    const query = `query ($input: LensInput!) { lens(input: $input) { layers cells(k: 1) @stream(initialCount: 1) { layer token } } }`;
    const input = { model: 'gpt2-tiny', prompt: PROMPT };
    const res = await fetch(gw.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'multipart/mixed' },
      body: JSON.stringify({ query, variables: { input } }),
    });
    expect(res.headers.get('content-type')).toMatch(/^multipart\/mixed/);
    const parts = (await res.text())
      .split(/\r?\n/)
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line));
    const first = parts[0].data.lens;
    expect(first.cells).toHaveLength(1);
    const streamed = parts.slice(1).flatMap((p) => (p.incremental ?? []).flatMap((inc: { items?: unknown[] }) => inc.items ?? []));
    const rows = [...first.cells, ...streamed] as Array<Array<{ layer: number; token: string }>>;
    expect(rows.map((row) => row[0].layer)).toEqual(first.layers);
    expect(parts[parts.length - 1].hasNext).toBe(false);
    const plain = await http(gw.url, LensCellsDocument, { input, k: 1 });
    expect(rows.map((row) => row.map((c) => c.token))).toEqual(plain.data!.lens.cells.map((row) => row.map((c) => c.token)));
  });
});

describe('errors carry extensions.code', () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['unknown model', { model: 'llama-70b', prompt: PROMPT }, 'MODEL_NOT_FOUND'],
    ['empty prompt', { model: 'gpt2-tiny', prompt: '' }, 'BAD_USER_INPUT'],
    ['topK 0', { model: 'gpt2-tiny', prompt: PROMPT, topK: 0 }, 'BAD_USER_INPUT'],
    ['topK over the limit', { model: 'gpt2-tiny', prompt: PROMPT, topK: 100_000 }, 'BAD_USER_INPUT'],
    ['layer out of range', { model: 'gpt2-tiny', prompt: PROMPT, layers: [3] }, 'BAD_USER_INPUT'],
    ['duplicate layer', { model: 'gpt2-tiny', prompt: PROMPT, layers: [1, 1] }, 'BAD_USER_INPUT'],
    ['negative layer', { model: 'gpt2-tiny', prompt: PROMPT, layers: [-1] }, 'BAD_USER_INPUT'],
    ['prompt longer than maxPositions', { model: 'gpt2-tiny', prompt: ' fox'.repeat(129) }, 'PROMPT_TOO_LONG'],
  ];
  test.each(cases)('%s', async (_name, input, code) => {
    const r = await http(gw.url, LensDocument, { input: input as never });
    expect(r.data).toBeNull();
    expect(r.errors).toHaveLength(1);
    expect(r.errors![0].extensions!.code).toBe(code);
    expect(r.errors![0].message).not.toBe('Unexpected error.');
  });
});

describe('widget JSON (logitlenskit format)', () => {
  test('V2: meta, layers, input, tracked trajectories, topk strings', async () => {
    const r = await http(gw.url, LensWidgetDocument, {
      input: { model: 'gpt2-tiny', prompt: PROMPT, trackAcrossLayers: true },
      format: 'V2',
    });
    expect(r.errors).toBeUndefined();
    const w = r.data!.lens.widget as {
      meta: { version: number; timestamp: string; model: string };
      layers: number[];
      input: string[];
      tracked: Array<Record<string, number[]>>;
      topk: string[][][];
    };
    expect(Object.keys(w)).toEqual(['meta', 'layers', 'input', 'tracked', 'topk']);
    expect(w.meta.version).toBe(2);
    expect(w.meta.model).toBe('gpt2-tiny');
    expect(new Date(w.meta.timestamp).toString()).not.toBe('Invalid Date');
    expect(w.layers).toEqual([0, 1, 2]);
    expect(w.input).toEqual(['The', ' quick', ' brown', ' fox']);
    expect(w.topk[2][1]).toEqual(direct.topIndices[2][1].map((id) => model.decode(id)));
    const t = direct.tracked![1];
    const text = model.decode(t.tokenIds[0]);
    expect(w.tracked[1][text]).toEqual(t.probs.map((row) => Math.round(row[0] * 1e5) / 1e5));
  });

  test('V1: cells[position][layer] with top-1, its trajectory and the top-k list', async () => {
    const r = await http(gw.url, LensWidgetDocument, {
      input: { model: 'gpt2-tiny', prompt: PROMPT, trackAcrossLayers: true },
      format: 'V1',
    });
    const w = r.data!.lens.widget as {
      layers: number[];
      tokens: string[];
      cells: Array<Array<{ token: string; prob: number; trajectory: number[]; topk: Array<{ token: string; prob: number; trajectory: number[] }> }>>;
    };
    expect(Object.keys(w)).toEqual(['layers', 'tokens', 'cells']);
    expect(w.cells).toHaveLength(4);
    expect(w.cells[0]).toHaveLength(3);
    const cell = w.cells[3][2];
    expect(cell.token).toBe(model.decode(direct.topIndices[2][3][0]));
    expect(cell.prob).toBe(Math.round(direct.topProbs[2][3][0] * 1e5) / 1e5);
    expect(cell.trajectory).toHaveLength(3);
    expect(cell.trajectory[2]).toBe(cell.prob);
    expect(cell.topk).toHaveLength(5);
    expect(cell.topk[0]).toEqual({ token: cell.token, prob: cell.prob, trajectory: cell.trajectory });
  });
});

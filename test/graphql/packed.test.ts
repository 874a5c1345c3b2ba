// The PACKED encoding and `precision:` end to end: a live gateway serving the trained tiny-facts-gpt2,
// the generated documents, the typed client's decoder, over HTTP, graphql-ws and SSE. Expected values
// are the lens core's own float64 results; the default JSON must stay byte for byte what it was.

import { print } from 'graphql';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LensLayersPackedDocument, LensPackedDocument, LensPackedTrackedDocument, type LensLayersPackedSubscription } from '../../src/client/graphql.js';
import { decodeLayer, decodeLens, trajectories, type UnpackedRead } from '../../src/client/packed.js';
import { openModel } from '../../src/lens/index.js';
import { roundSignificant, type PackedLensIn, type PackedReadIn } from '../../src/lens/packed.js';
import type { LensModel, LensResult } from '../../src/lens/types.js';
import { collect, http, sseClient, startGateway, wsClient, type Gateway } from '../server/harness.js';

type Event = LensLayersPackedSubscription['lensLayers'];
type Read = Pick<LensResult, 'topIndices' | 'topProbs' | 'tracked' | 'stats'>;

let gw: Gateway;
let model: LensModel;
let direct: LensResult;
const PROMPT = 'The capital of France is Paris. The capital of Italy is';
const OPTIONS = { topK: 5, trackAcrossLayers: true, stats: true, points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] as const };
const input = { model: 'facts', prompt: PROMPT, ...OPTIONS, points: [...OPTIONS.points] };

beforeAll(async () => {
  model = await openModel('models/tiny-facts-gpt2', { id: 'facts', device: 'cpu' });
  direct = await model.lens(PROMPT, { ...OPTIONS, points: [...OPTIONS.points] });
  gw = await startGateway([model]);
});
afterAll(async () => {
  await gw.stop();
  await model.close();
});

/** Largest |p′ − p| / (eps · max(p, floor)); the stated bound holds when ≤ 1. */
function worst(exact: number[], got: ArrayLike<number>, eps = 1e-3, floor = 5e-3): number {
  expect(got.length).toBe(exact.length);
  return exact.reduce((w, p, i) => Math.max(w, Math.abs(got[i] - p) / (eps * Math.max(p, floor))), 0);
}

function expectRead(u: UnpackedRead, r: Read, eps?: number, floor?: number): void {
  expect([u.layers, u.positions, u.k]).toEqual([direct.layers.length, direct.tokens.length, 5]);
  expect([...u.topIndices]).toEqual(r.topIndices.flat(2));
  expect(worst(r.topProbs.flat(2), u.topProbs, eps, floor)).toBeLessThanOrEqual(1);
  r.tracked!.forEach((tp, p) => {
    const t = trajectories(u.tracked!, p, u.layers);
    expect([...t.tokenIds]).toEqual(tp.tokenIds);
    tp.probs.forEach((row, l) => expect(worst(row, t.probs[l], eps, floor)).toBeLessThanOrEqual(1));
  });
  expect([...u.stats!.finalTop1Rank]).toEqual(r.stats!.finalTop1Rank.flat());
  expect([...u.stats!.entropy]).toEqual(r.stats!.entropy.flat().map(Math.fround));
  expect([...u.stats!.klToFinal]).toEqual(r.stats!.klToFinal.flat().map(Math.fround));
}

describe('HTTP', () => {
  test('LensResult.packed decodes to the core result within the default bound (block and after-attention reads)', async () => {
    const res = await http(gw.url, LensPackedDocument, { input });
    expect(res.errors).toBeUndefined();
    const u = decodeLens(res.data!.lens.packed);
    expectRead(u, direct);
    expectRead(u.attention!, direct.attention!);
  });

  test('LensPackedTracked: top-k from topLocal and the trajectories, every id labelled once, smaller than topIndices + topProbs', async () => {
    const res = await http(gw.url, LensPackedTrackedDocument, { input });
    expect(res.errors).toBeUndefined();
    const packed = res.data!.lens.packed;
    expect(packed).not.toHaveProperty('topIndices');
    const u = decodeLens(packed);
    for (const [read, src] of [[u, direct], [u.attention!, direct.attention!]] as const) {
      expect([...read.topIndices]).toEqual(src.topIndices.flat(2));
      expect(worst(src.topProbs.flat(2), read.topProbs, 1.05e-3)).toBeLessThanOrEqual(1); // second pass: float32 rounding
    }
    const labels = new Map(packed.tokens.map((t) => [t.id, t.text]));
    const ids = new Set([...u.topIndices, ...u.tracked!.tokenIds, ...u.attention!.topIndices, ...u.attention!.tracked!.tokenIds]);
    expect(labels.size).toBe(ids.size);
    for (const id of ids) expect(labels.get(id)).toBe(model.decode(id));
    const full = await http(gw.url, LensPackedDocument, { input });
    expect(JSON.stringify(res.data).length).toBeLessThan(JSON.stringify(full.data).length);
  });

  test('one fragment on the PackedReadout interface selects what fragments on PackedLens and PackedRead did (queries written before it still run)', async () => {
    const arrays = '__typename topIndices topProbs topLocal trackedCounts trackedIds trackedProbs entropy klToFinal finalTop1Rank';
    const byType = `query($input: LensInput!) { lens(input: $input) { packed { ...L attention { ...R } } } }
      fragment L on PackedLens { ${arrays} } fragment R on PackedRead { ${arrays} }`;
    const byInterface = `query($input: LensInput!) { lens(input: $input) { packed { ...A attention { ...A } } } }
      fragment A on PackedReadout { ${arrays} }`;
    const ask = async (query: string) => {
      const r = await fetch(gw.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables: { input } }) });
      return (await r.json()) as { data?: { lens: { packed: PackedLensIn & { __typename: string; attention: PackedReadIn & { __typename: string } } } }; errors?: unknown };
    };
    const old = await ask(byType);
    expect(old.errors).toBeUndefined();
    expect(await ask(byInterface)).toEqual(old);
    const packed = old.data!.lens.packed;
    expect([packed.__typename, packed.attention.__typename]).toEqual(['PackedLens', 'PackedRead']);
    const u = decodeLens(packed);
    expectRead(u, direct);
    expectRead(u.attention!, direct.attention!);
  });

  test('a coarser bound is honoured and is smaller on the wire', async () => {
    const fine = await fetch(gw.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: print(LensPackedDocument), variables: { input } }) });
    const coarseVars = { input, relativeError: 0.01, floor: 1e-3 };
    const coarse = await fetch(gw.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: print(LensPackedDocument), variables: coarseVars }) });
    const [fineText, coarseText] = [await fine.text(), await coarse.text()];
    const u = decodeLens(JSON.parse(coarseText).data.lens.packed);
    expectRead(u, direct, 0.01, 1e-3);
    // Coarser codes are smaller numbers: the high byte plane is mostly zeros.
    expect(coarseText.length).toBeLessThanOrEqual(fineText.length);
  });

  test('without `packed` or `precision` the JSON is byte for byte the full float64 output', async () => {
    const query = `query($input: LensInput!) { lens(input: $input) { topIndices topProbs tracked { tokenIds probs } stats { entropy klToFinal } } }`;
    const res = await fetch(gw.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables: { input } }) });
    const expected = {
      data: {
        lens: {
          topIndices: direct.topIndices,
          topProbs: direct.topProbs,
          tracked: direct.tracked!.map((t) => ({ tokenIds: t.tokenIds, probs: t.probs })),
          stats: { entropy: direct.stats!.entropy, klToFinal: direct.stats!.klToFinal },
        },
      },
    };
    expect(await res.text()).toBe(JSON.stringify(expected));
  });

  test('precision: rounds every JSON float array to significant digits', async () => {
    const query = `query($input: LensInput!) { lens(input: $input) {
      topProbs(precision: 3) tracked { probs(precision: 2) } stats { entropy(precision: 4) klToFinal(precision: 4) }
      attention { topProbs(precision: 3) } } }`;
    const r = await fetch(gw.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables: { input } }) });
    const body = (await r.json()) as { data: { lens: { topProbs: number[][][]; tracked: Array<{ probs: number[][] }>; stats: { entropy: number[][]; klToFinal: number[][] }; attention: { topProbs: number[][][] } } } };
    const round = (d: number) => (x: number) => roundSignificant(x, d);
    const lens = body.data.lens;
    expect(lens.topProbs).toEqual(direct.topProbs.map((a) => a.map((b) => b.map(round(3)))));
    expect(lens.tracked.map((t) => t.probs)).toEqual(direct.tracked!.map((t) => t.probs.map((a) => a.map(round(2)))));
    expect(lens.stats.entropy).toEqual(direct.stats!.entropy.map((a) => a.map(round(4))));
    expect(lens.stats.klToFinal).toEqual(direct.stats!.klToFinal.map((a) => a.map(round(4))));
    expect(lens.attention.topProbs).toEqual(direct.attention!.topProbs.map((a) => a.map((b) => b.map(round(3)))));
    // Rounding really happened (and the reply is shorter than full precision).
    expect(JSON.stringify(lens.topProbs).length).toBeLessThan(JSON.stringify(direct.topProbs).length / 2);
  });

  test('bad precision or an impossible bound is BAD_USER_INPUT; the server keeps serving', async () => {
    const ask = async (query: string) => {
      const r = await fetch(gw.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables: { input } }) });
      return (await r.json()) as { data?: unknown; errors?: Array<{ message: string; extensions: { code: string } }> };
    };
    for (const q of [
      'query($input: LensInput!) { lens(input: $input) { topProbs(precision: 0) } }',
      'query($input: LensInput!) { lens(input: $input) { tracked { probs(precision: 18) } } }',
      'query($input: LensInput!) { lens(input: $input) { packed(relativeError: 1e-6) { topProbs } } }',
      'query($input: LensInput!) { lens(input: $input) { packed(floor: 0) { topProbs } } }',
    ]) {
      const r = await ask(q);
      expect(r.errors?.[0].extensions.code, q).toBe('BAD_USER_INPUT');
    }
    const ok = await http(gw.url, LensPackedDocument, { input });
    expect(ok.errors).toBeUndefined();
  });
});

describe('subscriptions', () => {
  function check(events: Array<{ data?: { lensLayers: Event } | null; errors?: unknown }>): void {
    for (const e of events) expect(e.errors).toBeUndefined();
    const ev = events.map((e) => e.data!.lensLayers);
    // Both read points stream: one LayerResult per layer and point.
    const layers = ev.filter((e): e is Extract<Event, { __typename: 'LayerResult' }> => e.__typename === 'LayerResult');
    expect(ev[0].__typename).toBe('LensStarted');
    expect(layers).toHaveLength(2 * direct.layers.length);
    for (const e of layers) {
      const read = e.point === 'BLOCK_OUTPUT' ? direct : direct.attention!;
      const u = decodeLayer(e.packed);
      expect([...u.topIndices]).toEqual(read.topIndices[e.index].flat());
      expect(worst(read.topProbs[e.index].flat(), u.topProbs)).toBeLessThanOrEqual(1);
    }
    const done = ev[ev.length - 1] as Extract<Event, { __typename: 'LensCompleted' }>;
    const u = decodeLens(done.result.packed);
    expectRead(u, direct);
    expectRead(u.attention!, direct.attention!);
  }

  test('graphql-ws: every LayerResult.packed and LensCompleted.result.packed decode to the core result', async () => {
    const client = wsClient(gw.wsUrl);
    const events = await collect(client, LensLayersPackedDocument, { input });
    await client.dispose();
    check(events);
  });

  test('SSE: the same stream', async () => {
    const client = sseClient(gw.url);
    const events = await collect(client, LensLayersPackedDocument, { input });
    client.dispose();
    check(events);
  });
});

// The contract of the lens result (issue 2): layer subsets, mode 2, streaming, cancellation, batching, stats.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LayerEvent, LensError, type LensModel, type LensResult, openModel } from '../../src/lens/index.js';
import { makeCheckpoint, RECIPES } from '../helpers/fixtures.js';
import { referenceLens, referenceStats } from '../helpers/reference.js';
import { idsOf } from './helpers.js';

const PROMPT = 'The capital of France is Paris. The capital of Germany is';
let gpt2: LensModel;
let llama: LensModel;

beforeAll(async () => {
  // One padded pass whatever the lengths, so the batch tests below exercise padding.
  const batching = { maxPaddingShare: 1 };
  gpt2 = await openModel(makeCheckpoint(RECIPES['gpt2-tiny']), { device: 'cpu', batching });
  llama = await openModel(makeCheckpoint(RECIPES['llama-gqa-tied']), { device: 'cpu', batching });
});
afterAll(async () => {
  await gpt2?.close();
  await llama?.close();
});

describe('layers and top-k', () => {
  it('returns a layer subset ascending whatever order it was given in, with the same cells as a full run', async () => {
    const full = await gpt2.lens(PROMPT, { topK: 3 });
    const sub = await gpt2.lens(PROMPT, { topK: 3, layers: [2, 0] });
    expect(sub.layers).toEqual([0, 2]);
    expect(sub.topIndices).toEqual([full.topIndices[0], full.topIndices[2]]);
    expect(sub.topProbs).toEqual([full.topProbs[0], full.topProbs[2]]);
  });

  it('sorts top-k by probability descending with shape [layer][position][k]', async () => {
    const r = await gpt2.lens(PROMPT, { topK: 7 });
    expect(r.topIndices).toHaveLength(3);
    for (const layer of r.topProbs) {
      expect(layer).toHaveLength(r.tokens.length);
      for (const cell of layer) {
        expect(cell).toHaveLength(7);
        for (let k = 1; k < 7; k++) expect(cell[k]).toBeLessThanOrEqual(cell[k - 1]);
      }
    }
  });

  it('breaks exact ties by the lower token id', async () => {
    // An untied head with two identical rows makes those two tokens tie exactly at every cell.
    const src = makeCheckpoint(RECIPES['gpt2-untied']);
    const { dir, a, b } = await withDuplicatedHeadRows(src);
    const m = await openModel(dir, { device: 'cpu' });
    try {
      const r = await m.lens('Hello world', { topK: 50, trackAcrossLayers: true });
      let seen = 0;
      for (const layer of r.topIndices) {
        for (const cell of layer) {
          const ia = cell.indexOf(a);
          const ib = cell.indexOf(b);
          if (ia >= 0 || ib >= 0) {
            expect(ia).toBeGreaterThanOrEqual(0);
            expect(ib).toBe(ia + 1);
            seen++;
          }
        }
      }
      expect(seen).toBeGreaterThan(0);
    } finally {
      await m.close();
    }
  });
});

describe('mode 2 (trackAcrossLayers)', () => {
  it('tracks the ascending union of top-k ids over the requested layers, with probabilities at every layer', async () => {
    const r = await llama.lens(PROMPT, { topK: 4, layers: [0, 1], trackAcrossLayers: true });
    const ref = referenceLens(makeCheckpoint(RECIPES['llama-gqa-tied']), idsOf(r));
    expect(r.tracked).toHaveLength(r.tokens.length);
    for (const t of r.tracked!) {
      const union = [...new Set(r.topIndices.flatMap((layer) => layer[t.position]))].sort((x, y) => x - y);
      expect(t.tokenIds).toEqual(union);
      expect(t.probs).toHaveLength(2);
      t.probs.forEach((row, li) => {
        expect(row).toHaveLength(union.length);
        row.forEach((p, j) => expect(Math.abs(p - Math.exp(ref.logProbs[li][t.position][union[j]]))).toBeLessThan(1e-5));
      });
    }
  });

  it('is null in mode 1', async () => {
    expect((await gpt2.lens('Hi', {})).tracked).toBeNull();
  });
});

describe('streaming and cancellation', () => {
  it('fires onLayer once per requested layer, ascending, before the promise resolves, with the final cells', async () => {
    const events: LayerEvent[] = [];
    let resolved = false;
    const p = gpt2.lens(PROMPT, { topK: 2, layers: [1, 2], onLayer: (e) => events.push({ ...e, resolvedAlready: resolved } as LayerEvent) });
    const r = await p;
    resolved = true;
    expect(events.map((e) => [e.layer, e.index, e.count])).toEqual([
      [1, 0, 2],
      [2, 1, 2],
    ]);
    expect(events.every((e) => !(e as unknown as { resolvedAlready: boolean }).resolvedAlready)).toBe(true);
    expect(events.map((e) => e.topIndices)).toEqual(r.topIndices);
  });

  it('with both read points, each layer streams its after-attention read before its block output', async () => {
    const seen: string[] = [];
    const r = await gpt2.lens(PROMPT, { topK: 2, points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'], onLayer: (e) => seen.push(`${e.layer}:${e.point}`) });
    expect(seen).toEqual([0, 1, 2].flatMap((l) => [`${l}:ATTENTION_OUTPUT`, `${l}:BLOCK_OUTPUT`]));
    expect(r.point).toBe('BLOCK_OUTPUT');
    expect(r.attention!.topIndices).toHaveLength(3);
  });

  it('stops between layers when the AbortSignal fires and rejects with CANCELLED', async () => {
    const controller = new AbortController();
    const seen: number[] = [];
    const run = gpt2.lens(PROMPT, {
      onLayer: (e) => {
        seen.push(e.layer);
        controller.abort();
      },
      signal: controller.signal,
    });
    await expect(run).rejects.toMatchObject({ code: 'CANCELLED' });
    expect(seen).toEqual([0]);
  });

  it('a throwing onLayer listener fails only its own request in a batch', async () => {
    const [bad, good] = await gpt2.lensBatch([
      { prompt: 'Hi', options: { onLayer: () => { throw new Error('boom'); } } },
      { prompt: PROMPT, options: { onLayer: () => {} } },
    ]);
    expect(bad).toBeInstanceOf(LensError);
    expect((bad as LensError).message).toMatch(/boom/);
    expect((good as { topIndices: unknown[] }).topIndices).toHaveLength(3);
  });

  it('rejects an already-aborted signal without running', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(gpt2.lens(PROMPT, { signal: controller.signal })).rejects.toBeInstanceOf(LensError);
  });
});

describe('batching', () => {
  it('gives each request of a padded batch exactly what it gets alone (different lengths, options)', async () => {
    const prompts = ['Hi', PROMPT, 'One two three four five'];
    for (const model of [gpt2, llama]) {
      const alone: LensResult[] = [];
      for (const prompt of prompts) alone.push(await model.lens(prompt, { topK: 3, trackAcrossLayers: true }));
      const batch = await model.lensBatch([
        { prompt: prompts[0], options: { topK: 3, trackAcrossLayers: true } },
        { prompt: '', options: {} },
        { prompt: prompts[1], options: { topK: 3, trackAcrossLayers: true } },
        { prompt: prompts[2], options: { topK: 3, trackAcrossLayers: true } },
      ]);
      expect(batch[1]).toBeInstanceOf(LensError);
      const ok = [batch[0], batch[2], batch[3]] as typeof alone;
      ok.forEach((r, i) => {
        expect(r.timings.batchSize).toBe(3);
        expect(r.topIndices).toEqual(alone[i].topIndices);
        r.topProbs.flat(2).forEach((p, j) => expect(Math.abs(p - alone[i].topProbs.flat(2)[j])).toBeLessThan(1e-6));
        expect(r.tracked!.map((t) => t.tokenIds)).toEqual(alone[i].tracked!.map((t) => t.tokenIds));
      });
    }
  });
});

describe('head chunking', () => {
  it('splits a deferred head pass over 128 MB of logits into several calls with the same result as per-layer calls', async () => {
    // V = 151936: 220 rows per call; 70 tokens × 2 layers × 2 read points = 280 rows → 2 calls.
    const m = await openModel(makeCheckpoint(RECIPES['qwen2-tiny']), { device: 'cpu' });
    try {
      const prompt = 'one two three four five six seven eight nine ten '.repeat(7);
      const opts = { topK: 3, trackAcrossLayers: true, points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] as const };
      const deferred = await m.lens(prompt, { ...opts, points: [...opts.points] });
      expect(deferred.tokens.length * 4).toBeGreaterThan(220);
      const streamed = await m.lens(prompt, { ...opts, points: [...opts.points], onLayer: () => {} });
      expect(deferred.topIndices).toEqual(streamed.topIndices);
      expect(deferred.attention!.topIndices).toEqual(streamed.attention!.topIndices);
      deferred.topProbs.flat(2).forEach((p, i) => expect(Math.abs(p - streamed.topProbs.flat(2)[i])).toBeLessThan(1e-6));
      expect(deferred.tracked!.map((t) => t.tokenIds)).toEqual(streamed.tracked!.map((t) => t.tokenIds));
      deferred.tracked!.flatMap((t) => t.probs.flat()).forEach((p, i) =>
        expect(Math.abs(p - streamed.tracked!.flatMap((t) => t.probs.flat())[i])).toBeLessThan(1e-6),
      );
    } finally {
      await m.close();
    }
  });
});

describe('stats and naive mode', () => {
  it('computes entropy, KL(final ‖ layer) and the rank of the final top-1 like the reference', async () => {
    const r = await llama.lens(PROMPT, { stats: true, layers: [0] });
    const ref = referenceLens(makeCheckpoint(RECIPES['llama-gqa-tied']), idsOf(r));
    const L = llama.info.numLayers;
    r.tokens.forEach((_, p) => {
      const want = referenceStats(ref.logProbs[0][p], ref.logProbs[L - 1][p]);
      expect(r.stats!.entropy[0][p]).toBeCloseTo(want.entropy, 5);
      expect(r.stats!.klToFinal[0][p]).toBeCloseTo(want.kl, 5);
      expect(r.stats!.finalTop1Rank[0][p]).toBe(want.rank);
    });
  });

  it('computes the same stats for the after-attention read, against the final layer', async () => {
    const r = await llama.lens(PROMPT, { stats: true, points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] });
    const ref = referenceLens(makeCheckpoint(RECIPES['llama-gqa-tied']), idsOf(r));
    const L = llama.info.numLayers;
    const s = r.attention!.stats!;
    expect(r.stats!.entropy).toHaveLength(L);
    for (let l = 0; l < L; l++) {
      r.tokens.forEach((_, p) => {
        const want = referenceStats(ref.attnLogProbs[l][p], ref.logProbs[L - 1][p]);
        expect(s.entropy[l][p]).toBeCloseTo(want.entropy, 5);
        expect(s.klToFinal[l][p]).toBeCloseTo(want.kl, 5);
        expect(s.finalTop1Rank[l][p]).toBe(want.rank);
      });
    }
  });

  it('naive mode (full logits to JS) agrees with the in-graph reduction', async () => {
    const a = await gpt2.lens(PROMPT, { topK: 5, trackAcrossLayers: true });
    const b = await gpt2.lensNaive(PROMPT, { topK: 5, trackAcrossLayers: true });
    expect(b.topIndices).toEqual(a.topIndices);
    b.topProbs.flat(2).forEach((p, i) => expect(Math.abs(p - a.topProbs.flat(2)[i])).toBeLessThan(1e-5));
    expect(b.tracked!.map((t) => t.tokenIds)).toEqual(a.tracked!.map((t) => t.tokenIds));
  });
});

describe('tokens', () => {
  it('reports the ids the model sees with their decoded text', async () => {
    const toks = gpt2.tokenize('The quick brown fox');
    expect(toks.map((t) => t.id)).toEqual([464, 2068, 7586, 21831]);
    expect(toks.map((t) => t.text)).toEqual(['The', ' quick', ' brown', ' fox']);
  });

  it('includes BOS when the tokenizer post-processor adds it', async () => {
    const src = makeCheckpoint(RECIPES['llama-gqa-tied']);
    const dir = mkdtempSync(join(tmpdir(), 'lensgate-bos-'));
    cpSync(src, dir, { recursive: true });
    const tk = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    tk.post_processor = {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [128000], tokens: ['<|begin_of_text|>'] } },
    };
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tk));
    const m = await openModel(dir, { device: 'cpu' });
    try {
      const r = await m.lens('Hello world', { topK: 1 });
      expect(r.tokens[0]).toEqual({ position: 0, id: 128000, text: '<|begin_of_text|>' });
      expect(r.topIndices[0]).toHaveLength(r.tokens.length);
    } finally {
      await m.close();
    }
  });
});

/** Copies an untied checkpoint and makes lm_head rows a and b identical. */
async function withDuplicatedHeadRows(src: string): Promise<{ dir: string; a: number; b: number }> {
  const { readSafetensorsFile } = await import('../helpers/reference.js');
  const { writeSafetensors } = await import('../helpers/safetensors-writer.js');
  const dir = mkdtempSync(join(tmpdir(), 'lensgate-tie-'));
  cpSync(src, dir, { recursive: true });
  const tensors = readSafetensorsFile(join(src, 'model.safetensors'));
  const out: Record<string, { shape: number[]; data: Float64Array }> = {};
  for (const [name, t] of tensors) out[name] = { shape: t.shape, data: Float64Array.from(t.data) };
  const head = out['lm_head.weight'];
  const D = head.shape[1];
  // Pick tokens the lens actually ranks highly: copy the row of the final top-1 of a probe into a neighbour.
  const probe = await openModel(src, { device: 'cpu' });
  const a0 = (await probe.lens('Hello world', { topK: 1 })).topIndices[0][0][0];
  await probe.close();
  const [a, b] = a0 > 0 ? [a0 - 1, a0] : [a0, a0 + 1];
  head.data.copyWithin(a * D, b * D, (b + 1) * D);
  writeSafetensors(join(dir, 'model.safetensors'), out);
  return { dir, a, b };
}

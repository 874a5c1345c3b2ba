// What a generation request promises besides exactness: streaming order, EOS, stats over generated
// positions, layer subsets, and coded errors.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LayerEvent, type LensModel, openModel, type PositionEvent } from '../../src/lens/index.js';
import { makeCheckpoint, RECIPES } from '../helpers/fixtures.js';

const PROMPT = 'Hello there';

describe('generation semantics (gpt2-tiny)', () => {
  let model: LensModel;
  const dirs: string[] = [];
  beforeAll(async () => {
    model = await openModel(makeCheckpoint(RECIPES['gpt2-tiny']), { device: 'cpu' });
  });
  afterAll(async () => {
    await model?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('streams prompt layers, then one column per generated position; each written token is the final layer top-1 before it', async () => {
    const layers: LayerEvent[] = [];
    const positions: PositionEvent[] = [];
    const r = await model.lens(PROMPT, {
      topK: 3,
      points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'],
      generate: { maxNewTokens: 4 },
      onLayer: (e) => layers.push(e),
      onPosition: (e) => positions.push(e),
    });
    const promptLen = model.tokenize(PROMPT).length;
    expect(r.tokens).toHaveLength(promptLen + 4);
    expect(r.tokens.map((t) => t.generated)).toEqual([...Array(promptLen).fill(false), true, true, true, true]);
    // Prompt columns arrive layer by layer, as for any request.
    expect(layers).toHaveLength(2 * model.info.numLayers);
    for (const e of layers) expect(e.topIndices).toHaveLength(promptLen);
    // Then each generated position, both read points, in order.
    expect(positions.map((e) => [e.position, e.point])).toEqual(
      [0, 1, 2, 3].flatMap((i) => [
        [promptLen + i, 'BLOCK_OUTPUT'],
        [promptLen + i, 'ATTENTION_OUTPUT'],
      ]),
    );
    for (const e of positions) {
      const part = e.point === 'BLOCK_OUTPUT' ? r : r.attention!;
      expect(e.token).toEqual(r.tokens[e.position]);
      expect(e.topIndices).toEqual(part.topIndices.map((layer) => layer[e.position]));
      expect(e.topProbs).toEqual(part.topProbs.map((layer) => layer[e.position]));
    }
    const last = r.layers.length - 1;
    for (let p = promptLen - 1; p < r.tokens.length - 1; p++) expect(r.tokens[p + 1].id).toBe(r.topIndices[last][p][0]);
  });

  it('a layer subset without the last layer writes the same tokens', async () => {
    const all = await model.lens(PROMPT, { generate: { maxNewTokens: 3 } });
    const some = await model.lens(PROMPT, { layers: [0], generate: { maxNewTokens: 3 } });
    expect(some.tokens).toEqual(all.tokens);
    expect(some.topIndices[0]).toEqual(all.topIndices[0]);
  });

  it('stats cover generated positions: the last layer is its own final distribution', async () => {
    const r = await model.lens(PROMPT, { stats: true, trackAcrossLayers: true, generate: { maxNewTokens: 3 } });
    const n = r.tokens.length;
    const last = r.layers.length - 1;
    expect(r.stats!.entropy[0]).toHaveLength(n);
    expect(r.tracked).toHaveLength(n);
    for (let p = 0; p < n; p++) {
      expect(r.stats!.klToFinal[last][p]).toBeLessThan(1e-9);
      expect(r.stats!.finalTop1Rank[last][p]).toBe(0);
    }
  });

  it('stops right after the EOS token of generation_config.json', async () => {
    const free = await model.lens(PROMPT, { generate: { maxNewTokens: 4 } });
    const promptLen = free.tokens.length - 4;
    const eos = free.tokens[promptLen + 1].id;
    const dir = mkdtempSync(join(tmpdir(), 'lensgate-eos-'));
    dirs.push(dir);
    cpSync(makeCheckpoint(RECIPES['gpt2-tiny']), dir, { recursive: true });
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [eos] }));
    const withEos = await openModel(dir, { device: 'cpu' });
    try {
      const r = await withEos.lens(PROMPT, { generate: { maxNewTokens: 4 } });
      // The first generated token equals EOS only if it is the same id; then it stops at once.
      const stopAt = free.tokens.slice(promptLen).findIndex((t) => t.id === eos) + 1;
      expect(r.generation).toEqual({ maxNewTokens: 4, newTokens: stopAt, stoppedAtEos: true, eosTokenIds: [eos] });
      expect(r.tokens).toEqual(free.tokens.slice(0, promptLen + stopAt));
      expect(r.topIndices.map((l) => l.length)).toEqual(free.topIndices.map(() => promptLen + stopAt));
    } finally {
      await withEos.close();
    }
  });

  it('rejects a bad maxNewTokens and a sequence longer than the model takes', async () => {
    await expect(model.lens(PROMPT, { generate: { maxNewTokens: 0 } })).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    await expect(model.lens(PROMPT, { generate: { maxNewTokens: 1.5 } })).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    await expect(model.lens(PROMPT, { generate: { maxNewTokens: model.info.maxPositions } })).rejects.toMatchObject({
      code: 'PROMPT_TOO_LONG',
    });
  });

  it('a batch mixing plain and generating requests gives each what it gives alone', async () => {
    const alone = await model.lens(PROMPT, { generate: { maxNewTokens: 2 } });
    const plainAlone = await model.lens('Another prompt here');
    const [g, p] = await model.lensBatch([
      { prompt: PROMPT, options: { generate: { maxNewTokens: 2 } } },
      { prompt: 'Another prompt here' },
    ]);
    expect(g).not.toBeInstanceOf(Error);
    expect((g as typeof alone).tokens).toEqual(alone.tokens);
    expect((g as typeof alone).topIndices).toEqual(alone.topIndices);
    expect((p as typeof alone).topIndices).toEqual(plainAlone.topIndices);
    expect((p as typeof alone).generation).toBeUndefined();
  });
});

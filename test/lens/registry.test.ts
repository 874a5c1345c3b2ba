// Family detection from config.json (model_type, aliases, architectures, explicit override) for every
// fixture recipe, and a user-registered layout checked against the reference of the checkpoint it
// was renamed from.
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { detectArchitecture } from '../../src/architectures/registry.js';
import { LensError, openModel, registerLayout, supportedFamilies } from '../../src/lens/index.js';
import { configFor, FIXTURE_ROOT, makeCheckpoint, recipe, RECIPES } from '../helpers/fixtures.js';
import { loadConfig, loadTensors, referenceLens } from '../helpers/reference.js';
import { writeSafetensors } from '../helpers/safetensors-writer.js';
import { deviation, idsOf } from './helpers.js';

/** Registry family each recipe's config must resolve to. */
const EXPECTED: Record<string, string> = {
  gpt2: 'gpt2',
  llama: 'llama',
  mistral: 'mistral',
  qwen2: 'qwen2',
  gptj: 'gptj',
  gpt_neox: 'gpt_neox',
  phi: 'phi',
  phi3: 'phi3',
  gemma: 'gemma',
  gemma2: 'gemma2',
  olmo: 'olmo',
  // AI2's configs say model_type "olmo" too; the olmo family reads their layout from the config keys.
  hf_olmo: 'olmo',
  qwen3: 'qwen3',
  mixtral: 'mixtral',
};

const recipes = Object.values(RECIPES as Record<string, { name: string; family: string }>);

describe('detection', () => {
  it.each(recipes.map((r) => [r.name, r.family]))('%s: model_type → its family, and architectures alone → the same', (name) => {
    const r = recipe(name);
    const config = configFor(r);
    expect(detectArchitecture(config).family).toBe(EXPECTED[r.family]);
    const { model_type: _drop, ...noType } = config;
    const byClass = detectArchitecture(noType).family;
    // Without model_type AI2's OLMoForCausalLM class names its own spec (same plan).
    expect(byClass).toBe(r.family === 'hf_olmo' ? 'hf_olmo' : EXPECTED[r.family]);
  });

  it('aliases resolve as model_type and as explicit type', () => {
    expect(detectArchitecture({ model_type: 'pythia' }).family).toBe('gpt_neox');
    expect(detectArchitecture({}, 'gpt-j').family).toBe('gptj');
    expect(detectArchitecture({}, 'Phi-2').family).toBe('phi');
    expect(detectArchitecture({ model_type: 'phi-3' }).family).toBe('phi3');
  });

  it('an explicit type overrides config.json', () => {
    const config = configFor(recipe('llama-gqa-tied'));
    expect(detectArchitecture(config, 'mistral').family).toBe('mistral');
    expect(detectArchitecture(configFor(recipe('hf-olmo-tiny')), 'hf_olmo').family).toBe('hf_olmo');
  });

  it('model_type wins over architectures; an unknown model_type falls back to architectures', () => {
    expect(detectArchitecture({ model_type: 'gemma2', architectures: ['GemmaForCausalLM'] }).family).toBe('gemma2');
    expect(detectArchitecture({ model_type: 'my_finetune', architectures: ['MixtralForCausalLM'] }).family).toBe('mixtral');
  });

  it('olmo reads both layouts from one model_type', () => {
    const native = detectArchitecture(configFor(recipe('olmo-tiny'))).plan(configFor(recipe('olmo-tiny')));
    const ai2 = detectArchitecture(configFor(recipe('hf-olmo-tiny'))).plan(configFor(recipe('hf-olmo-tiny')));
    expect(native.blocks[0].attn.o.weight).toBe('model.layers.0.self_attn.o_proj.weight');
    expect(ai2.blocks[0].attn.o.weight).toBe('model.transformer.blocks.0.attn_out.weight');
    expect(ai2.finalNorm.kind).toBe('layernorm_noparam');
  });

  it('an unknown type is a typed error that lists the supported families', () => {
    let err: unknown;
    try {
      detectArchitecture({ model_type: 'not_a_model', architectures: ['NotAModelForCausalLM'] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LensError);
    expect((err as LensError).code).toBe('UNKNOWN_MODEL_TYPE');
    for (const f of ['gptj', 'gpt_neox', 'phi', 'phi3', 'gemma', 'gemma2', 'olmo', 'qwen3', 'mixtral']) {
      expect((err as LensError).message).toContain(f);
      expect(supportedFamilies()).toContain(f);
    }
  });
});

/**
 * Rewrites a fixture checkpoint under new tensor names (and model_type), as someone re-packaging a
 * model in their own codebase would; weights are copied bit for bit (F32 fixtures).
 */
function renamedCopy(source: string, key: string, rename: (n: string) => string, config: Record<string, unknown>): string {
  const dir = join(FIXTURE_ROOT, `custom-${key}-${basename(source)}`);
  if (existsSync(join(dir, '.complete'))) return dir;
  mkdirSync(dir, { recursive: true });
  const out: Record<string, { shape: number[]; data: Float64Array }> = {};
  for (const [name, t] of loadTensors(source)) {
    expect(t.dtype).toBe('F32');
    out[rename(name)] = { shape: t.shape, data: t.data };
  }
  writeSafetensors(join(dir, 'model.safetensors'), out, 'F32');
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...loadConfig(source), ...config }, null, 2));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(source, f), join(dir, f));
  writeFileSync(join(dir, '.complete'), '');
  return dir;
}

describe('registerLayout: a custom layout from weight-name prefixes', () => {
  const closers: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of closers) await c();
  });

  it('llama computation under decoder.* names, found by model_type, matches the original reference', async () => {
    registerLayout({
      family: 'acme-decoder',
      base: 'llama',
      paths: { embed: 'decoder.tok', layers: 'decoder.blocks', finalNorm: 'decoder.norm', unembed: 'head' },
      // Inside each block this codebase says `attention` where HF says `self_attn`.
      rename: (n) => n.replace('.self_attn.', '.attention.'),
    });
    const source = makeCheckpoint(recipe('llama-headdim-untied'));
    const dir = renamedCopy(
      source,
      'acme-decoder',
      (n) =>
        n
          .replace(/^model\.embed_tokens/, 'decoder.tok')
          .replace(/^model\.layers/, 'decoder.blocks')
          .replace(/^model\.norm/, 'decoder.norm')
          .replace(/^lm_head/, 'head')
          .replace('.self_attn.', '.attention.'),
      { model_type: 'acme-decoder', architectures: ['AcmeDecoder'] },
    );
    const model = await openModel(dir, { device: 'cpu' });
    closers.push(() => model.close());
    expect(model.info.modelType).toBe('acme-decoder');
    const r = await model.lens('The capital of France is Paris', { topK: 5, trackAcrossLayers: true, points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] });
    const ref = referenceLens(source, idsOf(r));
    const block = deviation(r, ref.logProbs);
    expect(block.topKMismatches).toEqual([]);
    expect(block.maxProbError).toBeLessThanOrEqual(1e-5);
    const attn = deviation({ ...r.attention!, layers: r.layers }, ref.attnLogProbs);
    expect(attn.topKMismatches).toEqual([]);
    expect(attn.maxProbError).toBeLessThanOrEqual(1e-5);
  });

  it('gpt2 with learned positions under other names, picked by explicit type', async () => {
    registerLayout({
      family: 'tiny-gpt',
      base: 'gpt2',
      paths: { embed: 'gpt.tokens', positions: 'gpt.positions', layers: 'gpt.blocks', finalNorm: 'gpt.out_norm' },
    });
    const source = makeCheckpoint(recipe('gpt2-tiny'));
    const dir = renamedCopy(
      source,
      'tiny-gpt',
      (n) =>
        n
          .replace(/^transformer\.wte/, 'gpt.tokens')
          .replace(/^transformer\.wpe/, 'gpt.positions')
          .replace(/^transformer\.h\./, 'gpt.blocks.')
          .replace(/^transformer\.ln_f/, 'gpt.out_norm'),
      { model_type: 'something-else', architectures: ['SomethingElse'] },
    );
    const model = await openModel(dir, { device: 'cpu', modelType: 'tiny-gpt' });
    closers.push(() => model.close());
    const r = await model.lens('Hello world, this is a test', { topK: 5 });
    const block = deviation(r, referenceLens(source, idsOf(r)).logProbs);
    expect(block.topKMismatches).toEqual([]);
    expect(block.maxProbError).toBeLessThanOrEqual(1e-5);
  });

  it('a base that does not exist is a typed error', () => {
    expect(() => registerLayout({ family: 'x', base: 'nope', paths: { layers: 'a' } })).toThrow(/no registered family "nope"/);
  });
});

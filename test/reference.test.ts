/**
 * Sanity tests of the test oracle itself (test/helpers/reference.ts and fixtures.ts): the ONNX
 * implementation is judged against these, so they must be able to fail on their own.
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  FIXTURE_ROOT,
  RECIPES,
  configFor,
  makeBrokenCheckpoint,
  makeCheckpoint,
  recipe,
  writeCheckpoint,
  type BrokenKind,
  type FixtureRecipe,
} from './helpers/fixtures.js';
import {
  applyRope,
  causalAttention,
  erf,
  loadConfig,
  loadTensors,
  referenceLens,
  referenceTopK,
  ropeInvFreq,
  ropeParameters,
  roundToDtype,
  type ReferenceLens,
} from './helpers/reference.js';
import { f32ToBf16, f32ToF16, writeSafetensors, type TensorIn } from './helpers/safetensors-writer.js';

// "The quick brown fox jumps over the lazy dog" with each fixture's tokenizer (checked below).
const PROMPT: Record<string, number[]> = {
  gpt2: [464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290],
  llama3: [791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679],
  qwen3: [785, 3974, 13876, 38835, 34208, 916, 279, 15678, 5562],
};
const TEXT = 'The quick brown fox jumps over the lazy dog';

function promptFor(r: FixtureRecipe): number[] {
  const t =
    r.tokenizer ??
    (r.family === 'llama' || r.family === 'mistral' ? 'llama3' : r.family === 'qwen2' || r.family === 'qwen3' ? 'qwen3' : 'gpt2');
  return PROMPT[t];
}

const scratch = mkdtempSync(join(tmpdir(), 'lensgate-ref-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let scratchN = 0;
function scratchDir(): string {
  return join(scratch, String(scratchN++));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function lensDiff(a: ReferenceLens, b: ReferenceLens): number {
  let m = 0;
  for (let l = 0; l < a.numLayers; l++)
    for (let p = 0; p < a.T; p++) {
      m = Math.max(m, maxAbsDiff(a.logProbs[l][p], b.logProbs[l][p]));
      m = Math.max(m, maxAbsDiff(a.attnLogProbs[l][p], b.attnLogProbs[l][p]));
    }
  return m;
}

const lensCache = new Map<string, ReferenceLens>();
function lensOf(name: string, ids?: number[]): ReferenceLens {
  const r = recipe(name);
  const key = `${name}:${ids ?? ''}`;
  let v = lensCache.get(key);
  if (!v) {
    v = referenceLens(makeCheckpoint(r), ids ?? promptFor(r));
    lensCache.set(key, v);
  }
  return v;
}

const CORE = ['gpt2-tiny', 'gpt2-untied', 'llama-gqa-tied', 'llama-headdim-untied', 'llama31-rope', 'mistral-window4', 'qwen2-tiny'];

describe('fixtures', () => {
  it('writes real HF layout and reuses the directory', () => {
    const dir = makeCheckpoint(RECIPES['gpt2-tiny']);
    expect(makeCheckpoint(RECIPES['gpt2-tiny'])).toBe(dir);
    expect(dir.startsWith(FIXTURE_ROOT)).toBe(true);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) {
      expect(existsSync(join(dir, f))).toBe(true);
    }
    const t = loadTensors(dir);
    expect(t.has('transformer.h.0.attn.c_attn.weight')).toBe(true);
    expect(t.get('transformer.h.0.attn.c_attn.weight')!.shape).toEqual([64, 192]); // Conv1D [in, out]
    expect(t.has('lm_head.weight')).toBe(false);
    const cfg = loadConfig(dir);
    expect(cfg).toMatchObject({ model_type: 'gpt2', n_layer: 3, n_embd: 64, n_head: 4, vocab_size: 50257 });
    expect('tie_word_embeddings' in cfg).toBe(false);
  });

  it('prefix-less gpt2 has bare names and the attn.bias / masked_bias buffers', () => {
    const t = loadTensors(makeCheckpoint(RECIPES['gpt2-prefixless']));
    expect(t.has('wte.weight') && t.has('ln_f.weight') && t.has('h.0.attn.c_attn.weight')).toBe(true);
    expect([...t.keys()].some((k) => k.startsWith('transformer.'))).toBe(false);
    const bias = t.get('h.0.attn.bias')!;
    expect(bias.shape).toEqual([1, 1, 128, 128]);
    expect(bias.data[0 * 128 + 1]).toBe(0);
    expect(bias.data[1 * 128 + 0]).toBe(1);
    expect(t.get('h.1.attn.masked_bias')!.shape).toEqual([]);
  });

  it('sharded checkpoints have an index naming every tensor once', () => {
    const dir = makeCheckpoint(RECIPES['llama-gqa-tied-sharded']);
    const idx = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
    expect(Object.keys(idx.metadata)).toContain('total_size');
    const files = new Set(Object.values(idx.weight_map));
    expect(files).toEqual(new Set(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']));
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(false);
    const t = loadTensors(dir);
    expect([...t.keys()].sort()).toEqual(Object.keys(idx.weight_map).sort());
    let bytes = 0;
    for (const v of t.values()) bytes += v.data.length * 4;
    expect(idx.metadata.total_size).toBe(bytes);
  });

  it('configs use the real key names of each family and both rope forms', () => {
    const legacy = configFor(RECIPES['llama31-rope']);
    expect(legacy.rope_scaling).toMatchObject({ rope_type: 'llama3', factor: 8, original_max_position_embeddings: 32 });
    expect(legacy.rope_theta).toBe(10000);
    expect(legacy.torch_dtype).toBe('float32');
    const v5 = configFor(RECIPES['llama31-rope-v5']);
    expect(v5.rope_parameters).toMatchObject({ rope_type: 'llama3', rope_theta: 10000, factor: 8 });
    expect('rope_theta' in v5 || 'rope_scaling' in v5).toBe(false);
    expect(ropeParameters(legacy)).toEqual(ropeParameters(v5));
    expect(configFor(RECIPES['llama-headdim-untied'])).toMatchObject({ head_dim: 16, hidden_size: 48, num_attention_heads: 4 });
    expect(configFor(RECIPES['mistral-window4'])).toMatchObject({ model_type: 'mistral', sliding_window: 4 });
    expect(configFor(RECIPES['qwen2-tiny'])).toMatchObject({ vocab_size: 151936, use_sliding_window: false });
    expect(configFor(RECIPES['llama-gqa-tied'])).toMatchObject({ num_key_value_heads: 2, num_attention_heads: 4, vocab_size: 128256 });
  });

  it('ships a working tokenizer whose ids fit the vocab', () => {
    for (const name of ['gpt2-tiny', 'llama-gqa-tied', 'qwen2-tiny']) {
      const dir = makeCheckpoint(recipe(name));
      const tok = new Tokenizer(
        JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')),
        JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')),
      );
      const ids = tok.encode(TEXT, { add_special_tokens: false }).ids;
      expect(ids).toEqual(promptFor(recipe(name)));
      expect(Math.max(...ids)).toBeLessThan(loadConfig(dir).vocab_size);
    }
  });

  it('BF16 / F16 fixtures hold the F32 fixture values rounded to the dtype', () => {
    const pairs: [string, string, (x: number) => number][] = [
      ['llama-gqa-tied', 'llama-gqa-tied-bf16', f32ToBf16],
      ['gpt2-tiny', 'gpt2-f16', f32ToF16],
    ];
    const back = new DataView(new ArrayBuffer(4));
    const bf16 = (bits: number) => (back.setUint32(0, bits << 16), back.getFloat32(0));
    const f16 = (h: number) => {
      const e = (h >> 10) & 0x1f;
      const m = h & 0x3ff;
      const s = h & 0x8000 ? -1 : 1;
      return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
    };
    for (const [a, b, round] of pairs) {
      const ta = loadTensors(makeCheckpoint(recipe(a)));
      const tb = loadTensors(makeCheckpoint(recipe(b)));
      expect([...tb.keys()].sort()).toEqual([...ta.keys()].sort());
      let changed = 0;
      for (const [name, x] of ta) {
        const y = tb.get(name)!;
        expect(y.dtype).toBe(round === f32ToBf16 ? 'BF16' : 'F16');
        for (let i = 0; i < x.data.length; i += 7) {
          const want = round === f32ToBf16 ? bf16(round(x.data[i])) : f16(round(x.data[i]));
          if (y.data[i] !== want) throw new Error(`${b} ${name}[${i}]: ${y.data[i]} ≠ round(${x.data[i]}) = ${want}`);
          if (want !== x.data[i]) changed++;
        }
      }
      expect(changed).toBeGreaterThan(1000); // rounding really happened
    }
  });

  it('weights are large enough that top-k is not decided by float noise', () => {
    for (const name of ['gpt2-tiny', 'llama-gqa-tied', 'qwen2-tiny']) {
      const lens = lensOf(name);
      let close = 0;
      let cells = 0;
      for (let l = 0; l < lens.numLayers; l++)
        for (let p = 0; p < lens.T; p++) {
          const lp = lens.logProbs[l][p];
          const top = referenceTopK(lp, 6);
          for (let i = 0; i < 5; i++) if (Math.log(top.probs[i]) - Math.log(top.probs[i + 1]) < 1e-4) close++;
          cells++;
          // logits spread: std of log-probs ~2–4, so the top-1 carries visible probability
          let mean = 0;
          for (const v of lp) mean += v;
          mean /= lp.length;
          let varr = 0;
          for (const v of lp) varr += (v - mean) ** 2;
          const std = Math.sqrt(varr / lp.length);
          expect(std).toBeGreaterThan(1.5);
          expect(std).toBeLessThan(6);
        }
      expect(close / (cells * 5)).toBeLessThan(0.05);
    }
  });

  it('blocks change the lens: top-1 differs between layers somewhere', () => {
    for (const name of CORE) {
      const lens = lensOf(name);
      let differs = 0;
      for (let p = 0; p < lens.T; p++) {
        const first = referenceTopK(lens.logProbs[0][p], 1).ids[0];
        const last = referenceTopK(lens.logProbs[lens.numLayers - 1][p], 1).ids[0];
        const attn = referenceTopK(lens.attnLogProbs[0][p], 1).ids[0];
        if (first !== last || first !== attn) differs++;
      }
      expect(differs, name).toBeGreaterThan(0);
    }
  });

  const kinds: BrokenKind[] = [
    'missing-config',
    'missing-weight',
    'truncated-weights',
    'corrupt-header',
    'shape-mismatch',
    'unknown-model-type',
    'missing-shard',
  ];
  for (const kind of kinds) {
    it(`broken checkpoint '${kind}' is rejected by the reference loader`, () => {
      const b = makeBrokenCheckpoint(kind, RECIPES['llama-gqa-tied']);
      expect(existsSync(b.dir)).toBe(true);
      let msg = '';
      try {
        referenceLens(b.dir, [1, 2, 3]);
      } catch (e) {
        msg = String((e as Error).message);
      }
      expect(msg, kind).not.toBe('');
      if (kind === 'missing-weight' || kind === 'shape-mismatch' || kind === 'unknown-model-type') {
        expect(msg).toContain(b.detail);
      }
    });
  }
});

describe('reference lens', () => {
  it('every distribution sums to 1 and has the right shape', () => {
    for (const name of CORE) {
      const lens = lensOf(name);
      const cfg = configFor(recipe(name));
      expect(lens.numLayers).toBe(cfg.n_layer ?? cfg.num_hidden_layers);
      expect(lens.vocabSize).toBe(cfg.vocab_size);
      expect(lens.T).toBe(promptFor(recipe(name)).length);
      for (const set of [lens.logProbs, lens.attnLogProbs]) {
        expect(set.length).toBe(lens.numLayers);
        for (const layer of set) {
          expect(layer.length).toBe(lens.T);
          for (const lp of layer) {
            expect(lp.length).toBe(lens.vocabSize);
            let s = 0;
            for (const v of lp) s += Math.exp(v);
            expect(Math.abs(s - 1)).toBeLessThan(1e-10);
          }
        }
      }
    }
  });

  it("the last layer's lens equals the model's final log-probs", () => {
    for (const name of CORE) {
      const lens = lensOf(name);
      for (let p = 0; p < lens.T; p++) {
        expect(maxAbsDiff(lens.logProbs[lens.numLayers - 1][p], lens.finalLogProbs[p])).toBeLessThan(1e-12);
      }
    }
  });

  it('hand-computed 1-layer llama, 1 token', () => {
    // V=3, D=2, 1 head of dim 2, I=1. With one token attention returns v, and rope at position 0
    // is the identity, so the block is plain arithmetic.
    const dir = scratchDir();
    const t: Record<string, TensorIn> = {
      'model.embed_tokens.weight': { shape: [3, 2], data: [1, 0, 0.5, -1, 2, 2] },
      'model.layers.0.input_layernorm.weight': { shape: [2], data: [1, 2] },
      'model.layers.0.self_attn.q_proj.weight': { shape: [2, 2], data: [1, 0, 0, 1] },
      'model.layers.0.self_attn.k_proj.weight': { shape: [2, 2], data: [0, 1, 1, 0] },
      'model.layers.0.self_attn.v_proj.weight': { shape: [2, 2], data: [1, 1, 0, 1] },
      'model.layers.0.self_attn.o_proj.weight': { shape: [2, 2], data: [0.5, 0, 0, -1] },
      'model.layers.0.post_attention_layernorm.weight': { shape: [2], data: [1, 1] },
      'model.layers.0.mlp.gate_proj.weight': { shape: [1, 2], data: [1, 1] },
      'model.layers.0.mlp.up_proj.weight': { shape: [1, 2], data: [2, 0] },
      'model.layers.0.mlp.down_proj.weight': { shape: [2, 1], data: [1, -0.5] },
      'model.norm.weight': { shape: [2], data: [1, 0.5] },
      'lm_head.weight': { shape: [3, 2], data: [1, 0, 0, 1, 1, 1] },
    };
    mkdirSync(dir, { recursive: true });
    writeSafetensors(join(dir, 'model.safetensors'), t);
    const eps = 0; // makes the arithmetic exact below
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({
        model_type: 'llama', hidden_size: 2, intermediate_size: 1, num_attention_heads: 1, num_key_value_heads: 1,
        num_hidden_layers: 1, vocab_size: 3, rms_norm_eps: eps, rope_theta: 10000, max_position_embeddings: 8,
        hidden_act: 'silu', tie_word_embeddings: false,
      }),
    );
    // token 1: x = (0.5, -1); rms = sqrt((0.25 + 1)/2) = sqrt(0.625)
    const x = [0.5, -1];
    const r1 = Math.sqrt(0.625);
    const a = [x[0] / r1 * 1, x[1] / r1 * 2];
    const v = [a[0] + a[1], a[1]];
    const h1 = [x[0] + 0.5 * v[0], x[1] - v[1]];
    const r2 = Math.sqrt((h1[0] ** 2 + h1[1] ** 2) / 2);
    const b = [h1[0] / r2, h1[1] / r2];
    const g = b[0] + b[1];
    const u = 2 * b[0];
    const m = (g / (1 + Math.exp(-g))) * u;
    const out = [h1[0] + m, h1[1] - 0.5 * m];
    const r3 = Math.sqrt((out[0] ** 2 + out[1] ** 2) / 2);
    const n = [out[0] / r3, (out[1] / r3) * 0.5];
    const logits = [n[0], n[1], n[0] + n[1]];
    const lse = Math.log(logits.reduce((s, z) => s + Math.exp(z), 0));
    const ra = Math.sqrt((h1[0] ** 2 + h1[1] ** 2) / 2);
    const na = [h1[0] / ra, (h1[1] / ra) * 0.5];
    const logitsA = [na[0], na[1], na[0] + na[1]];
    const lseA = Math.log(logitsA.reduce((s, z) => s + Math.exp(z), 0));

    const lens = referenceLens(dir, [1]);
    expect(lens.numLayers).toBe(1);
    for (let i = 0; i < 3; i++) {
      expect(lens.logProbs[0][0][i]).toBeCloseTo(logits[i] - lse, 12);
      expect(lens.attnLogProbs[0][0][i]).toBeCloseTo(logitsA[i] - lseA, 12);
    }
  });

  it('hand-computed 1-layer gpt2, 1 token (Conv1D is [in, out], LayerNorm, gelu_new, position embedding)', () => {
    const dir = scratchDir();
    const D = 2;
    // c_attn [2, 6] = [q|k|v]; only the v columns matter for one token
    const t: Record<string, TensorIn> = {
      'wte.weight': { shape: [2, D], data: [1, 3, -2, 0] },
      'wpe.weight': { shape: [4, D], data: [0.5, 0, 0, 0, 0, 0, 0, 0] },
      'h.0.ln_1.weight': { shape: [D], data: [2, 1] },
      'h.0.ln_1.bias': { shape: [D], data: [0, 1] },
      'h.0.attn.c_attn.weight': { shape: [D, 3 * D], data: [9, 9, 9, 9, 1, 2, 9, 9, 9, 9, 0, 1] },
      'h.0.attn.c_attn.bias': { shape: [3 * D], data: [0, 0, 0, 0, 0.5, 0] },
      'h.0.attn.c_proj.weight': { shape: [D, D], data: [1, 0, 1, 1] },
      'h.0.attn.c_proj.bias': { shape: [D], data: [0, 0] },
      'h.0.ln_2.weight': { shape: [D], data: [1, 1] },
      'h.0.ln_2.bias': { shape: [D], data: [0, 0] },
      'h.0.mlp.c_fc.weight': { shape: [D, 1], data: [1, 0] },
      'h.0.mlp.c_fc.bias': { shape: [1], data: [0.25] },
      'h.0.mlp.c_proj.weight': { shape: [1, D], data: [1, 2] },
      'h.0.mlp.c_proj.bias': { shape: [D], data: [0, 0] },
      'ln_f.weight': { shape: [D], data: [1, 1] },
      'ln_f.bias': { shape: [D], data: [0, 0] },
    };
    mkdirSync(dir, { recursive: true });
    writeSafetensors(join(dir, 'model.safetensors'), t);
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({ model_type: 'gpt2', n_embd: 2, n_head: 1, n_layer: 1, n_positions: 4, n_inner: 1, vocab_size: 2, layer_norm_epsilon: 0, activation_function: 'gelu_new' }),
    );
    // token 0 at position 0: x = (1.5, 3); LayerNorm of two values is (-1, 1) for x0 < x1
    const x = [1.5, 3];
    const ln1 = [-1 * 2 + 0, 1 * 1 + 1]; // (-2, 2)
    // v = ln1 @ Wv + bv, Wv = columns 4..5 → rows [1,2],[0,1]
    const v = [ln1[0] * 1 + ln1[1] * 0 + 0.5, ln1[0] * 2 + ln1[1] * 1]; // (-1.5, -2)
    const o = [v[0] * 1 + v[1] * 1, v[0] * 0 + v[1] * 1]; // [in,out]: (-3.5, -2)
    const h1 = [x[0] + o[0], x[1] + o[1]]; // (-2, 1)
    const ln2 = [-1, 1];
    const f = ln2[0] + 0.25;
    const gl = 0.5 * f * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (f + 0.044715 * f ** 3)));
    const out = [h1[0] + gl, h1[1] + 2 * gl];
    const lnf = out[0] < out[1] ? [-1, 1] : [1, -1];
    const logits = [lnf[0] * 1 + lnf[1] * 3, lnf[0] * -2];
    const lse = Math.log(Math.exp(logits[0]) + Math.exp(logits[1]));
    const lens = referenceLens(dir, [0]);
    expect(lens.logProbs[0][0][0]).toBeCloseTo(logits[0] - lse, 12);
    expect(lens.logProbs[0][0][1]).toBeCloseTo(logits[1] - lse, 12);
    // after attention: ln_f(-2, 1) = (-1, 1)
    const la = [-1 * 1 + 1 * 3, 2];
    const lseA = Math.log(Math.exp(la[0]) + Math.exp(la[1]));
    expect(lens.attnLogProbs[0][0][0]).toBeCloseTo(la[0] - lseA, 12);
  });

  it('same seed in different layouts / shards / rope config forms gives the same lens', () => {
    expect(lensDiff(lensOf('gpt2-tiny'), lensOf('gpt2-prefixless'))).toBe(0);
    expect(lensDiff(lensOf('llama-gqa-tied'), lensOf('llama-gqa-tied-sharded'))).toBe(0);
    expect(lensDiff(lensOf('llama31-rope'), lensOf('llama31-rope-v5'))).toBe(0);
    // bf16 rounding moves the lens, but only a little
    const d = lensDiff(lensOf('llama-gqa-tied'), lensOf('llama-gqa-tied-bf16'));
    expect(d).toBeGreaterThan(1e-6);
    expect(d).toBeLessThan(0.5);
  });

  it('sharded F16 and BF16 checkpoints load', () => {
    expect(lensOf('llama-f16-sharded').numLayers).toBe(2);
    const a = lensOf('gpt2-bf16-sharded');
    expect(lensDiff(a, lensOf('gpt2-tiny'))).toBeLessThan(0.5);
  });

  it('GQA with k/v heads repeated to all heads equals the MHA model', () => {
    const r = RECIPES['llama-gqa-tied'];
    const src = makeCheckpoint(r);
    const t = loadTensors(src);
    const cfg = loadConfig(src);
    const H = cfg.num_attention_heads;
    const KV = cfg.num_key_value_heads;
    const hd = cfg.hidden_size / H;
    const D = cfg.hidden_size;
    const out: Record<string, TensorIn> = {};
    for (const [name, x] of t) {
      if (/\.(k_proj|v_proj)\.weight$/.test(name)) {
        // repeat_kv order: kv head g serves query heads g·rep … g·rep + rep − 1
        const rep = H / KV;
        const data = new Float64Array(H * hd * D);
        for (let h = 0; h < H; h++) {
          const g = Math.floor(h / rep);
          data.set(x.data.subarray(g * hd * D, (g + 1) * hd * D), h * hd * D);
        }
        out[name] = { shape: [H * hd, D], data };
      } else out[name] = { shape: x.shape, data: x.data };
    }
    const dir = scratchDir();
    mkdirSync(dir);
    writeSafetensors(join(dir, 'model.safetensors'), out);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, num_key_value_heads: H }));
    const ids = promptFor(r).slice(0, 5);
    expect(lensDiff(referenceLens(src, ids), referenceLens(dir, ids))).toBeLessThan(1e-12);
  });

  it('mistral sliding window: positions inside the window match full attention, later ones do not', () => {
    const r = RECIPES['mistral-window4'];
    const dir = scratchDir();
    writeCheckpoint(dir, r, { mutate: (_t, c) => (c.sliding_window = null) });
    const win = lensOf('mistral-window4');
    const full = referenceLens(dir, promptFor(r));
    for (let p = 0; p < win.T; p++) {
      let d = 0;
      for (let l = 0; l < win.numLayers; l++) d = Math.max(d, maxAbsDiff(win.logProbs[l][p], full.logProbs[l][p]));
      // window 4: query p sees p-3..p, so positions 0..3 see everything anyway
      if (p < 4) expect(d, `p=${p}`).toBe(0);
      else expect(d, `p=${p}`).toBeGreaterThan(1e-6);
    }
    // the window wider than the prompt is the same as none
    const wide = RECIPES['mistral-tiny'];
    const dir2 = scratchDir();
    writeCheckpoint(dir2, wide, { mutate: (_t, c) => (c.sliding_window = null) });
    expect(lensDiff(lensOf('mistral-tiny'), referenceLens(dir2, promptFor(wide)))).toBe(0);
  });

  it('qwen2 ignores sliding_window unless use_sliding_window, and its q/k/v biases matter', () => {
    const r = RECIPES['qwen2-tiny'];
    const ids = promptFor(r).slice(0, 6);
    const dir = scratchDir();
    writeCheckpoint(dir, r, { mutate: (_t, c) => (c.sliding_window = 2) });
    expect(lensDiff(referenceLens(makeCheckpoint(r), ids), referenceLens(dir, ids))).toBe(0);
    const dir2 = scratchDir();
    writeCheckpoint(dir2, r, {
      mutate: (t) => {
        for (const k of Object.keys(t)) if (k.endsWith('_proj.bias')) t[k] = { shape: t[k].shape, data: new Float32Array(t[k].data.length) };
      },
    });
    expect(lensDiff(referenceLens(makeCheckpoint(r), ids), referenceLens(dir2, ids))).toBeGreaterThan(1e-6);
  });

  it('llama3 rope scaling in the fixture changes the lens', () => {
    const r = RECIPES['llama31-rope'];
    const dir = scratchDir();
    writeCheckpoint(dir, r, { mutate: (_t, c) => (c.rope_scaling = null) });
    expect(lensDiff(lensOf('llama31-rope'), referenceLens(dir, promptFor(r)))).toBeGreaterThan(1e-6);
  });

  it('the lm_head of an untied model is used (not the embedding)', () => {
    const r = RECIPES['gpt2-untied'];
    const dir = scratchDir();
    writeCheckpoint(dir, r, {
      mutate: (t, c) => {
        delete t['lm_head.weight'];
        delete c.tie_word_embeddings;
      },
    });
    expect(lensDiff(lensOf('gpt2-untied'), referenceLens(dir, promptFor(r)))).toBeGreaterThan(1e-3);
  });
});

describe('reference building blocks', () => {
  it('rope at position 0 is the identity and preserves norms elsewhere', () => {
    const t = ropeInvFreq({ rope_type: 'default', rope_theta: 10000 }, 16);
    const x = Float64Array.from({ length: 16 }, (_, i) => Math.sin(i + 1));
    for (const inter of [false, true]) {
      expect(Array.from(applyRope(x, 0, t, 16, inter))).toEqual(Array.from(x));
      const y = applyRope(x, 7, t, 16, inter);
      const n = (v: Float64Array) => Math.hypot(...v);
      expect(n(y)).toBeCloseTo(n(x), 12);
    }
    // partial rotary leaves the tail alone
    const y = applyRope(x, 5, t, 8);
    expect(Array.from(y.subarray(8))).toEqual(Array.from(x.subarray(8)));
  });

  it('rope scores depend only on relative position', () => {
    const t = ropeInvFreq({ rope_type: 'default', rope_theta: 10000 }, 8);
    const q = Float64Array.from([1, -2, 0.5, 3, 1, 1, -1, 0.25]);
    const k = Float64Array.from([0.3, 1, -1, 2, 0, 0.5, 1, -2]);
    const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, v, i) => s + v * b[i], 0);
    for (const inter of [false, true]) {
      const s1 = dot(applyRope(q, 9, t, 8, inter), applyRope(k, 4, t, 8, inter));
      const s2 = dot(applyRope(q, 25, t, 8, inter), applyRope(k, 20, t, 8, inter));
      expect(s1).toBeCloseTo(s2, 10);
    }
  });

  it('rotate-half pairs dims (i, i+d/2); interleaved pairs (2i, 2i+1)', () => {
    const t = { invFreq: Float64Array.from([Math.PI / 2, 0]), attentionFactor: 1 };
    // position 1: frequency 0 rotates by 90°, frequency 1 not at all
    expect(Array.from(applyRope(Float64Array.from([1, 0, 0, 0]), 1, t, 4)).map((v) => +v.toFixed(12))).toEqual([0, 0, 1, 0]);
    expect(Array.from(applyRope(Float64Array.from([1, 0, 0, 0]), 1, t, 4, true)).map((v) => +v.toFixed(12))).toEqual([0, 1, 0, 0]);
  });

  it('llama3 scaling changes inv_freq only for low frequencies', () => {
    const cfg = loadConfig(makeCheckpoint(RECIPES['llama31-rope']));
    const dim = 16;
    const plain = ropeInvFreq({ rope_type: 'default', rope_theta: 10000 }, dim).invFreq;
    const scaled = ropeInvFreq(ropeParameters(cfg), dim).invFreq;
    const orig = 32;
    let kept = 0;
    let divided = 0;
    let smoothed = 0;
    for (let i = 0; i < plain.length; i++) {
      const wavelen = (2 * Math.PI) / plain[i];
      if (wavelen < orig / 4) {
        expect(scaled[i]).toBe(plain[i]);
        kept++;
      } else if (wavelen > orig / 1) {
        expect(scaled[i]).toBeCloseTo(plain[i] / 8, 15);
        divided++;
      } else {
        expect(scaled[i]).toBeLessThan(plain[i]);
        expect(scaled[i]).toBeGreaterThan(plain[i] / 8);
        smoothed++;
      }
      if (i > 0) expect(scaled[i]).toBeLessThan(scaled[i - 1]); // still monotone
    }
    expect([kept, smoothed, divided].every((n) => n > 0)).toBe(true);
  });

  it('sliding window boundary: query i sees exactly keys i-W+1 … i', () => {
    const T = 6;
    const W = 2;
    const q = Array.from({ length: T }, () => Float64Array.from([0]));
    const k = Array.from({ length: T }, () => Float64Array.from([0]));
    // one-hot values: the output is the attention distribution itself
    const v = Array.from({ length: T }, (_, j) => Float64Array.from({ length: T }, (_, d) => (d === j ? 1 : 0)));
    const wrap = (rows: Float64Array[], dim: number) => rows.map((r) => Float64Array.from({ length: dim }, (_, d) => r[d] ?? 0));
    const out = causalAttention(wrap(q, 1), wrap(k, 1), v, { H: 1, KV: 1, hd: 1, hdv: T, scale: 1, window: W });
    for (let i = 0; i < T; i++) {
      for (let j = 0; j < T; j++) {
        const want = j <= i && j > i - W ? 1 / Math.min(W, i + 1) : 0;
        expect(out[i][j]).toBeCloseTo(want, 14);
      }
    }
  });

  it('topK orders by probability and breaks ties by lower id', () => {
    const lp = Float64Array.from([-3, -1, -2, -1, -5, -1, -2].map((x) => x));
    expect(referenceTopK(lp, 4).ids).toEqual([1, 3, 5, 2]);
    expect(referenceTopK(lp, 4).probs[0]).toBeCloseTo(Math.exp(-1), 15);
    expect(referenceTopK(lp, 10).ids).toEqual([1, 3, 5, 2, 6, 0, 4]);
  });

  it('erf matches known values', () => {
    expect(erf(0)).toBe(0);
    expect(erf(0.5)).toBeCloseTo(0.5204998778130465, 14);
    expect(erf(1)).toBeCloseTo(0.8427007929497149, 14);
    expect(erf(-2)).toBeCloseTo(-0.9953222650189527, 14);
    expect(erf(3)).toBeCloseTo(0.9999779095030014, 14);
  });
});


// ---------------------------------------------------------------------------------------------
// Issue-5 families

const FAMILY5 = [
  'gptj-tiny', 'neox-parallel', 'neox-sequential-f16', 'phi-tiny', 'phi3-tiny', 'phi3-longrope', 'gemma-tiny',
  'gemma-bf16-h48', 'gemma2-tiny', 'gemma2-realcaps', 'olmo-tiny', 'olmo-untied', 'hf-olmo-tiny',
  'hf-olmo-untied-clip', 'qwen3-tiny', 'mixtral-tiny',
];

function variantDir(name: string, mutate: (t: Record<string, TensorIn>, c: Record<string, unknown>) => void): string {
  const dir = scratchDir();
  writeCheckpoint(dir, recipe(name), { mutate });
  return dir;
}

/** Rewrites a checkpoint under another layout (tensors renamed / split) and config. */
function convertDir(src: string, config: Record<string, unknown>, tensors: (t: Map<string, { shape: number[]; data: Float64Array }>) => Record<string, TensorIn>): string {
  const dir = scratchDir();
  mkdirSync(dir, { recursive: true });
  writeSafetensors(join(dir, 'model.safetensors'), tensors(loadTensors(src)));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

function rowsOf(x: { shape: number[]; data: Float64Array }, from: number, to: number): TensorIn {
  const cols = x.shape[1];
  return { shape: [to - from, cols], data: x.data.slice(from * cols, to * cols) };
}

describe('the later families (gpt-j, gpt-neox, phi, phi3, gemma, gemma2, olmo, qwen3, mixtral)', () => {
  // One test per family: each builds its own float64 reference (several seconds under load), so no
  // single test runs into the time limit.
  for (const name of FAMILY5) {
    it(`${name}: distributions sum to 1, last lens = final, blocks move the lens, top-k not noise`, () => {
      const lens = lensOf(name);
      const cfg = configFor(recipe(name));
      expect(lens.numLayers, name).toBe(cfg.n_layer ?? cfg.num_hidden_layers ?? cfg.n_layers);
      let differs = 0;
      let close = 0;
      for (let p = 0; p < lens.T; p++) {
        expect(maxAbsDiff(lens.logProbs[lens.numLayers - 1][p], lens.finalLogProbs[p]), name).toBeLessThan(1e-12);
        for (let l = 0; l < lens.numLayers; l++) {
          for (const lp of [lens.logProbs[l][p], lens.attnLogProbs[l][p]]) {
            let s = 0;
            for (const v of lp) s += Math.exp(v);
            expect(Math.abs(s - 1), name).toBeLessThan(1e-10);
          }
          const top = referenceTopK(lens.logProbs[l][p], 6);
          for (let i = 0; i < 5; i++) if (Math.log(top.probs[i] / top.probs[i + 1]) < 1e-4) close++;
        }
        const a = referenceTopK(lens.logProbs[0][p], 1).ids[0];
        const b = referenceTopK(lens.logProbs[lens.numLayers - 1][p], 1).ids[0];
        if (a !== b) differs++;
      }
      expect(differs, name).toBeGreaterThan(0);
      expect(close / (lens.T * lens.numLayers * 5), name).toBeLessThan(0.05);
    });
  }

  it('gpt-neox: layer 0 after-attention is the same in both residual modes, block outputs are not', () => {
    const seq = referenceLens(variantDir('neox-parallel', (_t, c) => (c.use_parallel_residual = false)), PROMPT.gpt2);
    const par = lensOf('neox-parallel');
    for (let p = 0; p < par.T; p++) expect(maxAbsDiff(par.attnLogProbs[0][p], seq.attnLogProbs[0][p])).toBe(0);
    expect(lensDiff(par, seq)).toBeGreaterThan(1e-3);
  });

  it('phi: int(head_dim · partial_rotary_factor) rotary dims', () => {
    const ids = PROMPT.gpt2.slice(0, 6);
    const base = referenceLens(makeCheckpoint(RECIPES['phi-tiny']), ids);
    // 16 · 0.4 = 6.4 → 6 = 16 · 0.375
    expect(lensDiff(base, referenceLens(variantDir('phi-tiny', (_t, c) => (c.partial_rotary_factor = 0.375)), ids))).toBe(0);
    expect(lensDiff(base, referenceLens(variantDir('phi-tiny', (_t, c) => (c.partial_rotary_factor = 0.5)), ids))).toBeGreaterThan(1e-6);
  });

  it('phi3 fused qkv_proj / gate_up_proj equal the split llama layout (gate rows first)', () => {
    const src = makeCheckpoint(RECIPES['phi3-tiny']);
    const cfg = loadConfig(src);
    const { hidden_size: D, num_attention_heads: H, num_key_value_heads: KV, intermediate_size: I } = cfg;
    const hd = D / H;
    const dir = convertDir(src, { ...cfg, model_type: 'llama', sliding_window: null }, (t) => {
      const out: Record<string, TensorIn> = {};
      for (const [n, x] of t) {
        if (n.endsWith('qkv_proj.weight')) {
          const p = n.replace('qkv_proj.weight', '');
          out[`${p}q_proj.weight`] = rowsOf(x, 0, H * hd);
          out[`${p}k_proj.weight`] = rowsOf(x, H * hd, (H + KV) * hd);
          out[`${p}v_proj.weight`] = rowsOf(x, (H + KV) * hd, (H + 2 * KV) * hd);
        } else if (n.endsWith('gate_up_proj.weight')) {
          const p = n.replace('gate_up_proj.weight', '');
          out[`${p}gate_proj.weight`] = rowsOf(x, 0, I);
          out[`${p}up_proj.weight`] = rowsOf(x, I, 2 * I);
        } else out[n] = { shape: x.shape, data: x.data };
      }
      return out;
    });
    expect(lensDiff(lensOf('phi3-tiny'), referenceLens(dir, PROMPT.gpt2))).toBeLessThan(1e-12);
  });

  it('phi3 longrope: short factors and attention factor below the original context', () => {
    const cfg = loadConfig(makeCheckpoint(RECIPES['phi3-longrope']));
    const rp = ropeParameters(cfg);
    expect(rp.rope_type).toBe('longrope'); // from the legacy `type` key
    const opts = { maxPositions: 128, originalMaxPositions: 32 };
    const short = ropeInvFreq(rp, 16, { ...opts, seqLen: 32 });
    const long = ropeInvFreq(rp, 16, { ...opts, seqLen: 33 });
    const plain = ropeInvFreq({ rope_type: 'default', rope_theta: 10000 }, 16).invFreq;
    expect(short.attentionFactor).toBeCloseTo(Math.sqrt(1 + Math.log(4) / Math.log(32)), 14);
    expect(short.invFreq[7]).toBeCloseTo(plain[7] / 1.6, 15);
    expect(long.invFreq[7]).toBeCloseTo(plain[7] / 8, 15);
    const off = referenceLens(variantDir('phi3-longrope', (_t, c) => (c.rope_scaling = null)), PROMPT.gpt2);
    expect(lensDiff(lensOf('phi3-longrope'), off)).toBeGreaterThan(1e-6);
  });

  it('gemma: √hidden embedding scale is rounded to the checkpoint dtype', () => {
    expect(Math.sqrt(48)).not.toBe(6.9375);
    expect(roundToDtype(Math.sqrt(48), 'bfloat16')).toBe(6.9375);
    expect(roundToDtype(Math.sqrt(2048), 'bfloat16')).toBe(45.25);
    expect(roundToDtype(Math.sqrt(48), 'float16')).toBe(6.9296875);
    const f32 = referenceLens(variantDir('gemma-bf16-h48', (_t, c) => (c.torch_dtype = 'float32')), PROMPT.gpt2);
    expect(lensDiff(lensOf('gemma-bf16-h48'), f32)).toBeGreaterThan(1e-6);
  });

  it('gemma2: final soft-cap bounds the lens logits; sliding window only on even layers', () => {
    const lens = lensOf('gemma2-tiny');
    for (const lp of lens.logProbs.flat()) {
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of lp) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
      expect(hi - lo).toBeLessThan(2 * 8);
    }
    const full = referenceLens(variantDir('gemma2-tiny', (_t, c) => (c.sliding_window = null)), PROMPT.gpt2);
    for (let p = 0; p < lens.T; p++) {
      const d = maxAbsDiff(lens.logProbs[3][p], full.logProbs[3][p]);
      if (p < 4) expect(d).toBe(0);
      else expect(d).toBeGreaterThan(1e-6);
    }
    // explicit layer_types that match the alternation change nothing; all-full equals no window
    const lt = referenceLens(variantDir('gemma2-tiny', (_t, c) => (c.layer_types = ['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention'])), PROMPT.gpt2);
    expect(lensDiff(lens, lt)).toBe(0);
    const allFull = referenceLens(variantDir('gemma2-tiny', (_t, c) => (c.layer_types = Array(4).fill('full_attention'))), PROMPT.gpt2);
    expect(lensDiff(full, allFull)).toBe(0);
    // the attention soft-cap matters at 5.0
    const noCap = referenceLens(variantDir('gemma2-tiny', (_t, c) => (c.attn_logit_softcapping = null)), PROMPT.gpt2);
    expect(lensDiff(lens, noCap)).toBeGreaterThan(1e-6);
  });

  it('olmo: clip_qkv clips; hf_olmo layout equals the native layout converted as transformers does', () => {
    const noClip = referenceLens(variantDir('olmo-tiny', (_t, c) => (c.clip_qkv = null)), PROMPT.gpt2);
    expect(lensDiff(lensOf('olmo-tiny'), noClip)).toBeGreaterThan(1e-6);
    for (const name of ['hf-olmo-tiny', 'hf-olmo-untied-clip']) {
      const src = makeCheckpoint(recipe(name));
      const c = loadConfig(src);
      const D = c.d_model;
      const I = (c.mlp_ratio * D) / 2;
      const native = {
        model_type: 'olmo', hidden_size: D, num_attention_heads: c.n_heads, num_key_value_heads: c.n_heads,
        num_hidden_layers: c.n_layers, intermediate_size: I, vocab_size: c.embedding_size, hidden_act: 'silu',
        max_position_embeddings: c.max_sequence_length, rope_theta: 10000, clip_qkv: c.clip_qkv,
        tie_word_embeddings: c.weight_tying,
      };
      const dir = convertDir(src, native, (t) => {
        const out: Record<string, TensorIn> = {};
        for (const [n, x] of t) {
          const m = /^model\.transformer\.blocks\.(\d+)\.(\w+)\.weight$/.exec(n);
          if (n === 'model.transformer.wte.weight') out['model.embed_tokens.weight'] = x;
          else if (n === 'model.transformer.ff_out.weight') out['lm_head.weight'] = x;
          else if (m) {
            const p = `model.layers.${m[1]}`;
            if (m[2] === 'att_proj') {
              out[`${p}.self_attn.q_proj.weight`] = rowsOf(x, 0, D);
              out[`${p}.self_attn.k_proj.weight`] = rowsOf(x, D, 2 * D);
              out[`${p}.self_attn.v_proj.weight`] = rowsOf(x, 2 * D, 3 * D);
            } else if (m[2] === 'attn_out') out[`${p}.self_attn.o_proj.weight`] = x;
            else if (m[2] === 'ff_proj') {
              // convert_olmo_weights_to_hf: up_proj, gate_proj = chunk(ff_proj, 2)
              out[`${p}.mlp.up_proj.weight`] = rowsOf(x, 0, I);
              out[`${p}.mlp.gate_proj.weight`] = rowsOf(x, I, 2 * I);
            } else if (m[2] === 'ff_out') out[`${p}.mlp.down_proj.weight`] = x;
          }
        }
        return out;
      });
      expect(lensDiff(lensOf(name), referenceLens(dir, PROMPT.gpt2)), name).toBeLessThan(1e-12);
    }
  });

  it('qwen3: per-head q/k RMSNorm makes the lens invariant to scaling q_proj and k_proj', () => {
    const ids = PROMPT.qwen3.slice(0, 5);
    const scaled = variantDir('qwen3-tiny', (t) => {
      for (const k of Object.keys(t)) if (/[qk]_proj\.weight$/.test(k)) t[k] = { shape: t[k].shape, data: Array.from(t[k].data, (v) => v * 4) };
    });
    const d = lensDiff(referenceLens(makeCheckpoint(RECIPES['qwen3-tiny']), ids), referenceLens(scaled, ids));
    expect(d).toBeLessThan(1e-4); // only eps = 1e-6 inside the norm tells them apart
    const noNorm = variantDir('qwen3-tiny', (t) => {
      for (const k of Object.keys(t)) if (/[qk]_norm\.weight$/.test(k)) t[k] = { shape: t[k].shape, data: new Float32Array(t[k].data.length).fill(1) };
    });
    expect(lensDiff(referenceLens(makeCheckpoint(RECIPES['qwen3-tiny']), ids), referenceLens(noNorm, ids))).toBeGreaterThan(1e-6);
  });

  it('mixtral: with identical experts the MoE equals a dense mistral MLP; routing matters otherwise', () => {
    const src = variantDir('mixtral-tiny', (t) => {
      for (const k of Object.keys(t)) {
        const m = /^(.*experts\.)(\d+)(\..*)$/.exec(k);
        if (m && m[2] !== '0') t[k] = t[`${m[1]}0${m[3]}`];
      }
    });
    const cfg = loadConfig(src);
    const dir = convertDir(src, { ...cfg, model_type: 'mistral' }, (t) => {
      const out: Record<string, TensorIn> = {};
      for (const [n, x] of t) {
        const m = /^(model\.layers\.\d+)\.block_sparse_moe\.experts\.0\.(w[123])\.weight$/.exec(n);
        if (m) out[`${m[1]}.mlp.${{ w1: 'gate_proj', w2: 'down_proj', w3: 'up_proj' }[m[2]]}.weight`] = x;
        else if (!n.includes('block_sparse_moe')) out[n] = x;
      }
      return out;
    });
    expect(lensDiff(referenceLens(src, PROMPT.gpt2), referenceLens(dir, PROMPT.gpt2))).toBeLessThan(1e-12);
    expect(lensDiff(lensOf('mixtral-tiny'), referenceLens(src, PROMPT.gpt2))).toBeGreaterThan(1e-6);
  });

  it('gpt-j: the attention branch alone moves the lens; lm_head has a bias', () => {
    const lens = lensOf('gptj-tiny');
    let d = 0;
    for (let p = 1; p < lens.T; p++) d = Math.max(d, maxAbsDiff(lens.logProbs[0][p], lens.attnLogProbs[0][p]));
    expect(d).toBeGreaterThan(0);
    expect(loadTensors(makeCheckpoint(RECIPES['gptj-tiny'])).has('lm_head.bias')).toBe(true);
  });
});

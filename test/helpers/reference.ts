/**
 * Float64 reference forward pass (the test oracle), written from the semantics of the
 * transformers modeling code (modeling_gpt2.py, modeling_llama.py, modeling_mistral.py,
 * modeling_qwen2.py, modeling_rope_utils.py, masking_utils.py). It has its own safetensors
 * reader and config parsing and imports nothing from src/: the ONNX graphs are checked against
 * it, so sharing code with them would make the check circular.
 *
 * Everything is float64, including norms and softmax; weights stored as BF16/F16 are widened
 * exactly from the file, so the reference sees the same rounded values the runtime loads.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

// ---------------------------------------------------------------------------------------------
// safetensors reader (independent of src/checkpoint)

export interface RefTensor {
  dtype: string;
  shape: number[];
  data: Float64Array;
}

function f16ToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function readSafetensorsFile(file: string): Map<string, RefTensor> {
  const buf = readFileSync(file);
  if (buf.length < 8) throw new Error(`${file}: too short for a safetensors file`);
  const n = Number(buf.readBigUInt64LE(0));
  if (8 + n > buf.length) throw new Error(`${file}: header length ${n} past end of file`);
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const base = 8 + n;
  const out = new Map<string, RefTensor>();
  for (const [name, h] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const count = h.shape.reduce((a, d) => a * d, 1);
    const [b0, b1] = h.data_offsets;
    if (base + b1 > buf.length) throw new Error(`${file}: tensor ${name} past end of file`);
    const width = h.dtype === 'F32' ? 4 : h.dtype === 'F64' ? 8 : h.dtype === 'BF16' || h.dtype === 'F16' ? 2 : 0;
    if (!width) throw new Error(`${name}: dtype ${h.dtype} not supported by the reference`);
    if (b1 - b0 !== count * width) throw new Error(`${name}: byte length ${b1 - b0} does not match shape [${h.shape}]`);
    // copy out: data offsets need not be aligned for a typed-array view (little-endian host assumed)
    const raw = new Uint8Array(b1 - b0);
    raw.set(buf.subarray(base + b0, base + b1));
    let data: Float64Array;
    if (h.dtype === 'F32') data = Float64Array.from(new Float32Array(raw.buffer));
    else if (h.dtype === 'F64') data = new Float64Array(raw.buffer);
    else {
      const u16 = new Uint16Array(raw.buffer);
      data = new Float64Array(count);
      if (h.dtype === 'BF16') {
        const u32 = new Uint32Array(1);
        const f = new Float32Array(u32.buffer);
        for (let i = 0; i < count; i++) {
          u32[0] = u16[i] << 16;
          data[i] = f[0];
        }
      } else for (let i = 0; i < count; i++) data[i] = f16ToNumber(u16[i]);
    }
    out.set(name, { dtype: h.dtype, shape: h.shape, data });
  }
  return out;
}

export function loadTensors(dir: string): Map<string, RefTensor> {
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) {
    const { weight_map } = JSON.parse(readFileSync(index, 'utf8')) as { weight_map: Record<string, string> };
    const out = new Map<string, RefTensor>();
    for (const file of new Set(Object.values(weight_map))) {
      for (const [k, v] of readSafetensorsFile(join(dir, file))) out.set(k, v);
    }
    return out;
  }
  return readSafetensorsFile(join(dir, 'model.safetensors'));
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Config = Record<string, any>;

export function loadConfig(dir: string): Config {
  return JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Config;
}

// ---------------------------------------------------------------------------------------------
// Vector math (rows are Float64Array; a sequence is an array of rows)

type Vec = Float64Array;
type Rows = Vec[];

/** nn.Linear: W is [out, in]. */
export function linear(x: Vec, W: RefTensor, b?: RefTensor): Vec {
  const [O, I] = W.shape;
  if (I !== x.length) throw new Error(`linear: input ${x.length} vs weight ${W.shape}`);
  const w = W.data;
  const out = new Float64Array(O);
  for (let o = 0; o < O; o++) {
    let s = b ? b.data[o] : 0;
    const r = o * I;
    for (let i = 0; i < I; i++) s += w[r + i] * x[i];
    out[o] = s;
  }
  return out;
}

/** GPT-2 Conv1D: W is [in, out]. */
export function conv1d(x: Vec, W: RefTensor, b?: RefTensor): Vec {
  const [I, O] = W.shape;
  if (I !== x.length) throw new Error(`conv1d: input ${x.length} vs weight ${W.shape}`);
  const w = W.data;
  const out = new Float64Array(O);
  if (b) out.set(b.data);
  for (let i = 0; i < I; i++) {
    const xi = x[i];
    const r = i * O;
    for (let o = 0; o < O; o++) out[o] += w[r + o] * xi;
  }
  return out;
}

export function layerNorm(x: Vec, w: RefTensor | null, b: RefTensor | null, eps: number): Vec {
  const n = x.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i];
  mean /= n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (x[i] - mean) ** 2;
  v /= n; // biased variance, as torch.nn.LayerNorm
  const r = 1 / Math.sqrt(v + eps);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (x[i] - mean) * r * (w ? w.data[i] : 1) + (b ? b.data[i] : 0);
  return out;
}

/** RMSNorm; `plusOne` is Gemma's x̂·(1 + w). */
export function rmsNorm(x: Vec, w: RefTensor | Vec, eps: number, plusOne = false): Vec {
  const n = x.length;
  const wd = w instanceof Float64Array ? w : w.data;
  let ms = 0;
  for (let i = 0; i < n; i++) ms += x[i] * x[i];
  ms /= n;
  const r = 1 / Math.sqrt(ms + eps);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = x[i] * r * (plusOne ? 1 + wd[i] : wd[i]);
  return out;
}

export function add(a: Vec, b: Vec): Vec {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}

export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

/** erf to ~1e-15: Taylor series near 0, continued fraction for erfc in the tails. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = x;
    let sum = x;
    const x2 = x * x;
    for (let n = 1; n < 200; n++) {
      term *= -x2 / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(ax) by Lentz's continued fraction
  let f = ax;
  let C = ax;
  let D = 0;
  for (let n = 1; n < 300; n++) {
    const an = n / 2;
    D = ax + an * D;
    D = D === 0 ? 1e-300 : 1 / D;
    C = ax + an / C;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / (f * Math.sqrt(Math.PI));
  return x > 0 ? 1 - erfc : erfc - 1;
}

export function geluErf(x: number): number {
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

export function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

/** transformers ACT2FN names → function */
export function activation(name: string): (x: number) => number {
  switch (name) {
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
    case 'gelu_fast':
      return geluTanh;
    case 'gelu':
      return geluErf;
    case 'silu':
    case 'swish':
      return silu;
    case 'relu':
      return (x) => Math.max(0, x);
    default:
      throw new Error(`activation ${name} not supported by the reference`);
  }
}

export function mapVec(x: Vec, f: (v: number) => number): Vec {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = f(x[i]);
  return out;
}

export function logSoftmax(logits: Vec): Vec {
  let m = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > m) m = logits[i];
  let s = 0;
  for (let i = 0; i < logits.length; i++) s += Math.exp(logits[i] - m);
  const lse = m + Math.log(s);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - lse;
  return out;
}

// ---------------------------------------------------------------------------------------------
// RoPE

export interface RopeParams {
  rope_type: string;
  rope_theta: number;
  [k: string]: unknown;
}

/**
 * Both config forms: transformers ≥ 5 `rope_parameters` ({rope_type, rope_theta, …}, or one such
 * dict per layer type) and the older top-level `rope_theta` + `rope_scaling` (`type` or
 * `rope_type`; null = default).
 */
export function ropeParameters(cfg: Config, layerType = 'full_attention'): RopeParams {
  let rp: Record<string, unknown>;
  const p = cfg.rope_parameters;
  if (p && typeof p === 'object') {
    rp = 'rope_theta' in p || 'rope_type' in p || 'type' in p ? p : (p[layerType] ?? Object.values(p)[0]);
  } else {
    rp = { ...(cfg.rope_scaling ?? {}), rope_theta: cfg.rope_theta ?? 10000 };
  }
  const type = (rp.rope_type ?? rp.type ?? 'default') as string;
  return { ...rp, rope_type: type, rope_theta: Number(rp.rope_theta ?? cfg.rope_theta ?? 10000) };
}

export interface RopeTable {
  invFreq: Float64Array;
  /** multiplies cos and sin (yarn / longrope); 1 otherwise */
  attentionFactor: number;
}

/**
 * inv_freq for a rotary dimension `dim` (already head_dim × partial factor), following
 * modeling_rope_utils: default θ^(-2i/dim); llama3 keeps high frequencies (wavelength <
 * orig/high_freq_factor), divides low ones (wavelength > orig/low_freq_factor) by `factor`, and
 * interpolates in between; linear divides all by `factor`; longrope divides by short/long factors.
 */
export function ropeInvFreq(rp: RopeParams, dim: number, opts: { seqLen?: number; maxPositions?: number; originalMaxPositions?: number } = {}): RopeTable {
  const base = rp.rope_theta;
  const half = dim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / base ** ((2 * i) / dim);
  switch (rp.rope_type) {
    case 'default':
      return { invFreq: inv, attentionFactor: 1 };
    case 'linear': {
      const f = Number(rp.factor);
      return { invFreq: inv.map((v) => v / f), attentionFactor: 1 };
    }
    case 'llama3': {
      const factor = Number(rp.factor);
      const lo = Number(rp.low_freq_factor);
      const hi = Number(rp.high_freq_factor);
      const old = Number(rp.original_max_position_embeddings);
      const loWave = old / lo;
      const hiWave = old / hi;
      const out = new Float64Array(half);
      for (let i = 0; i < half; i++) {
        const wavelen = (2 * Math.PI) / inv[i];
        if (wavelen < hiWave) out[i] = inv[i];
        else if (wavelen > loWave) out[i] = inv[i] / factor;
        else {
          const smooth = (old / wavelen - lo) / (hi - lo);
          out[i] = (1 - smooth) * (inv[i] / factor) + smooth * inv[i];
        }
      }
      return { invFreq: out, attentionFactor: 1 };
    }
    case 'longrope': {
      // Phi-3 keeps original_max_position_embeddings at the config top level and derives
      // factor = max_position_embeddings / original. Short factors until the sequence is longer
      // than the original context, long factors after (seq_len > original, strictly). The
      // attention factor sqrt(1 + ln(factor) / ln(original)) scales cos and sin, so q·k by its square.
      let orig: number;
      let factor: number;
      if (opts.originalMaxPositions !== undefined) {
        orig = opts.originalMaxPositions;
        factor = (opts.maxPositions ?? orig) / orig;
      } else {
        orig = Number(rp.original_max_position_embeddings ?? opts.maxPositions);
        factor = Number(rp.factor ?? 1);
      }
      let af = rp.attention_factor as number | null | undefined;
      if (af == null) af = factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(orig));
      const ext = ((opts.seqLen ?? 0) > orig ? rp.long_factor : rp.short_factor) as number[];
      if (!ext || ext.length !== half) throw new Error(`longrope factors must have ${half} entries`);
      return { invFreq: inv.map((v, i) => v / ext[i]), attentionFactor: af };
    }
    default:
      throw new Error(`rope_type ${rp.rope_type} not supported by the reference`);
  }
}

/**
 * Rotates the first `rotaryDim` dims of one head vector at position `pos`.
 * rotate-half (llama, neox, …): pairs (i, i + rotaryDim/2) share frequency i (emb = cat(freqs, freqs)).
 * interleaved (gpt-j rotate_every_two): pairs (2i, 2i+1) share frequency i.
 */
export function applyRope(x: Vec, pos: number, t: RopeTable, rotaryDim: number, interleaved = false): Vec {
  const out = Float64Array.from(x);
  const half = rotaryDim / 2;
  for (let i = 0; i < half; i++) {
    const a = pos * t.invFreq[i];
    const c = Math.cos(a) * t.attentionFactor;
    const s = Math.sin(a) * t.attentionFactor;
    const [i1, i2] = interleaved ? [2 * i, 2 * i + 1] : [i, i + half];
    out[i1] = x[i1] * c - x[i2] * s;
    out[i2] = x[i2] * c + x[i1] * s;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Attention

export interface AttnOpts {
  H: number;
  KV: number;
  hd: number;
  /** value head size (default hd) */
  hdv?: number;
  scale: number;
  /**
   * Sliding window W: query i sees keys j with i - W < j ≤ i (W keys, itself included). This is
   * masking_utils.sliding_window_overlay (`kv_idx > q_idx - sliding_window`) and the older
   * `torch.tril(..., diagonal=-sliding_window)` masks alike.
   */
  window?: number | null;
  /** Gemma-2 attention logit soft-capping: tanh(s / cap) · cap before the mask */
  softcap?: number | null;
}

/**
 * Causal multi-head attention over rows q [T][H·hd], k [T][KV·hd], v [T][KV·hdv]; query head h reads
 * kv head ⌊h / (H/KV)⌋ (repeat_kv repeats each kv head H/KV times consecutively).
 */
export function causalAttention(q: Rows, k: Rows, v: Rows, o: AttnOpts): Rows {
  const T = q.length;
  const hdv = o.hdv ?? o.hd;
  const rep = o.H / o.KV;
  if (!Number.isInteger(rep)) throw new Error(`heads ${o.H} not a multiple of kv heads ${o.KV}`);
  const out: Rows = [];
  for (let i = 0; i < T; i++) {
    const row = new Float64Array(o.H * hdv);
    for (let h = 0; h < o.H; h++) {
      const g = Math.floor(h / rep);
      const j0 = o.window ? Math.max(0, i - o.window + 1) : 0;
      const scores: number[] = [];
      for (let j = j0; j <= i; j++) {
        let s = 0;
        for (let d = 0; d < o.hd; d++) s += q[i][h * o.hd + d] * k[j][g * o.hd + d];
        s *= o.scale;
        if (o.softcap) s = Math.tanh(s / o.softcap) * o.softcap;
        scores.push(s);
      }
      const m = Math.max(...scores);
      const e = scores.map((s) => Math.exp(s - m));
      const z = e.reduce((a, b) => a + b, 0);
      for (let j = j0; j <= i; j++) {
        const p = e[j - j0] / z;
        for (let d = 0; d < hdv; d++) row[h * hdv + d] += p * v[j][g * hdv + d];
      }
    }
    out.push(row);
  }
  return out;
}

/** Splits a row into heads, rotates each, and joins them back. */
function ropeHeads(x: Vec, nHeads: number, hd: number, pos: number, t: RopeTable, rotaryDim: number, interleaved: boolean): Vec {
  const out = new Float64Array(x.length);
  for (let h = 0; h < nHeads; h++) {
    out.set(applyRope(x.subarray(h * hd, (h + 1) * hd), pos, t, rotaryDim, interleaved), h * hd);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Models

export interface RefModel {
  modelType: string;
  numLayers: number;
  vocabSize: number;
  /** token (+ position) embedding rows */
  embed(ids: number[]): Rows;
  /** one transformer block: the residual after its attention sub-layer, and the block output */
  block(l: number, h: Rows): { attn: Rows; out: Rows };
  /** final norm → unembedding → final soft-cap (the lens head; the same for every layer) */
  head(x: Vec): Vec;
}

class Weights {
  constructor(
    readonly t: Map<string, RefTensor>,
    readonly dir: string,
  ) {}
  get(name: string, shape?: number[]): RefTensor {
    const x = this.t.get(name);
    if (!x) throw new Error(`${this.dir}: tensor ${name} missing`);
    if (shape && (shape.length !== x.shape.length || shape.some((d, i) => d !== x.shape[i]))) {
      throw new Error(`${name}: shape [${x.shape}] but config implies [${shape}]`);
    }
    return x;
  }
  opt(name: string): RefTensor | undefined {
    return this.t.get(name);
  }
  has(name: string): boolean {
    return this.t.has(name);
  }
}

function embedRows(E: RefTensor, ids: number[], scale = 1): Rows {
  const [V, D] = E.shape;
  return ids.map((id) => {
    if (!(id >= 0 && id < V)) throw new Error(`token id ${id} out of range [0, ${V})`);
    const r = E.data.slice(id * D, (id + 1) * D);
    if (scale !== 1) for (let i = 0; i < D; i++) r[i] *= scale;
    return r;
  });
}

/** logits = W x (+ b) for an unembedding W [V, D]. */
function unembed(x: Vec, W: RefTensor, b?: RefTensor): Vec {
  return linear(x, W, b);
}

// --- GPT-2 -----------------------------------------------------------------------------------

function gpt2Model(cfg: Config, w: Weights): RefModel {
  const D = cfg.n_embd as number;
  const H = cfg.n_head as number;
  const L = cfg.n_layer as number;
  const V = cfg.vocab_size as number;
  const I = (cfg.n_inner as number | null) ?? 4 * D;
  const P = cfg.n_positions as number;
  const eps = (cfg.layer_norm_epsilon as number) ?? 1e-5;
  const hd = D / H;
  const act = activation(cfg.activation_function ?? 'gelu_new');
  // The original checkpoint has bare names (wte.weight, h.0…); transformers-saved ones `transformer.`
  const pre = w.has('transformer.wte.weight') ? 'transformer.' : '';
  const wte = w.get(`${pre}wte.weight`, [V, D]);
  const wpe = w.get(`${pre}wpe.weight`, [P, D]);
  const tied = cfg.tie_word_embeddings ?? true;
  const lmHead = tied ? wte : w.get('lm_head.weight', [V, D]);
  const lnf = [w.get(`${pre}ln_f.weight`, [D]), w.get(`${pre}ln_f.bias`, [D])];
  const scaleWeights = cfg.scale_attn_weights ?? true;
  return {
    modelType: 'gpt2',
    numLayers: L,
    vocabSize: V,
    embed(ids) {
      if (ids.length > P) throw new Error(`sequence ${ids.length} longer than n_positions ${P}`);
      const rows = embedRows(wte, ids);
      return rows.map((r, p) => add(r, wpe.data.subarray(p * D, (p + 1) * D)));
    },
    block(l, h) {
      const b = `${pre}h.${l}`;
      const ln1w = w.get(`${b}.ln_1.weight`, [D]);
      const ln1b = w.get(`${b}.ln_1.bias`, [D]);
      const cAttn = w.get(`${b}.attn.c_attn.weight`, [D, 3 * D]);
      const cAttnB = w.get(`${b}.attn.c_attn.bias`, [3 * D]);
      const q: Rows = [];
      const k: Rows = [];
      const v: Rows = [];
      for (const x of h) {
        const qkv = conv1d(layerNorm(x, ln1w, ln1b, eps), cAttn, cAttnB);
        q.push(qkv.slice(0, D));
        k.push(qkv.slice(D, 2 * D));
        v.push(qkv.slice(2 * D, 3 * D));
      }
      let scale = scaleWeights ? 1 / Math.sqrt(hd) : 1;
      if (cfg.scale_attn_by_inverse_layer_idx) scale /= l + 1;
      const a = causalAttention(q, k, v, { H, KV: H, hd, scale });
      const cProj = w.get(`${b}.attn.c_proj.weight`, [D, D]);
      const cProjB = w.get(`${b}.attn.c_proj.bias`, [D]);
      const attn = h.map((x, i) => add(x, conv1d(a[i], cProj, cProjB)));
      const ln2w = w.get(`${b}.ln_2.weight`, [D]);
      const ln2b = w.get(`${b}.ln_2.bias`, [D]);
      const fc = w.get(`${b}.mlp.c_fc.weight`, [D, I]);
      const fcB = w.get(`${b}.mlp.c_fc.bias`, [I]);
      const pr = w.get(`${b}.mlp.c_proj.weight`, [I, D]);
      const prB = w.get(`${b}.mlp.c_proj.bias`, [D]);
      const out = attn.map((x) => add(x, conv1d(mapVec(conv1d(layerNorm(x, ln2w, ln2b, eps), fc, fcB), act), pr, prB)));
      return { attn, out };
    },
    head(x) {
      return unembed(layerNorm(x, lnf[0], lnf[1], eps), lmHead);
    },
  };
}

// --- Llama-shaped decoders (llama, mistral, qwen2, qwen3, mixtral, gemma, gemma2, olmo, phi3) ----

export function headDimOf(cfg: Config): number {
  return (cfg.head_dim as number | null | undefined) ?? cfg.hidden_size / cfg.num_attention_heads;
}

/** Rounds to the checkpoint's dtype (config torch_dtype / dtype), as `torch.tensor(x, dtype=…)` does. */
export function roundToDtype(x: number, dtype: string | undefined): number {
  const f = Math.fround(x);
  if (dtype === 'bfloat16') {
    const u = new Uint32Array(new Float32Array([f]).buffer)[0];
    const r = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16;
    return new Float32Array(new Uint32Array([r >>> 0]).buffer)[0];
  }
  if (dtype === 'float16') {
    // round to 11 significant bits (normal range is enough for √hidden)
    const e = Math.floor(Math.log2(Math.abs(f)));
    const q = 2 ** (e - 10);
    const n = f / q;
    const fl = Math.floor(n);
    const rem = n - fl;
    const k = rem > 0.5 || (rem === 0.5 && fl % 2 === 1) ? fl + 1 : fl;
    return k * q;
  }
  return f;
}

/**
 * Sliding window of layer l, or null.
 * - explicit `layer_types` wins (transformers ≥ 4.53 configs);
 * - mistral / mixtral / phi3: `sliding_window` on every layer when set;
 * - qwen2 / qwen3: only with use_sliding_window, and only layers ≥ max_window_layers;
 * - gemma2: even layers (0, 2, …) slide — `layer_types[i] = sliding if (i + 1) % 2` (older code:
 *   `is_sliding = not bool(layer_idx % 2)`), odd layers are global;
 * - llama, gemma, olmo: never.
 */
export function windowFor(cfg: Config, l: number): number | null {
  const mt = cfg.model_type as string;
  let sw = (cfg.sliding_window as number | null | undefined) ?? null;
  if (mt === 'qwen2' || mt === 'qwen3') sw = cfg.use_sliding_window ? sw : null;
  if (sw == null) return null;
  const lt = cfg.layer_types as string[] | undefined;
  if (lt) return lt[l] === 'sliding_attention' ? sw : null;
  switch (mt) {
    case 'mistral':
    case 'mixtral':
    case 'phi3':
      return sw;
    case 'qwen2':
    case 'qwen3':
      return l >= (cfg.max_window_layers ?? 28) ? sw : null;
    case 'gemma2':
      return l % 2 === 0 ? sw : null;
    default:
      return null;
  }
}

function decoderModel(cfg: Config, w: Weights): RefModel {
  const mt = cfg.model_type as string;
  const D = cfg.hidden_size as number;
  const H = cfg.num_attention_heads as number;
  const KV = (cfg.num_key_value_heads as number | undefined) ?? H;
  const L = cfg.num_hidden_layers as number;
  const V = cfg.vocab_size as number;
  const I = cfg.intermediate_size as number;
  const eps = (cfg.rms_norm_eps as number) ?? 1e-6;
  const hd = headDimOf(cfg);
  const gemma = mt === 'gemma' || mt === 'gemma2';
  // Gemma configs name it hidden_activation (hidden_act kept for BC)
  const act = activation((gemma ? cfg.hidden_activation ?? cfg.hidden_act : cfg.hidden_act) ?? 'silu');
  const qkvBias = mt === 'qwen2' || !!cfg.attention_bias;
  const oBias = !!cfg.attention_bias;
  const mlpBias = !!cfg.mlp_bias;
  const rp = ropeParameters(cfg);
  const partial = Number(rp.partial_rotary_factor ?? cfg.partial_rotary_factor ?? 1);
  const rotaryDim = Math.floor(hd * partial);
  const E = w.get('model.embed_tokens.weight', [V, D]);
  const tied = cfg.tie_word_embeddings ?? gemma;
  const lmHead = tied ? E : w.get('lm_head.weight', [V, D]);
  const P = cfg.max_position_embeddings as number;
  const clip = (cfg.clip_qkv as number | null | undefined) ?? null;
  // Gemma: hidden * torch.tensor(hidden_size ** 0.5, dtype=hidden.dtype) — the constant is rounded to
  // the model dtype (bf16: √2048 = 45.25 exact, √48 → 6.9375).
  const embScale = gemma ? roundToDtype(Math.sqrt(D), cfg.torch_dtype ?? cfg.dtype) : 1;
  const scale = mt === 'gemma2' ? (cfg.query_pre_attn_scalar as number) ** -0.5 : 1 / Math.sqrt(hd);
  const attnCap = mt === 'gemma2' ? ((cfg.attn_logit_softcapping as number | null) ?? null) : null;
  const finalCap = (cfg.final_logit_softcapping as number | null | undefined) ?? null;
  const norm = (x: Vec, name: string, n = D): Vec =>
    mt === 'olmo'
      ? layerNorm(x, null, null, 1e-5) // OlmoLayerNorm: F.layer_norm without weight/bias, eps 1e-5
      : rmsNorm(x, w.get(name, [n]), eps, gemma);
  const finalNorm = mt === 'olmo' ? null : w.get('model.norm.weight', [D]);
  const clamp = (x: Vec) => (clip == null ? x : mapVec(x, (v) => Math.min(clip, Math.max(-clip, v))));
  return {
    modelType: mt,
    numLayers: L,
    vocabSize: V,
    embed: (ids) => embedRows(E, ids, embScale),
    block(l, h) {
      const b = `model.layers.${l}`;
      const lin = (name: string, out: number, inp: number, bias: boolean) => {
        const W = w.get(`${b}.${name}.weight`, [out, inp]);
        const B = bias ? w.get(`${b}.${name}.bias`, [out]) : undefined;
        return (x: Vec) => linear(x, W, B);
      };
      let qkv: (x: Vec) => [Vec, Vec, Vec];
      if (mt === 'phi3') {
        // fused rows: [q (H·hd); k (KV·hd); v (KV·hd)]
        const f = lin('self_attn.qkv_proj', (H + 2 * KV) * hd, D, false);
        qkv = (x) => {
          const y = f(x);
          return [y.slice(0, H * hd), y.slice(H * hd, (H + KV) * hd), y.slice((H + KV) * hd)];
        };
      } else {
        const qp = lin('self_attn.q_proj', H * hd, D, qkvBias);
        const kp = lin('self_attn.k_proj', KV * hd, D, qkvBias);
        const vp = lin('self_attn.v_proj', KV * hd, D, qkvBias);
        qkv = (x) => [qp(x), kp(x), vp(x)];
      }
      const op = lin('self_attn.o_proj', D, H * hd, oBias);
      const qn = mt === 'qwen3' ? w.get(`${b}.self_attn.q_norm.weight`, [hd]) : null;
      const kn = mt === 'qwen3' ? w.get(`${b}.self_attn.k_norm.weight`, [hd]) : null;
      const headNorm = (x: Vec, n: number, wt: RefTensor) => {
        const out = new Float64Array(x.length);
        for (let i = 0; i < n; i++) out.set(rmsNorm(x.subarray(i * hd, (i + 1) * hd), wt, eps), i * hd);
        return out;
      };
      const rope = ropeInvFreq(rp, rotaryDim, {
        seqLen: h.length,
        maxPositions: P,
        originalMaxPositions: cfg.original_max_position_embeddings as number | undefined,
      });
      const q: Rows = [];
      const k: Rows = [];
      const v: Rows = [];
      h.forEach((x, p) => {
        let [qq, kk, vv] = qkv(norm(x, `${b}.input_layernorm.weight`));
        // olmo clamps each projection before rope; qwen3 RMS-normalises each head before rope
        [qq, kk, vv] = [clamp(qq), clamp(kk), clamp(vv)];
        if (qn && kn) [qq, kk] = [headNorm(qq, H, qn), headNorm(kk, KV, kn)];
        q.push(ropeHeads(qq, H, hd, p, rope, rotaryDim, false));
        k.push(ropeHeads(kk, KV, hd, p, rope, rotaryDim, false));
        v.push(vv);
      });
      const o = causalAttention(q, k, v, { H, KV, hd, scale, window: windowFor(cfg, l), softcap: attnCap });
      const attn = h.map((x, i) => {
        const a = op(o[i]);
        // gemma2 normalises the attention output before adding it (post_attention_layernorm)
        return add(x, mt === 'gemma2' ? norm(a, `${b}.post_attention_layernorm.weight`) : a);
      });
      let mlp: (x: Vec) => Vec;
      if (mt === 'mixtral') mlp = moe(cfg, w, b, D, I, act);
      else if (mt === 'phi3') {
        const gu = lin('mlp.gate_up_proj', 2 * I, D, false);
        const down = lin('mlp.down_proj', D, I, false);
        mlp = (a) => {
          const y = gu(a); // gate, up = chunk(2): gate rows first
          const m = new Float64Array(I);
          for (let i = 0; i < I; i++) m[i] = act(y[i]) * y[I + i];
          return down(m);
        };
      } else {
        const gate = lin('mlp.gate_proj', I, D, mlpBias);
        const up = lin('mlp.up_proj', I, D, mlpBias);
        const down = lin('mlp.down_proj', D, I, mlpBias);
        mlp = (a) => {
          const g = gate(a);
          const u = up(a);
          for (let i = 0; i < I; i++) g[i] = act(g[i]) * u[i];
          return down(g);
        };
      }
      const out = attn.map((x) => {
        if (mt === 'gemma2') {
          const m = mlp(norm(x, `${b}.pre_feedforward_layernorm.weight`));
          return add(x, norm(m, `${b}.post_feedforward_layernorm.weight`));
        }
        return add(x, mlp(norm(x, `${b}.post_attention_layernorm.weight`)));
      });
      return { attn, out };
    },
    head(x) {
      const n = finalNorm ? rmsNorm(x, finalNorm, eps, gemma) : layerNorm(x, null, null, 1e-5);
      const logits = unembed(n, lmHead);
      return finalCap ? mapVec(logits, (z) => Math.tanh(z / finalCap) * finalCap) : logits;
    },
  };
}

/**
 * Mixtral sparse MoE: router softmax over all experts (float), top-k (num_experts_per_tok), the
 * chosen weights renormalised to sum 1, experts w2(act(w1 x) · w3 x).
 */
function moe(cfg: Config, w: Weights, b: string, D: number, I: number, act: (x: number) => number): (x: Vec) => Vec {
  const nE = cfg.num_local_experts as number;
  const k = cfg.num_experts_per_tok as number;
  const gate = w.get(`${b}.block_sparse_moe.gate.weight`, [nE, D]);
  const ex = Array.from({ length: nE }, (_, e) => {
    const p = `${b}.block_sparse_moe.experts.${e}`;
    return [w.get(`${p}.w1.weight`, [I, D]), w.get(`${p}.w2.weight`, [D, I]), w.get(`${p}.w3.weight`, [I, D])];
  });
  return (x) => {
    const probs = mapVec(logSoftmax(linear(x, gate)), Math.exp);
    const order = Array.from({ length: nE }, (_, i) => i).sort((a, c) => probs[c] - probs[a] || a - c);
    const top = order.slice(0, k);
    const z = top.reduce((s, e) => s + probs[e], 0);
    const out = new Float64Array(D);
    for (const e of top) {
      const [w1, w2, w3] = ex[e];
      const g = linear(x, w1);
      const u = linear(x, w3);
      for (let i = 0; i < I; i++) g[i] = act(g[i]) * u[i];
      const y = linear(g, w2);
      const c = probs[e] / z;
      for (let d = 0; d < D; d++) out[d] += c * y[d];
    }
    return out;
  };
}

// --- parallel-residual families: gpt-j, gpt-neox (both residual modes), phi ----------------------
//
// "After attention" for a parallel block is the residual plus the attention branch only,
// h + attn(ln(h)): the MLP branch (computed from the same ln(h) or ln2(h)) is left out.

function gptjModel(cfg: Config, w: Weights): RefModel {
  const D = cfg.n_embd as number;
  const H = cfg.n_head as number;
  const L = cfg.n_layer as number;
  const V = cfg.vocab_size as number;
  const I = (cfg.n_inner as number | null) ?? 4 * D;
  const eps = (cfg.layer_norm_epsilon as number) ?? 1e-5;
  const hd = D / H;
  const rd = (cfg.rotary_dim as number | null) ?? hd;
  const act = activation(cfg.activation_function ?? 'gelu_new');
  // create_sinusoidal_positions: base 10000 is hard-coded in modeling_gptj
  const rope = ropeInvFreq({ rope_type: 'default', rope_theta: 10000 }, rd);
  const E = w.get('transformer.wte.weight', [V, D]);
  const tied = cfg.tie_word_embeddings ?? false;
  const lmW = tied ? E : w.get('lm_head.weight', [V, D]);
  const lmB = w.opt('lm_head.bias');
  const lnf = [w.get('transformer.ln_f.weight', [D]), w.get('transformer.ln_f.bias', [D])];
  return {
    modelType: 'gptj',
    numLayers: L,
    vocabSize: V,
    embed: (ids) => embedRows(E, ids),
    block(l, h) {
      const b = `transformer.h.${l}`;
      const ln = [w.get(`${b}.ln_1.weight`, [D]), w.get(`${b}.ln_1.bias`, [D])];
      const [Wq, Wk, Wv, Wo] = ['q_proj', 'k_proj', 'v_proj', 'out_proj'].map((n) => w.get(`${b}.attn.${n}.weight`, [D, D]));
      const fcIn = [w.get(`${b}.mlp.fc_in.weight`, [I, D]), w.get(`${b}.mlp.fc_in.bias`, [I])];
      const fcOut = [w.get(`${b}.mlp.fc_out.weight`, [D, I]), w.get(`${b}.mlp.fc_out.bias`, [D])];
      const a = h.map((x) => layerNorm(x, ln[0], ln[1], eps));
      const q = a.map((x, p) => ropeHeads(linear(x, Wq), H, hd, p, rope, rd, true));
      const k = a.map((x, p) => ropeHeads(linear(x, Wk), H, hd, p, rope, rd, true));
      const v = a.map((x) => linear(x, Wv));
      const o = causalAttention(q, k, v, { H, KV: H, hd, scale: 1 / Math.sqrt(hd) }).map((x) => linear(x, Wo));
      const attn = h.map((x, i) => add(x, o[i]));
      const out = attn.map((x, i) => add(x, linear(mapVec(linear(a[i], fcIn[0], fcIn[1]), act), fcOut[0], fcOut[1])));
      return { attn, out };
    },
    head: (x) => linear(layerNorm(x, lnf[0], lnf[1], eps), lmW, lmB),
  };
}

function neoxModel(cfg: Config, w: Weights): RefModel {
  const D = cfg.hidden_size as number;
  const H = cfg.num_attention_heads as number;
  const L = cfg.num_hidden_layers as number;
  const V = cfg.vocab_size as number;
  const I = cfg.intermediate_size as number;
  const eps = (cfg.layer_norm_eps as number) ?? 1e-5;
  const hd = D / H;
  const act = activation(cfg.hidden_act ?? 'gelu');
  const rp = cfg.rope_parameters as Config | undefined;
  // transformers ≥ 5 moves rotary_pct / rotary_emb_base into rope_parameters
  const pct = Number(rp?.partial_rotary_factor ?? cfg.partial_rotary_factor ?? cfg.rotary_pct ?? 1);
  const base = Number(rp?.rope_theta ?? cfg.rotary_emb_base ?? cfg.rope_theta ?? 10000);
  const rd = Math.floor(hd * pct);
  const rope = ropeInvFreq({ rope_type: 'default', rope_theta: base }, rd);
  const parallel = cfg.use_parallel_residual ?? true;
  const bias = cfg.attention_bias ?? true;
  const E = w.get('gpt_neox.embed_in.weight', [V, D]);
  const out = cfg.tie_word_embeddings ? E : w.get('embed_out.weight', [V, D]);
  const lnf = [w.get('gpt_neox.final_layer_norm.weight', [D]), w.get('gpt_neox.final_layer_norm.bias', [D])];
  return {
    modelType: 'gpt_neox',
    numLayers: L,
    vocabSize: V,
    embed: (ids) => embedRows(E, ids),
    block(l, h) {
      const b = `gpt_neox.layers.${l}`;
      const g = (n: string, s: number[]) => w.get(`${b}.${n}`, s);
      const ln1 = [g('input_layernorm.weight', [D]), g('input_layernorm.bias', [D])];
      const ln2 = [g('post_attention_layernorm.weight', [D]), g('post_attention_layernorm.bias', [D])];
      const Wqkv = g('attention.query_key_value.weight', [3 * D, D]);
      const Bqkv = bias ? g('attention.query_key_value.bias', [3 * D]) : undefined;
      const Wd = g('attention.dense.weight', [D, D]);
      const Bd = bias ? g('attention.dense.bias', [D]) : undefined;
      const up = [g('mlp.dense_h_to_4h.weight', [I, D]), g('mlp.dense_h_to_4h.bias', [I])];
      const down = [g('mlp.dense_4h_to_h.weight', [D, I]), g('mlp.dense_4h_to_h.bias', [D])];
      const q: Rows = [];
      const k: Rows = [];
      const v: Rows = [];
      h.forEach((x, p) => {
        // view(T, H, 3·hd): head i owns rows [i·3hd, (i+1)·3hd) as q | k | v
        const y = linear(layerNorm(x, ln1[0], ln1[1], eps), Wqkv, Bqkv);
        const [qq, kk, vv] = [new Float64Array(D), new Float64Array(D), new Float64Array(D)];
        for (let i = 0; i < H; i++) {
          qq.set(y.subarray(i * 3 * hd, i * 3 * hd + hd), i * hd);
          kk.set(y.subarray(i * 3 * hd + hd, i * 3 * hd + 2 * hd), i * hd);
          vv.set(y.subarray(i * 3 * hd + 2 * hd, (i + 1) * 3 * hd), i * hd);
        }
        q.push(ropeHeads(qq, H, hd, p, rope, rd, false));
        k.push(ropeHeads(kk, H, hd, p, rope, rd, false));
        v.push(vv);
      });
      const o = causalAttention(q, k, v, { H, KV: H, hd, scale: 1 / Math.sqrt(hd) }).map((x) => linear(x, Wd, Bd));
      const attn = h.map((x, i) => add(x, o[i]));
      const mlp = (x: Vec) => linear(mapVec(linear(layerNorm(x, ln2[0], ln2[1], eps), up[0], up[1]), act), down[0], down[1]);
      // parallel: x + attn(ln1(x)) + mlp(ln2(x)); sequential: h1 = x + attn(ln1(x)); h1 + mlp(ln2(h1))
      const res = parallel ? h.map((x, i) => add(attn[i], mlp(x))) : attn.map((x) => add(x, mlp(x)));
      return { attn, out: res };
    },
    head: (x) => linear(layerNorm(x, lnf[0], lnf[1], eps), out),
  };
}

function phiModel(cfg: Config, w: Weights): RefModel {
  const D = cfg.hidden_size as number;
  const H = cfg.num_attention_heads as number;
  const KV = (cfg.num_key_value_heads as number | undefined) ?? H;
  const L = cfg.num_hidden_layers as number;
  const V = cfg.vocab_size as number;
  const I = cfg.intermediate_size as number;
  const eps = (cfg.layer_norm_eps as number) ?? 1e-5;
  const hd = D / H;
  const act = activation(cfg.hidden_act ?? 'gelu_new');
  if (cfg.qk_layernorm) throw new Error('phi qk_layernorm not supported by the reference');
  const rp = ropeParameters(cfg);
  const rd = Math.floor(hd * Number(rp.partial_rotary_factor ?? cfg.partial_rotary_factor ?? 0.5));
  const rope = ropeInvFreq(rp, rd);
  const E = w.get('model.embed_tokens.weight', [V, D]);
  const lmW = cfg.tie_word_embeddings ? E : w.get('lm_head.weight', [V, D]);
  const lmB = w.opt('lm_head.bias');
  const lnf = [w.get('model.final_layernorm.weight', [D]), w.get('model.final_layernorm.bias', [D])];
  return {
    modelType: 'phi',
    numLayers: L,
    vocabSize: V,
    embed: (ids) => embedRows(E, ids),
    block(l, h) {
      const b = `model.layers.${l}`;
      const lin = (n: string, o: number, i: number) => {
        const W = w.get(`${b}.${n}.weight`, [o, i]);
        const B = w.get(`${b}.${n}.bias`, [o]);
        return (x: Vec) => linear(x, W, B);
      };
      const [qp, kp, vp] = [lin('self_attn.q_proj', H * hd, D), lin('self_attn.k_proj', KV * hd, D), lin('self_attn.v_proj', KV * hd, D)];
      const dense = lin('self_attn.dense', D, H * hd);
      const fc1 = lin('mlp.fc1', I, D);
      const fc2 = lin('mlp.fc2', D, I);
      const ln = [w.get(`${b}.input_layernorm.weight`, [D]), w.get(`${b}.input_layernorm.bias`, [D])];
      const a = h.map((x) => layerNorm(x, ln[0], ln[1], eps));
      const q = a.map((x, p) => ropeHeads(qp(x), H, hd, p, rope, rd, false));
      const k = a.map((x, p) => ropeHeads(kp(x), KV, hd, p, rope, rd, false));
      const v = a.map((x) => vp(x));
      const o = causalAttention(q, k, v, { H, KV, hd, scale: 1 / Math.sqrt(hd) }).map(dense);
      const attn = h.map((x, i) => add(x, o[i]));
      const out = attn.map((x, i) => add(x, fc2(mapVec(fc1(a[i]), act))));
      return { attn, out };
    },
    head: (x) => linear(layerNorm(x, lnf[0], lnf[1], eps), lmW, lmB),
  };
}

// --- AI2 hf_olmo (OLMoForCausalLM, model.transformer.*) ----------------------------------------

function hfOlmoModel(cfg: Config, w: Weights): RefModel {
  const D = cfg.d_model as number;
  const H = cfg.n_heads as number;
  const KV = (cfg.n_kv_heads as number | null) ?? (cfg.multi_query_attention ? 1 : H);
  const L = cfg.n_layers as number;
  const V = (cfg.embedding_size as number | null) ?? (cfg.vocab_size as number);
  const hidden = (cfg.mlp_hidden_size as number | null) ?? cfg.mlp_ratio * D;
  if (cfg.activation_type !== 'swiglu') throw new Error(`hf_olmo activation ${cfg.activation_type} not supported by the reference`);
  if (cfg.layer_norm_with_affine || cfg.layer_norm_type !== 'default' || cfg.include_bias || cfg.attention_layer_norm || cfg.alibi || !cfg.rope) {
    throw new Error('hf_olmo variant not supported by the reference (affine/rms norms, biases, qk norm, alibi)');
  }
  const I = hidden / 2; // SwiGLU halves ff_proj's output
  const hd = D / H;
  const clip = (cfg.clip_qkv as number | null) ?? null;
  const rope = ropeInvFreq({ rope_type: 'default', rope_theta: Number(cfg.rope_theta ?? 10000) }, hd);
  const E = w.get('model.transformer.wte.weight', [V, D]);
  const out = cfg.weight_tying ? E : w.get('model.transformer.ff_out.weight', [V, D]);
  const ln = (x: Vec) => layerNorm(x, null, null, 1e-5);
  return {
    modelType: 'hf_olmo',
    numLayers: L,
    vocabSize: V,
    embed: (ids) => embedRows(E, ids),
    block(l, h) {
      const b = `model.transformer.blocks.${l}`;
      const att = w.get(`${b}.att_proj.weight`, [D + 2 * KV * hd, D]);
      const ao = w.get(`${b}.attn_out.weight`, [D, D]);
      const ffp = w.get(`${b}.ff_proj.weight`, [hidden, D]);
      const ffo = w.get(`${b}.ff_out.weight`, [D, I]);
      const q: Rows = [];
      const k: Rows = [];
      const v: Rows = [];
      h.forEach((x, p) => {
        let y = linear(ln(x), att);
        if (clip != null) y = mapVec(y, (t) => Math.min(clip, Math.max(-clip, t)));
        q.push(ropeHeads(y.slice(0, D), H, hd, p, rope, hd, false));
        k.push(ropeHeads(y.slice(D, D + KV * hd), KV, hd, p, rope, hd, false));
        v.push(y.slice(D + KV * hd));
      });
      const o = causalAttention(q, k, v, { H, KV, hd, scale: 1 / Math.sqrt(hd) });
      const attn = h.map((x, i) => add(x, linear(o[i], ao)));
      const res = attn.map((x) => {
        const y = linear(ln(x), ffp);
        const m = new Float64Array(I);
        for (let i = 0; i < I; i++) m[i] = silu(y[I + i]) * y[i]; // x, gate = chunk(2); silu(gate) * x
        return add(x, linear(m, ffo));
      });
      return { attn, out: res };
    },
    head(x) {
      const logits = linear(ln(x), out);
      return cfg.scale_logits ? mapVec(logits, (z) => z / Math.sqrt(D)) : logits;
    },
  };
}

// --- registry --------------------------------------------------------------------------------

type Builder = (cfg: Config, w: Weights) => RefModel;

const BUILDERS: Record<string, Builder> = {
  gpt2: gpt2Model,
  llama: decoderModel,
  mistral: decoderModel,
  qwen2: decoderModel,
  qwen3: decoderModel,
  mixtral: decoderModel,
  gemma: decoderModel,
  gemma2: decoderModel,
  phi3: decoderModel,
  gptj: gptjModel,
  gpt_neox: neoxModel,
  phi: phiModel,
  hf_olmo: hfOlmoModel,
  // model_type "olmo" is both transformers' OlmoForCausalLM and AI2's hf_olmo OLMoForCausalLM
  olmo: (cfg, w) => (cfg.d_model !== undefined ? hfOlmoModel(cfg, w) : decoderModel(cfg, w)),
};

/** Loads a checkpoint directory into a reference model. */
export function loadReferenceModel(dir: string): RefModel {
  const cfg = loadConfig(dir);
  const build = BUILDERS[cfg.model_type as string];
  if (!build) throw new Error(`model_type ${cfg.model_type} not supported by the reference`);
  return build(cfg, new Weights(loadTensors(dir), dir));
}

// ---------------------------------------------------------------------------------------------
// Lens

export interface ReferenceLens {
  numLayers: number;
  vocabSize: number;
  T: number;
  /** logProbs[l][p] = Float64Array(V): log-softmax of the lens at block output l, position p */
  logProbs: Float64Array[][];
  /**
   * Same for the residual after the attention sub-layer of block l: h + attn(norm1(h)) for
   * sequential blocks, and for parallel-residual blocks (gpt-j, neox parallel, phi) the residual
   * plus the attention branch only, h + attn(ln(h)), without the MLP branch.
   */
  attnLogProbs: Float64Array[][];
  /** the model's real final next-token log-probs from the full forward (HF forward semantics), [p] */
  finalLogProbs: Float64Array[];
}

/** The HF forward: embed → all blocks → final norm → head, with nothing recorded in between. */
export function referenceForward(model: RefModel, ids: number[]): Float64Array[] {
  let h = model.embed(ids);
  for (let l = 0; l < model.numLayers; l++) h = model.block(l, h).out;
  return h.map((x) => logSoftmax(model.head(x)));
}

/**
 * Runs the blocks once and keeps the residuals; the three distribution sets are computed on first
 * access (the lens head over a 150k vocab dominates the cost, and many checks need only one set).
 */
export function referenceLensOf(model: RefModel, ids: number[], translator?: RefTranslator): ReferenceLens {
  if (ids.length === 0) throw new Error('empty sequence');
  const outs: Rows[] = [];
  const attns: Rows[] = [];
  let h = model.embed(ids);
  for (let l = 0; l < model.numLayers; l++) {
    const { attn, out } = model.block(l, h);
    attns.push(attn);
    outs.push(out);
    h = out;
  }
  // Both read points of layer l go through layer l's translator (lensgate's documented choice).
  const lens = (rows: Rows[]) => rows.map((layer, l) => layer.map((x) => logSoftmax(model.head(translator ? translator(l, x) : x))));
  const lazy = <T>(f: () => T) => {
    let v: T | undefined;
    return { enumerable: true, get: () => (v ??= f()) };
  };
  const result = { numLayers: model.numLayers, vocabSize: model.vocabSize, T: ids.length } as ReferenceLens;
  Object.defineProperties(result, {
    logProbs: lazy(() => lens(outs)),
    attnLogProbs: lazy(() => lens(attns)),
    finalLogProbs: lazy(() => referenceForward(model, ids)),
  });
  return result;
}

export function referenceLens(dir: string, ids: number[], translator?: RefTranslator): ReferenceLens {
  return referenceLensOf(loadReferenceModel(dir), ids, translator);
}

// ---------------------------------------------------------------------------------------------
// Lens translators (tuned lens, Jacobian lens), from the same numbers exported as safetensors.

/** Maps block l's output row to the row the final norm sees; identity where a lens has no translator. */
export type RefTranslator = (l: number, x: Vec) => Vec;

/**
 * tuned-lens (tuned_lens/nn/lenses.py, TunedLens.transform_hidden): h + Linear_i(h) with translator i
 * for hidden_states[i]; hidden_states[i] is the output of block i − 1, and the last block's output
 * (the model's own output) has none. Tensors "<i>.weight" [D, D] (torch Linear, out × in), "<i>.bias".
 */
export function tunedTranslator(file: string, numLayers: number): RefTranslator {
  const t = readSafetensorsFile(file);
  return (l, x) => {
    const i = l + 1; // block l's output is hidden_states[l + 1]
    if (i >= numLayers) return x;
    const W = t.get(`${i}.weight`);
    if (!W) throw new Error(`${file}: translator ${i} missing`);
    return add(x, linear(x, W, t.get(`${i}.bias`)));
  };
}

/**
 * Jacobian lens (anthropics/jacobian-lens): J[l] @ h for block l's output, J[l] [D, D] carrying it
 * into the last block's output basis; the last block's output is the target (identity).
 */
export function jacobianTranslator(file: string, numLayers: number): RefTranslator {
  const t = readSafetensorsFile(file);
  return (l, x) => {
    if (l === numLayers - 1 && !t.has(`J.${l}`)) return x;
    const J = t.get(`J.${l}`);
    // A layer the lens does not cover has no reading: NaN makes any comparison against it fail.
    if (!J) return new Float64Array(x.length).fill(NaN);
    return linear(x, J);
  };
}

/** Top-k of one distribution; probabilities exp(logp); ties broken by the lower id. */
export function referenceTopK(logProbs: Float64Array, k: number): { ids: number[]; probs: number[] } {
  const best: number[] = [];
  for (let i = 0; i < logProbs.length; i++) {
    const v = logProbs[i];
    if (best.length === k && v <= logProbs[best[k - 1]]) continue;
    let j = best.length;
    // strict '>' keeps an earlier (lower) id ahead of an equal later one
    while (j > 0 && v > logProbs[best[j - 1]]) j--;
    best.splice(j, 0, i);
    if (best.length > k) best.pop();
  }
  return { ids: best, probs: best.map((i) => Math.exp(logProbs[i])) };
}

/**
 * The lens stats of one read, from log-probs: entropy of p, KL(q ‖ p) with q the final distribution,
 * and how many tokens outrank q's top-1 under p.
 */
export function referenceStats(lp: Float64Array, lq: Float64Array): { entropy: number; kl: number; rank: number } {
  let entropy = 0;
  let kl = 0;
  let top = 0;
  for (let i = 0; i < lp.length; i++) {
    entropy -= Math.exp(lp[i]) * lp[i];
    kl += Math.exp(lq[i]) * (lq[i] - lp[i]);
    if (lq[i] > lq[top]) top = i;
  }
  return { entropy, kl, rank: lp.filter((x) => x > lp[top]).length };
}

// ---------------------------------------------------------------------------------------------
// Greedy generation

/**
 * transformers' generate(do_sample=False) written the slow, obviously-correct way: no cache — every
 * step reruns the whole sequence and appends the argmax of the last position's final distribution
 * (lowest id on ties). Writes `maxNewTokens` tokens, or stops right after one of `eos`.
 */
export function referenceGreedy(model: RefModel, ids: number[], maxNewTokens: number, eos: number[] = []): number[] {
  const seq = [...ids];
  for (let n = 0; n < maxNewTokens; n++) {
    let h = model.embed(seq);
    for (let l = 0; l < model.numLayers; l++) h = model.block(l, h).out;
    const next = referenceTopK(logSoftmax(model.head(h[h.length - 1])), 1).ids[0];
    seq.push(next);
    if (eos.includes(next)) break;
  }
  return seq.slice(ids.length);
}

// Random-weight checkpoints in real HF layout, big enough to measure (written once into bench/.work).
import { copyFileSync, existsSync, mkdirSync, openSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { safetensorsPrefix } from '../src/checkpoint/safetensors.js';

export const WORK = join(import.meta.dirname, '.work');

export interface Gpt2Shape {
  layers: number;
  hidden: number;
  heads: number;
  vocab: number;
  positions: number;
}

export const GPT2_SMALL: Gpt2Shape = { layers: 12, hidden: 768, heads: 12, vocab: 50257, positions: 1024 };

/** xorshift-based normal-ish values (sum of uniforms): fast enough for 100M+ floats. */
function fill(out: Float32Array, std: number, seed: number): void {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    let acc = 0;
    for (let j = 0; j < 3; j++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      acc += (s >>> 0) / 4294967296;
    }
    out[i] = (acc - 1.5) * 2 * std;
  }
}

export type BenchDtype = 'F32' | 'F16' | 'BF16';

/** float32 → 16-bit patterns (round to nearest even); enough precision handling for random weights. */
function to16(data: Float32Array, dtype: 'F16' | 'BF16'): Uint16Array {
  const u = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const b = u[i];
    if (dtype === 'BF16') {
      out[i] = ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
    } else {
      const sign = (b >>> 16) & 0x8000;
      const e = ((b >>> 23) & 0xff) - 112;
      // Random weights are |x| < 2 and rarely tiny: flush subnormals to zero, no overflow path needed.
      out[i] = e <= 0 ? sign : sign | (e << 10) | (((b & 0x7fffff) + 0x1000) >>> 13);
    }
  }
  return out;
}

/** Streams tensors into a safetensors file without holding them all in memory. */
function writeSafetensors(file: string, tensors: Array<{ name: string; shape: number[]; make: () => Float32Array }>, dtype: BenchDtype): void {
  const width = dtype === 'F32' ? 4 : 2;
  const prefix = safetensorsPrefix(
    tensors.map((t) => ({ name: t.name, dtype, shape: t.shape, byteLength: t.shape.reduce((a, d) => a * d, 1) * width })),
    { format: 'pt' },
  );
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, prefix);
    for (const t of tensors) {
      const f32 = t.make();
      const data = dtype === 'F32' ? f32 : to16(f32, dtype);
      writeSync(fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
  } finally {
    closeSync(fd);
  }
}

export function gpt2Checkpoint(shape: Gpt2Shape, dtype: BenchDtype = 'F32', name = `gpt2-${shape.layers}x${shape.hidden}-${shape.vocab}-${dtype}`): string {
  const dir = join(WORK, name);
  if (existsSync(join(dir, 'tokenizer_config.json'))) return dir; // written last: the checkpoint is complete
  mkdirSync(dir, { recursive: true });
  const { layers: L, hidden: D, heads, vocab: V, positions: P } = shape;
  const tensors: Array<{ name: string; shape: number[]; make: () => Float32Array }> = [];
  let seed = 1;
  const rand = (name: string, s: number[], std: number) => {
    const sd = seed++;
    tensors.push({ name, shape: s, make: () => { const a = new Float32Array(s.reduce((x, y) => x * y, 1)); fill(a, std, sd); return a; } });
  };
  const ones = (name: string, n: number) => tensors.push({ name, shape: [n], make: () => new Float32Array(n).fill(1) });
  const zeros = (name: string, n: number) => tensors.push({ name, shape: [n], make: () => new Float32Array(n) });
  rand('transformer.wte.weight', [V, D], 0.1);
  rand('transformer.wpe.weight', [P, D], 0.01);
  for (let l = 0; l < L; l++) {
    const p = `transformer.h.${l}`;
    ones(`${p}.ln_1.weight`, D); zeros(`${p}.ln_1.bias`, D);
    rand(`${p}.attn.c_attn.weight`, [D, 3 * D], 0.02); zeros(`${p}.attn.c_attn.bias`, 3 * D);
    rand(`${p}.attn.c_proj.weight`, [D, D], 0.02); zeros(`${p}.attn.c_proj.bias`, D);
    ones(`${p}.ln_2.weight`, D); zeros(`${p}.ln_2.bias`, D);
    rand(`${p}.mlp.c_fc.weight`, [D, 4 * D], 0.02); zeros(`${p}.mlp.c_fc.bias`, 4 * D);
    rand(`${p}.mlp.c_proj.weight`, [4 * D, D], 0.02); zeros(`${p}.mlp.c_proj.bias`, D);
  }
  ones('transformer.ln_f.weight', D); zeros('transformer.ln_f.bias', D);
  writeSafetensors(join(dir, 'model.safetensors'), tensors, dtype);
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], n_layer: L, n_embd: D, n_head: heads, n_positions: P,
      vocab_size: V, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new', tie_word_embeddings: true,
    }, null, 2),
  );
  const tk = join(import.meta.dirname, '..', 'node_modules', '@lenml', 'tokenizer-gpt2', 'models');
  copyFileSync(join(tk, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  copyFileSync(join(tk, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
  return dir;
}

/** A prompt of exactly n GPT-2 tokens (common words, one token each). */
export function promptOfTokens(n: number): string {
  const words = ['The', ' capital', ' of', ' France', ' is', ' Paris', ' and', ' the', ' river', ' is', ' long'];
  return Array.from({ length: n }, (_, i) => words[i % words.length]).join('');
}

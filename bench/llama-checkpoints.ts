// Random-weight Llama-3-shaped BF16 checkpoints in the hub's layout (config.json, sharded
// model-0000i-of-0000n.safetensors + model.safetensors.index.json, the real Llama-3 tokenizer.json),
// written streaming in 16 MB pieces so an 8B checkpoint never has to fit in memory.
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, renameSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { safetensorsPrefix } from '../src/checkpoint/safetensors.js';
import { WORK } from './checkpoints.js';

export interface LlamaShape {
  name: string;
  layers: number;
  hidden: number;
  intermediate: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  tied: boolean;
  /** Shards the hub splits the weights into (1: a single model.safetensors). */
  shards: number;
  ropeFactor: number;
}

export const LLAMA_1B: LlamaShape = {
  name: 'llama-3.2-1b-shape-bf16', layers: 16, hidden: 2048, intermediate: 8192, heads: 32, kvHeads: 8, vocab: 128256, tied: true, shards: 1, ropeFactor: 32,
};
export const LLAMA_8B: LlamaShape = {
  name: 'llama-3.1-8b-shape-bf16', layers: 32, hidden: 4096, intermediate: 14336, heads: 32, kvHeads: 8, vocab: 128256, tied: false, shards: 4, ropeFactor: 8,
};

interface TensorPlan {
  name: string;
  shape: number[];
  /** Uniform(−a, a) values with this standard deviation; 1 = a norm weight of ones. */
  std: number | 'ones';
}

function tensorsOf(s: LlamaShape): TensorPlan[] {
  const hd = s.hidden / s.heads;
  const t: TensorPlan[] = [{ name: 'model.embed_tokens.weight', shape: [s.vocab, s.hidden], std: 0.02 }];
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}`;
    t.push(
      { name: `${p}.input_layernorm.weight`, shape: [s.hidden], std: 'ones' },
      { name: `${p}.self_attn.q_proj.weight`, shape: [s.heads * hd, s.hidden], std: 0.02 },
      { name: `${p}.self_attn.k_proj.weight`, shape: [s.kvHeads * hd, s.hidden], std: 0.02 },
      { name: `${p}.self_attn.v_proj.weight`, shape: [s.kvHeads * hd, s.hidden], std: 0.02 },
      { name: `${p}.self_attn.o_proj.weight`, shape: [s.hidden, s.heads * hd], std: 0.02 },
      { name: `${p}.post_attention_layernorm.weight`, shape: [s.hidden], std: 'ones' },
      { name: `${p}.mlp.gate_proj.weight`, shape: [s.intermediate, s.hidden], std: 0.02 },
      { name: `${p}.mlp.up_proj.weight`, shape: [s.intermediate, s.hidden], std: 0.02 },
      { name: `${p}.mlp.down_proj.weight`, shape: [s.hidden, s.intermediate], std: 0.02 },
    );
  }
  t.push({ name: 'model.norm.weight', shape: [s.hidden], std: 'ones' });
  if (!s.tied) t.push({ name: 'lm_head.weight', shape: [s.vocab, s.hidden], std: 0.02 });
  return t;
}

const CHUNK = 8 * 2 ** 20; // elements per write

/** Streams BF16 values of one tensor: xorshift32 uniform, rounded to nearest even. */
function writeTensor(fd: number, t: TensorPlan, seed: number): void {
  const n = t.shape.reduce((a, d) => a * d, 1);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const a = t.std === 'ones' ? 0 : t.std * Math.sqrt(3);
  let s = seed >>> 0 || 1;
  for (let done = 0; done < n; done += CHUNK) {
    const m = Math.min(CHUNK, n - done);
    const out = new Uint16Array(m);
    if (t.std === 'ones') out.fill(0x3f80);
    else {
      for (let i = 0; i < m; i++) {
        s ^= s << 13;
        s ^= s >>> 17;
        s ^= s << 5;
        f[0] = ((s >>> 0) / 2147483648 - 1) * a;
        const b = u[0];
        out[i] = ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
      }
    }
    writeSync(fd, new Uint8Array(out.buffer));
  }
}

function writeShard(file: string, tensors: TensorPlan[], seeds: Map<string, number>): void {
  const prefix = safetensorsPrefix(
    tensors.map((t) => ({ name: t.name, dtype: 'BF16' as const, shape: t.shape, byteLength: t.shape.reduce((a, d) => a * d, 1) * 2 })),
    { format: 'pt' },
  );
  const tmp = `${file}.partial`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, prefix);
    for (const t of tensors) writeTensor(fd, t, seeds.get(t.name)!);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** Splits tensors into `n` consecutive shards of about equal bytes, as the hub's sharding does. */
function shardsOf(tensors: TensorPlan[], n: number): TensorPlan[][] {
  const bytes = (t: TensorPlan) => t.shape.reduce((a, d) => a * d, 1) * 2;
  const total = tensors.reduce((a, t) => a + bytes(t), 0);
  const out: TensorPlan[][] = [[]];
  let acc = 0;
  for (const t of tensors) {
    if (acc >= (total / n) * out.length && out.length < n) out.push([]);
    out[out.length - 1].push(t);
    acc += bytes(t);
  }
  return out;
}

/** Writes the checkpoint once (tokenizer_config.json last marks it complete); returns its folder. */
export function llamaCheckpoint(s: LlamaShape): string {
  const dir = join(WORK, s.name);
  if (existsSync(join(dir, 'tokenizer_config.json'))) return dir;
  mkdirSync(dir, { recursive: true });
  const tensors = tensorsOf(s);
  const seeds = new Map(tensors.map((t, i) => [t.name, 0x9e3779b9 ^ (i * 2654435761)]));
  if (s.shards === 1) {
    writeShard(join(dir, 'model.safetensors'), tensors, seeds);
  } else {
    const shards = shardsOf(tensors, s.shards);
    const weightMap: Record<string, string> = {};
    let total = 0;
    shards.forEach((group, i) => {
      const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
      if (!existsSync(join(dir, file))) writeShard(join(dir, file), group, seeds);
      for (const t of group) {
        weightMap[t.name] = file;
        total += t.shape.reduce((a, d) => a * d, 1) * 2;
      }
    });
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  }
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify(
      {
        architectures: ['LlamaForCausalLM'], model_type: 'llama', attention_bias: false, attention_dropout: 0, mlp_bias: false,
        bos_token_id: 128000, eos_token_id: 128001, hidden_act: 'silu', hidden_size: s.hidden, intermediate_size: s.intermediate,
        initializer_range: 0.02, max_position_embeddings: 131072, num_attention_heads: s.heads, num_hidden_layers: s.layers,
        num_key_value_heads: s.kvHeads, head_dim: s.hidden / s.heads, pretraining_tp: 1, rms_norm_eps: 1e-5,
        rope_scaling: { factor: s.ropeFactor, high_freq_factor: 4, low_freq_factor: 1, original_max_position_embeddings: 8192, rope_type: 'llama3' },
        rope_theta: 500000, tie_word_embeddings: s.tied, torch_dtype: 'bfloat16', use_cache: true, vocab_size: s.vocab,
      },
      null,
      2,
    ),
  );
  const tk = join(import.meta.dirname, '..', 'node_modules', '@lenml', 'tokenizer-llama3', 'models');
  copyFileSync(join(tk, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  copyFileSync(join(tk, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
  return dir;
}

/** Bytes of the checkpoint's weight files. */
export function weightBytes(dir: string, s: LlamaShape): number {
  if (s.shards === 1) return statSync(join(dir, 'model.safetensors')).size;
  let total = 0;
  for (let i = 1; i <= s.shards; i++) total += statSync(join(dir, `model-${String(i).padStart(5, '0')}-of-${String(s.shards).padStart(5, '0')}.safetensors`)).size;
  return total;
}

// GPU correctness check and benchmark (run by scripts/gpu/run.sh; works on CPU for dry runs).
//
//   node --import tsx scripts/gpu/gpu-check.ts correctness --fixtures DIR [--device cuda] [--json OUT.json]
//   node --import tsx scripts/gpu/gpu-check.ts bench [--device cuda] [--shape llama31-8b|small] [--dtype float16]
//        [--reps 20] [--tokenizer DIR] [--work DIR] [--out bench/results] [--correctness OUT.json]
//
// correctness: every tiny fixture on CPU float32 and on the device in float32 and float16, each
// against the float64 reference (test/helpers/reference.ts, independent of src/): max |Δp| over
// top-5 cells and trajectories ≤ 2e-3, and the same top-1 as CPU float32 unless the CPU
// probabilities are a near-tie (≤ 2e-3 apart).
// bench: writes a Llama-3.1-8B-shaped checkpoint with cheap pseudo-random fp16 weights (the values
// do not matter for timing, only that activations stay finite), then times the lens on it in-process
// (mode 1, mode 1 streamed, mode 2) and through a live gateway over HTTP.
import { execFileSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { type ComputeDtype, type Device, type LensModel, type LensResult, openModel } from '../../src/lens/index.js';
import { referenceLens } from '../../test/helpers/reference.js';
import { deviation, idsOf } from '../../test/lens/helpers.js';
import { LLAMA3_TOKENIZER_FIXTURE } from './fixtures-list.js';

const TOL = 2e-3;
const PROMPT = 'The capital of France is Paris, and the capital of Italy is';

const { positionals, values: args } = parseArgs({
  allowPositionals: true,
  options: {
    device: { type: 'string', default: 'cuda' },
    fixtures: { type: 'string', default: 'gpu-parts/fixtures' },
    json: { type: 'string' },
    shape: { type: 'string', default: 'llama31-8b' },
    dtype: { type: 'string', default: 'float16' },
    reps: { type: 'string', default: '20' },
    tokenizer: { type: 'string' },
    work: { type: 'string', default: '/tmp/lensgate-bench' },
    out: { type: 'string', default: 'bench/results' },
    correctness: { type: 'string' },
  },
});
const device = args.device as Device;

// ---------------------------------------------------------------------------------------------
// correctness

interface Row {
  fixture: string;
  run: string;
  device: string;
  computeType: string;
  maxProbError: number;
  top1Flips: string[];
  ok: boolean;
  error?: string;
}

function top1Flips(r: LensResult, base: LensResult): string[] {
  const out: string[] = [];
  base.topIndices.forEach((layer, li) =>
    layer.forEach((cell, p) => {
      const b = r.topIndices[li][p][0];
      if (b === cell[0]) return;
      const j = cell.indexOf(b);
      if (j < 0 || base.topProbs[li][p][0] - base.topProbs[li][p][j] > TOL) out.push(`L${base.layers[li]}p${p}:${b}≠${cell[0]}`);
    }),
  );
  return out;
}

async function correctness(): Promise<void> {
  const root = resolve(args.fixtures!);
  const names = readdirSync(root).filter((n) => existsSync(join(root, n, 'config.json'))).sort();
  if (!names.length) throw new Error(`no fixture checkpoints under ${root} (scripts/gpu/stage.sh makes them)`);
  const rows: Row[] = [];
  // The first run is the baseline the others' top-1 is compared with.
  const runs: Array<{ run: string; device: Device; dtype: ComputeDtype }> = [
    { run: 'cpu-float32', device: 'cpu', dtype: 'float32' },
    ...(device === 'cpu' ? [] : [{ run: `${device}-float32`, device, dtype: 'float32' as const }]),
    { run: `${device}-float16`, device, dtype: 'float16' },
  ];
  for (const name of names) {
    const dir = join(root, name);
    let base: LensResult | undefined;
    let ref: ReturnType<typeof referenceLens> | undefined;
    for (const spec of runs) {
      const row: Row = { fixture: name, run: spec.run, device: '', computeType: '', maxProbError: NaN, top1Flips: [], ok: false };
      let m: LensModel | undefined;
      try {
        m = await openModel(dir, { device: spec.device, dtype: spec.dtype });
        row.device = m.info.device;
        row.computeType = m.info.computeType;
        const r = await m.lens(PROMPT, { topK: 5, trackAcrossLayers: true, points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] });
        ref ??= referenceLens(dir, idsOf(r));
        base ??= r;
        const d = Math.max(
          deviation(r, ref.logProbs).maxProbError,
          deviation({ ...r.attention!, layers: r.layers }, ref.attnLogProbs).maxProbError,
        );
        row.maxProbError = d;
        row.top1Flips = top1Flips(r, base);
        row.ok = d <= TOL && row.top1Flips.length === 0 && row.device === (spec.device === 'cpu' ? 'cpu' : device);
      } catch (e) {
        row.error = (e as Error).message.split('\n')[0].slice(0, 300);
      } finally {
        await m?.close();
      }
      rows.push(row);
      console.log(
        `${name.padEnd(20)} ${spec.run.padEnd(14)} ${row.ok ? 'ok  ' : 'FAIL'} on ${row.device || '-'} ${row.computeType || '-'}` +
          `  max|Δp| ${Number.isNaN(row.maxProbError) ? '-' : row.maxProbError.toExponential(2)}` +
          `${row.top1Flips.length ? `  top-1 flips ${row.top1Flips.slice(0, 3).join(' ')}` : ''}${row.error ? `  ${row.error}` : ''}`,
      );
    }
  }
  if (args.json) writeFileSync(args.json, JSON.stringify({ device, tolerance: TOL, prompt: PROMPT, rows }, null, 2));
  const failed = rows.filter((r) => !r.ok).length;
  console.log(failed ? `correctness: ${failed} of ${rows.length} runs FAILED` : `correctness: all ${rows.length} runs within ${TOL}`);
  process.exitCode = failed ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// benchmark checkpoint

interface Shape {
  layers: number;
  hidden: number;
  mlp: number;
  heads: number;
  kvHeads: number;
  vocab: number;
}

const SHAPES: Record<string, Shape> = {
  // meta-llama/Llama-3.1-8B
  'llama31-8b': { layers: 32, hidden: 4096, mlp: 14336, heads: 32, kvHeads: 8, vocab: 128256 },
  // Dry runs on CPU: same vocabulary and tokenizer, small blocks.
  small: { layers: 4, hidden: 256, mlp: 896, heads: 8, kvHeads: 2, vocab: 128256 },
};

function llamaConfig(s: Shape): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: s.hidden,
    intermediate_size: s.mlp,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    head_dim: s.hidden / s.heads,
    vocab_size: s.vocab,
    max_position_embeddings: 131072,
    rms_norm_eps: 1e-5,
    rope_theta: 500000,
    rope_scaling: { factor: 8, high_freq_factor: 4, low_freq_factor: 1, original_max_position_embeddings: 8192, rope_type: 'llama3' },
    hidden_act: 'silu',
    tie_word_embeddings: false,
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: 128000,
    eos_token_id: 128001,
    torch_dtype: 'float16',
    transformers_version: '4.46.3',
  };
}

/**
 * 64 MiB of float16 values with random sign, exponent 2^-10…2^-6 and mantissa (|w| ≈ 0.001–0.03):
 * a xorshift fills it in ~0.1 s, and every tensor is written from it at a different offset.
 */
function weightPattern(): Buffer {
  const u32 = new Uint32Array(16 * 2 ** 20);
  let x = 0x9e3779b9;
  for (let i = 0; i < u32.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const h1 = ((x & 1) << 15) | ((5 + ((x >>> 1) % 5)) << 10) | ((x >>> 4) & 0x3ff);
    const h2 = ((x >>> 14) & 1) << 15 | ((5 + ((x >>> 15) % 5)) << 10) | ((x >>> 20) & 0x3ff);
    u32[i] = (h1 | (h2 << 16)) >>> 0;
  }
  return Buffer.from(u32.buffer);
}

/** HF-layout sharded safetensors (≈ 5 GB shards like the published checkpoint) + index + tokenizer. */
function writeBenchCheckpoint(dir: string, s: Shape, tokenizerDir: string): void {
  if (existsSync(join(dir, '.complete'))) return;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const t0 = performance.now();
  const tensors: Array<{ name: string; shape: number[]; ones?: boolean }> = [];
  const kv = (s.hidden / s.heads) * s.kvHeads;
  tensors.push({ name: 'model.embed_tokens.weight', shape: [s.vocab, s.hidden] });
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}`;
    tensors.push(
      { name: `${p}.input_layernorm.weight`, shape: [s.hidden], ones: true },
      { name: `${p}.self_attn.q_proj.weight`, shape: [s.hidden, s.hidden] },
      { name: `${p}.self_attn.k_proj.weight`, shape: [kv, s.hidden] },
      { name: `${p}.self_attn.v_proj.weight`, shape: [kv, s.hidden] },
      { name: `${p}.self_attn.o_proj.weight`, shape: [s.hidden, s.hidden] },
      { name: `${p}.post_attention_layernorm.weight`, shape: [s.hidden], ones: true },
      { name: `${p}.mlp.gate_proj.weight`, shape: [s.mlp, s.hidden] },
      { name: `${p}.mlp.up_proj.weight`, shape: [s.mlp, s.hidden] },
      { name: `${p}.mlp.down_proj.weight`, shape: [s.hidden, s.mlp] },
    );
  }
  tensors.push({ name: 'model.norm.weight', shape: [s.hidden], ones: true }, { name: 'lm_head.weight', shape: [s.vocab, s.hidden] });
  const bytes = (t: { shape: number[] }) => t.shape.reduce((a, d) => a * d, 2);
  const shardLimit = 5 * 2 ** 30;
  const shards: Array<typeof tensors> = [[]];
  let acc = 0;
  for (const t of tensors) {
    if (acc > 0 && acc + bytes(t) > shardLimit) {
      shards.push([]);
      acc = 0;
    }
    shards[shards.length - 1].push(t);
    acc += bytes(t);
  }
  const pattern = weightPattern();
  const ones = Buffer.alloc(s.hidden * 2);
  for (let i = 0; i < s.hidden; i++) ones.writeUInt16LE(0x3c00, i * 2);
  const weightMap: Record<string, string> = {};
  let total = 0;
  let salt = 0;
  shards.forEach((list, i) => {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
    const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
    let off = 0;
    for (const t of list) {
      header[t.name] = { dtype: 'F16', shape: t.shape, data_offsets: [off, off + bytes(t)] };
      off += bytes(t);
      weightMap[t.name] = file;
    }
    let json = JSON.stringify(header);
    json += ' '.repeat((8 - (json.length % 8)) % 8);
    const fd = openSync(join(dir, file), 'w');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    writeSync(fd, len);
    writeSync(fd, json);
    for (const t of list) {
      let left = bytes(t);
      if (t.ones) {
        writeSync(fd, ones);
        continue;
      }
      // Start each tensor somewhere else in the pattern (even offset: whole float16 values).
      let at = ((salt++ * 7_919_993) * 2) % pattern.length;
      while (left > 0) {
        const n = Math.min(left, pattern.length - at);
        writeSync(fd, pattern, at, n);
        left -= n;
        at = 0;
      }
    }
    closeSync(fd);
    total += off;
  });
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(llamaConfig(s), null, 2));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(tokenizerDir, f), join(dir, f));
  writeFileSync(join(dir, '.complete'), '');
  console.log(`wrote ${(total / 2 ** 30).toFixed(2)} GiB in ${shards.length} shard(s) to ${dir} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

// ---------------------------------------------------------------------------------------------
// benchmark

function nvidiaSmi(query: string, extra: string[] = []): string[][] | null {
  try {
    const out = execFileSync('nvidia-smi', [`--query-${query}`, '--format=csv,noheader,nounits', ...extra], { encoding: 'utf8', timeout: 20_000 });
    return out.trim().split('\n').filter(Boolean).map((l) => l.split(',').map((x) => x.trim()));
  } catch {
    return null;
  }
}

function gpuInfo(): { name: string; driver: string; totalMiB: number } | null {
  const r = nvidiaSmi('gpu=name,driver_version,memory.total');
  return r ? { name: r[0][0], driver: r[0][1], totalMiB: Number(r[0][2]) } : null;
}

/** MiB this process holds on the GPU (compute apps), else the whole GPU's used memory. */
function gpuMemoryMiB(): number | null {
  const apps = nvidiaSmi('compute-apps=pid,used_memory');
  const mine = apps?.find((a) => Number(a[0]) === process.pid);
  if (mine) return Number(mine[1]);
  const used = nvidiaSmi('gpu=memory.used');
  return used ? Number(used[0][0]) : null;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const WORDS = 'The quick brown fox jumps over the lazy dog while the capital of France is Paris and the capital of Italy is Rome so the answer is'.split(' ');

/** Prompts of exactly `n` tokens for this tokenizer, each starting at a different word (distinct requests). */
function promptsOf(model: LensModel, n: number, count: number): string[] {
  const out: string[] = [];
  for (let start = 0; out.length < count && start < 10 * count; start++) {
    let text = '';
    for (let i = 0; model.tokenize(text).length < n; i++) text += (i ? ' ' : '') + WORDS[(start + i) % WORDS.length];
    if (model.tokenize(text).length === n && !out.includes(text)) out.push(text);
  }
  if (!out.length) throw new Error(`could not build a ${n}-token prompt`);
  return out;
}

/** The same requests through a live gateway (HTTP POST /graphql): what a client waits for. */
async function viaGateway(model: LensModel, prompts: string[], reps: number): Promise<Array<{ mode: string; medianMs: number }>> {
  const { buildApp } = await import('../../src/server/app.js');
  const { ModelRegistry } = await import('../../src/server/models.js');
  const { MemoryResultStore } = await import('../../src/server/result-store.js');
  const { gatewayApi } = await import('../../resolvers/index.js');
  const registry = new ModelRegistry();
  registry.add(model);
  registry.markReady();
  const app = buildApp({ registry, api: gatewayApi({ registry, store: new MemoryResultStore() }), port: 0, host: '127.0.0.1', logging: false });
  const { url } = await app.start();
  const queries = {
    'mode 1 via HTTP': 'query($input: LensInput!) { lens(input: $input) { tokens { id } layers topIndices topProbs } }',
    'mode 2 via HTTP': 'query($input: LensInput!) { lens(input: $input) { tokens { id } layers topIndices topProbs tracked { tokenIds probs } } }',
  };
  const out: Array<{ mode: string; medianMs: number }> = [];
  try {
    for (const [mode, query] of Object.entries(queries)) {
      const times: number[] = [];
      for (let i = 0; i < reps + 3; i++) {
        const input = { model: model.info.id, prompt: prompts[i % prompts.length], topK: 5, ...(mode.startsWith('mode 2') ? { trackAcrossLayers: true } : {}) };
        const t = performance.now();
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables: { input } }) });
        const body = (await res.json()) as { errors?: unknown };
        if (body.errors) throw new Error(JSON.stringify(body.errors).slice(0, 300));
        if (i >= 3) times.push(performance.now() - t);
      }
      out.push({ mode, medianMs: median(times) });
      console.log(JSON.stringify(out[out.length - 1]));
    }
  } finally {
    await app.stop();
  }
  return out;
}

interface ModeResult {
  mode: string;
  medianMs: number;
  p90Ms: number;
  blocksMs: number;
  headMs: number;
  trackMs: number;
  firstLayerMs: number | null;
}

async function bench(): Promise<void> {
  const shape = SHAPES[args.shape!];
  if (!shape) throw new Error(`unknown shape ${args.shape} (${Object.keys(SHAPES).join(', ')})`);
  const dtype = args.dtype as ComputeDtype;
  const reps = Number(args.reps);
  const tokenizerDir = resolve(args.tokenizer ?? join(args.fixtures!, LLAMA3_TOKENIZER_FIXTURE));
  const dir = join(resolve(args.work!), args.shape!);
  writeBenchCheckpoint(dir, shape, tokenizerDir);

  const gpu = device === 'cpu' ? null : gpuInfo();
  const memBefore = device === 'cpu' ? null : gpuMemoryMiB();
  const tl = performance.now();
  const model = await openModel(dir, { device, dtype, id: `llama31-8b-shaped-${args.shape}` });
  const loadMs = performance.now() - tl;
  const memLoaded = device === 'cpu' ? null : gpuMemoryMiB();
  console.log(`opened on ${model.info.device} (${model.info.computeType}) in ${(loadMs / 1000).toFixed(1)} s${model.info.deviceNote ? ` — ${model.info.deviceNote}` : ''}`);
  const prompts = promptsOf(model, 20, 8);
  let n = 0;
  const next = () => prompts[n++ % prompts.length];
  const L = model.info.numLayers;

  const modes: Array<{ mode: string; run: () => Promise<{ r: LensResult; firstLayerMs: number | null; wallMs: number }> }> = [
    {
      mode: 'mode 1 (top-5, all layers)',
      run: async () => {
        const t = performance.now();
        const r = await model.lens(next(), { topK: 5 });
        return { r, firstLayerMs: null, wallMs: performance.now() - t };
      },
    },
    {
      mode: 'mode 1, streamed per layer',
      run: async () => {
        const t = performance.now();
        let first: number | null = null;
        const r = await model.lens(next(), { topK: 5, onLayer: () => (first ??= performance.now() - t) });
        return { r, firstLayerMs: first, wallMs: performance.now() - t };
      },
    },
    {
      mode: 'mode 2 (top-5 + trajectories)',
      run: async () => {
        const t = performance.now();
        const r = await model.lens(next(), { topK: 5, trackAcrossLayers: true });
        return { r, firstLayerMs: null, wallMs: performance.now() - t };
      },
    },
  ];
  const results: ModeResult[] = [];
  for (const m of modes) {
    for (let i = 0; i < 3; i++) await m.run();
    const walls: number[] = [];
    const blocks: number[] = [];
    const heads: number[] = [];
    const tracks: number[] = [];
    const firsts: number[] = [];
    for (let i = 0; i < reps; i++) {
      const { r, firstLayerMs, wallMs } = await m.run();
      if (r.layers.length !== L || r.tokens.length !== 20) throw new Error('unexpected result shape');
      walls.push(wallMs);
      blocks.push(r.timings.blocksMs);
      heads.push(r.timings.headMs);
      tracks.push(r.timings.trackMs);
      if (firstLayerMs !== null) firsts.push(firstLayerMs);
    }
    const sorted = [...walls].sort((a, b) => a - b);
    results.push({
      mode: m.mode,
      medianMs: median(walls),
      p90Ms: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.9))],
      blocksMs: median(blocks),
      headMs: median(heads),
      trackMs: median(tracks),
      firstLayerMs: firsts.length ? median(firsts) : null,
    });
    console.log(JSON.stringify(results[results.length - 1]));
  }
  let http: Array<{ mode: string; medianMs: number }> = [];
  let httpError = '';
  try {
    http = await viaGateway(model, prompts, reps);
  } catch (e) {
    httpError = (e as Error).message.split('\n')[0];
    console.log(`gateway timing failed: ${httpError}`);
  }
  const memPeak = device === 'cpu' ? null : gpuMemoryMiB();
  await model.close();

  const date = new Date().toISOString().slice(0, 10);
  const who = gpu ? gpu.name : `cpu-${cpus().length}core`;
  const slug = who.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
  mkdirSync(args.out!, { recursive: true });
  const file = join(args.out!, `gpu-${slug}-${date}.md`);
  const f = (x: number) => x.toFixed(x < 10 ? 2 : 1);
  const lines = [
    `# Logit lens on ${who} — Llama-3.1-8B-shaped checkpoint (${args.shape}), ${date}`,
    '',
    `Measured by \`scripts/gpu/run.sh\` (\`scripts/gpu/gpu-check.ts bench\`). Random float16 weights generated on the machine;`,
    `the shape, not the values, sets the cost. ${L} layers, hidden ${shape.hidden}, MLP ${shape.mlp}, ${shape.heads} heads / ${shape.kvHeads} kv heads,`,
    `vocab ${shape.vocab}. Prompt: 20 tokens; all ${L} layers; top-5; ${reps} timed requests per mode after 3 warm-ups; times are medians.`,
    '',
    `- device: ${model.info.device}${gpu ? ` — ${gpu.name}, driver ${gpu.driver}, ${gpu.totalMiB} MiB` : ` — ${cpus()[0]?.model ?? 'cpu'} ×${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`}`,
    `- compute type: ${model.info.computeType} (checkpoint ${model.info.dtype}); onnxruntime-node ${JSON.parse(readFileSync(join('node_modules', 'onnxruntime-node', 'package.json'), 'utf8')).version}; node ${process.version}`,
    `- model load (graphs + ${L + 1} sessions): ${(loadMs / 1000).toFixed(1)} s`,
    `- GPU memory: ${memLoaded === null ? 'n/a' : `${memLoaded} MiB after load${memBefore !== null ? ` (${memBefore} MiB before)` : ''}, ${memPeak} MiB after the runs (mode 2's gather graph holds a second copy of lm_head)`}`,
    '',
    '| mode | request (median) | p90 | blocks | per layer (blocks) | lens head | per layer (head) | head share | trajectories | time to first layer |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...results.map(
      (r) =>
        `| ${r.mode} | ${f(r.medianMs)} ms | ${f(r.p90Ms)} ms | ${f(r.blocksMs)} ms | ${f(r.blocksMs / L)} ms | ${f(r.headMs)} ms | ${f(r.headMs / L)} ms | ${((100 * r.headMs) / r.medianMs).toFixed(0)} % | ${f(r.trackMs)} ms | ${r.firstLayerMs === null ? '—' : `${f(r.firstLayerMs)} ms`} |`,
    ),
    '',
    'Request time is wall time around `model.lens()` in-process. "mode 1" reduces all layers after the last block in as',
    'few head calls as memory allows; "streamed" runs the head after every block (what subscriptions do), so its',
    'first-layer time is the latency a viewer sees. Eight distinct 20-token prompts are cycled.',
    '',
    `Server time per request through a live gateway (HTTP POST /graphql on 127.0.0.1, JSON included, median of ${reps}):`,
    ...(http.length ? http.map((h) => `- ${h.mode}: ${f(h.medianMs)} ms`) : [`- not measured: ${httpError}`]),
    '',
    'Goal from issue 6: ≤ 50 ms for 20 tokens on an H100.',
  ];
  if (args.correctness && existsSync(args.correctness)) {
    const c = JSON.parse(readFileSync(args.correctness, 'utf8')) as { tolerance: number; rows: Row[] };
    lines.push(
      '',
      `## Correctness on the tiny fixtures (max |Δp| vs the float64 reference, tolerance ${c.tolerance})`,
      '',
      '| fixture | run | on | compute | max abs Δp | top-1 vs CPU fp32 | |',
      '|---|---|---|---|---|---|---|',
      ...c.rows.map(
        (r) =>
          `| ${r.fixture} | ${r.run} | ${r.device || '—'} | ${r.computeType || '—'} | ${Number.isNaN(r.maxProbError) || r.maxProbError === null ? '—' : r.maxProbError.toExponential(2)} | ${r.top1Flips.length ? r.top1Flips.slice(0, 2).join(' ') : 'same'} | ${r.ok ? 'ok' : `**FAIL** ${r.error ?? ''}`} |`,
      ),
    );
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
  console.log(`wrote ${file}`);
}

const cmd = positionals[0];
if (cmd === 'correctness') await correctness();
else if (cmd === 'bench') await bench();
else {
  console.error('usage: gpu-check.ts correctness|bench [options] (see the header of scripts/gpu/gpu-check.ts)');
  process.exitCode = 2;
}

// npm run bench -- large [--only 1b|8b] [--tokens 20] [--lenses 10] [--quantize int8,int4] [--budgets 0,default] [--no-torch]
//
// Real-size shapes, random BF16 weights in the hub's layout (bench/llama-checkpoints.ts):
// Llama-3.2-1B (16 L, d 2048, tied, one file) and Llama-3.1-8B (32 L, d 4096, untied, 4 shards).
// Each shape loads in its own child process (clean RSS): time to ready, RSS at ready and after
// `--lenses` streamed lenses, per-request time streamed (and its first layer), the same request with
// one deferred head call, and the floor = FLOPs / the best GEMM rate ORT reaches here (prepacked,
// spinning on). PyTorch (Debian python3-torch, /usr/bin/python3) GEMM rates on the same shapes are
// measured side by side when it is installed. `--quantize` adds a row per mode and shape (blocks
// quantized with MatMulNBits): its first load (quantizing and writing the cache next to the
// checkpoint) runs in a child of its own, then the measured child loads from the cache. `--budgets`
// adds a row per memory budget (openModel's memoryBudget, as a fraction of the files, or `default`):
// 0 gives no float32 head rows at all (every head call widens the whole 16-bit unembedding), so
// `--budgets 0,default` measures a float32 head share side by side with none.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { GraphBuilder } from '../src/graph/onnx-builder.js';
import { HEAD_BYTES } from '../src/lens/engine.js';
import { openModel, type QuantizeMode } from '../src/lens/index.js';
import { planPrepacking } from '../src/lens/prepack.js';
import { ort } from '../src/runtime/sessions.js';
import { LLAMA_1B, LLAMA_8B, type LlamaShape, llamaCheckpoint, weightBytes } from './llama-checkpoints.js';

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    tokens: { type: 'string', default: '20' },
    lenses: { type: 'string', default: '10' },
    child: { type: 'string' },
    quantize: { type: 'string' },
    budgets: { type: 'string', default: 'default' },
    budget: { type: 'string' },
    'no-torch': { type: 'boolean', default: false },
  },
});
const T = Number(values.tokens);
const LENSES = Number(values.lenses);
const SHAPES: Record<string, LlamaShape> = { '1b': LLAMA_1B, '8b': LLAMA_8B };
const MODES = (values.child ? [] : (values.quantize ?? '').split(',').filter(Boolean)) as QuantizeMode[];
for (const m of MODES) if (m !== 'int8' && m !== 'int4') throw new Error(`--quantize takes int8 and/or int4 (got ${m})`);
const BUDGETS = values.budgets.split(',').filter(Boolean);
for (const b of BUDGETS) if (b !== 'default' && !(Number(b) >= 0)) throw new Error(`--budgets takes fractions of the files and/or "default" (got ${b})`);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** A Llama-3 prompt of exactly n tokens: <|begin_of_text|> then common one-token words. */
function prompt(n: number): string {
  const words = [' The', ' capital', ' of', ' France', ' is', ' Paris', ' and', ' the', ' river', ' is', ' long'];
  return Array.from({ length: n - 1 }, (_, i) => words[i % words.length]).join('').trimStart();
}

function flops(sh: LlamaShape, t: number): { blocks: number; head: number } {
  const D = sh.hidden;
  const kv = (sh.kvHeads * D) / sh.heads;
  const perToken = 2 * (D * D * 2 + D * kv * 2 + 3 * D * sh.intermediate) + 4 * t * D;
  return { blocks: sh.layers * t * perToken, head: sh.layers * t * 2 * D * sh.vocab };
}

/** ORT float32 MatMul rate, GFLOP/s: A [m, k] · B [k, n] with B constant; prepacked or not. */
async function ortRate(m: number, k: number, n: number, prepack: boolean): Promise<number> {
  const g = new GraphBuilder('gemm');
  const a = g.input('a', 'float', [m, k]);
  const b = g.embedded('b', [k, n], new Float32Array(k * n).fill(0.01));
  g.output(g.op('MatMul', [a, b]), 'c', 'float', [m, n]);
  const sess = await ort.InferenceSession.create(g.toBytes(), {
    graphOptimizationLevel: 'all',
    extra: { session: { disable_prepacking: prepack ? '0' : '1', intra_op: { allow_spinning: '1' } } },
  });
  const feeds = { a: new ort.Tensor('float32', new Float32Array(m * k).fill(0.01), [m, k]) };
  await sess.run(feeds);
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await sess.run(feeds);
    times.push(performance.now() - t0);
  }
  await sess.release();
  const rate = (2 * m * k * n) / (median(times) / 1000) / 1e9;
  process.stderr.write(`ORT MatMul [${m}×${k}]·[${k}×${n}] ${prepack ? 'prepacked' : 'not prepacked'}: ${rate.toFixed(1)} GFLOP/s\n`);
  return rate;
}

/** The same shapes through torch.matmul (float32 and bfloat16), or null without python3-torch. */
function torchRates(shapes: Array<[number, number, number]>): Array<{ f32: number; bf16: number }> | null {
  if (values['no-torch'] || !existsSync('/usr/bin/python3')) return null;
  const code = `
import json, sys, time, torch
torch.set_num_threads(${cpus().length})
out = []
for m, k, n in json.loads(sys.argv[1]):
    r = {}
    for name, dt in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(m, k).to(dt); b = torch.randn(n, k).to(dt)
        torch.matmul(a, b.t())
        ts = []
        for _ in range(5):
            t = time.perf_counter(); torch.matmul(a, b.t()); ts.append(time.perf_counter() - t)
        ts.sort(); r[name] = 2 * m * k * n / ts[2] / 1e9
    out.append(r)
print(json.dumps(out))
`;
  const p = spawnSync('/usr/bin/python3', ['-c', code, JSON.stringify(shapes)], { encoding: 'utf8', timeout: 600_000 });
  if (p.status !== 0) return null;
  return JSON.parse(p.stdout.trim().split('\n').pop()!);
}

interface ChildResult {
  shape: string;
  files: number;
  loadMs: number;
  rssReady: number;
  /** After the streamed lenses, and after the deferred one that follows them. */
  rssLenses: number;
  rssAfter: number;
  maxRss: number;
  /** Process CPU time (all threads) per streamed lens, median. */
  streamedCpuMs: number;
  streamedMs: number;
  firstLayerMs: number;
  oneHeadMs: number;
  oneHeadHeadMs: number;
  blocksMs: number;
  headCalls: number;
  tokens: number;
  /** Share of the unembedding's rows kept in float32 (the rest widened per call). */
  headFloat32: number;
}

/** Resident anonymous and file-backed memory (Linux), for the log. */
function rssParts(): string {
  try {
    const st = readFileSync('/proc/self/status', 'utf8');
    const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(st)?.[1] ?? 0) * 1024;
    return ` (anon ${gb(kb('RssAnon'))}, file ${gb(kb('RssFile'))})`;
  } catch {
    return '';
  }
}

/** Runs in the child: one shape, one model, then prints a JSON line. */
async function child(key: string): Promise<void> {
  const sh = SHAPES[key];
  const dir = llamaCheckpoint(sh);
  const t0 = performance.now();
  const quantize = values.quantize as QuantizeMode | undefined;
  const files = weightBytes(dir, sh);
  const memoryBudget = values.budget === undefined || values.budget === 'default' ? undefined : Number(values.budget) * files;
  const model = await openModel(dir, { device: 'cpu', id: key, quantize, memoryBudget });
  if (LENSES === 0) {
    // The quantizing first load: its time is all that is asked.
    process.stdout.write(`${JSON.stringify({ loadMs: performance.now() - t0 })}\n`);
    await model.close();
    return;
  }
  const loadMs = performance.now() - t0;
  const rssReady = process.memoryUsage().rss;
  const log = (what: string) => process.stderr.write(`[${key}] ${what}, RSS ${gb(process.memoryUsage().rss)}${rssParts()}\n`);
  log(`ready in ${s(loadMs)}`);
  const text = prompt(T);
  const tokens = model.tokenize(text).length;
  const streamed: number[] = [];
  const firsts: number[] = [];
  const blocks: number[] = [];
  const cpu: number[] = [];
  const cpuMs = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  for (let i = 0; i < LENSES; i++) {
    const cpu0 = cpuMs();
    const start = performance.now();
    let first = 0;
    const r = await model.lens(text, { topK: 5, onLayer: (e) => void (e.index === 0 && (first = performance.now() - start)) });
    streamed.push(performance.now() - start);
    cpu.push(cpuMs() - cpu0);
    firsts.push(first);
    blocks.push(r.timings.blocksMs);
    log(`lens ${i + 1}: ${s(streamed[i])} streamed (CPU ${s(cpu[i])}, first layer ${s(first)}, blocks ${s(r.timings.blocksMs)}, head ${s(r.timings.headMs)})`);
  }
  const rssLenses = process.memoryUsage().rss;
  const cpu1 = cpuMs();
  const t1 = performance.now();
  const one = await model.lens(text, { topK: 5 });
  const oneHeadMs = performance.now() - t1;
  log(`one head call: ${s(oneHeadMs)} (CPU ${s(cpuMs() - cpu1)}, head ${s(one.timings.headMs)})`);
  const rssAfter = process.memoryUsage().rss;
  await model.close();
  const res: ChildResult = {
    shape: key, files, loadMs, rssReady, rssLenses, rssAfter, streamedCpuMs: median(cpu), maxRss: process.resourceUsage().maxRSS * 1024,
    streamedMs: median(streamed), firstLayerMs: median(firsts), oneHeadMs, oneHeadHeadMs: one.timings.headMs,
    blocksMs: median(blocks), headCalls: Math.ceil((sh.layers * tokens) / Math.floor(HEAD_BYTES / (sh.vocab * 4))), tokens,
    headFloat32: planPrepacking({
      mode: 'auto', budget: memoryBudget, castPerCall: true, provider: 'cpu',
      headFloat32Bytes: sh.vocab * sh.hidden * 4, blocksFloat32Bytes: 0, weightBytes: files,
    }).headFloat32,
  };
  process.stdout.write(`${JSON.stringify(res)}\n`);
}

async function main(): Promise<void> {
  const keys = values.only ? [values.only] : ['1b', '8b'];
  const out: string[] = [];
  const load = () => loadavg().map((x) => x.toFixed(1)).join(' / ');
  out.push(`### npm run bench -- large — random BF16 checkpoints in hub layout, ${T}-token prompt, ${LENSES} streamed lenses each`);
  out.push(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, onnxruntime-node CPU EP; load average (1/5/15 min) at start: ${load()}`);
  out.push('');
  out.push('| checkpoint | blocks | files | load to ready | RSS at ready | RSS after the streamed lenses (÷ files) | and after a deferred one | peak RSS | lens streamed (first layer) | its CPU time | one head call: total (head) | floor | streamed ÷ floor | one head call ÷ floor |');
  out.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const rates: string[] = [];
  const run = (args: string[]) =>
    spawnSync(process.execPath, [...process.execArgv, process.argv[1], ...args, '--tokens', String(T)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 });
  for (const key of keys) {
    const sh = SHAPES[key];
    const tw = performance.now();
    const dir = llamaCheckpoint(sh);
    const writeMs = performance.now() - tw;
    if (writeMs > 1000) process.stderr.write(`wrote ${dir} in ${s(writeMs)}\n`);
    const name = `${sh.name} (${sh.layers} L, d ${sh.hidden}, V ${sh.vocab}${sh.tied ? ', tied' : `, ${sh.shards} shards`})`;
    let floorMs = 0;
    let flop = { blocks: 0, head: 0 };
    const runs: Array<{ mode?: QuantizeMode; budget?: string }> = [...BUDGETS.map((budget) => ({ budget })), ...MODES.map((mode) => ({ mode }))];
    for (const { mode, budget } of runs) {
      const q = mode ? ['--quantize', mode] : ['--budget', budget ?? 'default'];
      let firstLoad = '';
      if (mode) {
        const first = run(['--child', key, '--lenses', '0', ...q]);
        if (first.status === 0) firstLoad = ` (first: ${s((JSON.parse(first.stdout.trim().split('\n').pop()!) as { loadMs: number }).loadMs)}, quantizing)`;
      }
      const p = run(['--child', key, '--lenses', String(LENSES), ...q]);
      if (p.status !== 0) {
        out.push(`| ${name} | ${mode ?? `BF16, budget ${budget}`} | — | failed (exit ${p.status ?? p.signal}) | | | | | | | | | | |`);
        continue;
      }
      const r = JSON.parse(p.stdout.trim().split('\n').pop()!) as ChildResult;
      if (!floorMs) {
        flop = flops(sh, r.tokens);
        // GEMM shapes of this request: the head's [rows, D]·[D, V] per deferred call and the blocks' widest [T, D]·[D, F].
        const headRows = Math.min(sh.layers * r.tokens, Math.floor(HEAD_BYTES / (sh.vocab * 4)));
        const shapes: Array<[number, number, number]> = [[headRows, sh.hidden, sh.vocab], [r.tokens, sh.hidden, sh.intermediate]];
        const packed: number[] = [];
        const plain: number[] = [];
        for (const [m, k, n] of shapes) {
          packed.push(await ortRate(m, k, n, true));
          plain.push(await ortRate(m, k, n, false));
        }
        // The floor takes ORT's fastest configuration for each shape.
        const best = shapes.map((_, i) => Math.max(packed[i], plain[i]));
        floorMs = ((flop.head / best[0] + flop.blocks / best[1]) / 1e9) * 1000;
        const torch = torchRates(shapes);
        shapes.forEach(([m, k, n], i) => {
          const t = torch?.[i];
          rates.push(`| ${sh.name} | [${m}×${k}]·[${k}×${n}] | ${packed[i].toFixed(1)} | ${plain[i].toFixed(1)} | ${t ? t.f32.toFixed(1) : '—'} | ${t ? t.bf16.toFixed(1) : '—'} |`);
        });
      }
      out.push(
        `| ${name} | ${mode ?? `BF16, budget ${budget}: head ${(r.headFloat32 * 100).toFixed(0)} % float32`} | ${gb(r.files)} | ${s(r.loadMs)}${firstLoad} | ${gb(r.rssReady)} | ${gb(r.rssLenses)} (${(r.rssLenses / r.files).toFixed(2)}x) | ${gb(r.rssAfter)} (${(r.rssAfter / r.files).toFixed(2)}x) | ${gb(r.maxRss)} | ${s(r.streamedMs)} (${s(r.firstLayerMs)}) | ${s(r.streamedCpuMs)} | ${s(r.oneHeadMs)} (${s(r.oneHeadHeadMs)}) | ${s(floorMs)} | ${(r.streamedMs / floorMs).toFixed(1)}x | ${(r.oneHeadMs / floorMs).toFixed(1)}x |`,
      );
      out.push(`<!-- ${key} ${mode ?? 'BF16'}: ${r.tokens} tokens, blocks ${s(r.blocksMs)} per streamed request; FLOPs blocks ${(flop.blocks / 1e9).toFixed(0)} G, head ${(flop.head / 1e9).toFixed(0)} G -->`);
    }
  }
  out.push('');
  out.push(`load average at the end: ${load()}`);
  out.push('');
  out.push('GEMM rates, GFLOP/s (ORT: float32 MatMul with a constant weight, spinning on; PyTorch: torch.matmul, same thread count). The floor = FLOPs / the faster ORT column:');
  out.push('');
  out.push('| checkpoint | shape | ORT prepacked | ORT not prepacked | PyTorch float32 | PyTorch bfloat16 |');
  out.push('|---|---|---:|---:|---:|---:|');
  out.push(...rates);
  process.stdout.write(`${out.join('\n')}\n`);
}

if (values.child) await child(values.child);
else await main();

// npm run bench -- generate [--tokens 20] [--new 32] [--runs 3]
// GPT-2-small-shaped random checkpoint: writing N tokens with the lens at every position, with the
// KV cache (one new position per token) vs without it (a full lens pass over the whole sequence per
// written token, what a tool without a cache does). Both measured side by side in one process.
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { openModel } from '../src/lens/index.js';
import { GPT2_SMALL, gpt2Checkpoint, promptOfTokens } from './checkpoints.js';

const { values } = parseArgs({
  options: { tokens: { type: 'string', default: '20' }, new: { type: 'string', default: '32' }, runs: { type: 'string', default: '3' } },
});
const T = Number(values.tokens);
const N = Number(values.new);
const RUNS = Number(values.runs);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const model = await openModel(gpt2Checkpoint(GPT2_SMALL, 'F32'), { device: 'cpu' });
  const prompt = promptOfTokens(T);
  const promptLen = model.tokenize(prompt).length;
  const opts = { topK: 5 };
  await model.lens(prompt, { ...opts, generate: { maxNewTokens: 2 } });

  const cached: number[] = [];
  let written = 0;
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    const r = await model.lens(prompt, { ...opts, generate: { maxNewTokens: N } });
    cached.push(performance.now() - t);
    written = r.generation!.newTokens;
  }
  // Without a cache: one full pass (blocks + lens head at every position) per sequence length the
  // generation goes through, prompt + 1 … prompt + written tokens.
  const rerun: number[] = [];
  const prompts = Array.from({ length: written }, (_, i) => promptOfTokens(T + i + 1));
  for (let i = 0; i < RUNS; i++) {
    let total = 0;
    for (const p of prompts) {
      const t = performance.now();
      await model.lens(p, opts);
      total += performance.now() - t;
    }
    rerun.push(total);
  }
  await model.close();
  const c = median(cached);
  const r = median(rerun);
  console.log(`GPT-2 small shape (12 layers, d 768, V 50257), float32, CPU (${cpus().length}× ${cpus()[0]?.model ?? '?'})`);
  console.log(`prompt ${promptLen} tokens, ${written} written, median of ${RUNS}\n`);
  console.log('| | total ms | ms per written token |');
  console.log('|---|---:|---:|');
  console.log(`| KV cache (one position per token) | ${c.toFixed(0)} | ${(c / written).toFixed(1)} |`);
  console.log(`| no cache (whole sequence per token) | ${r.toFixed(0)} | ${(r / written).toFixed(1)} |`);
  console.log(`\nno cache / cache: ${(r / c).toFixed(2)}×`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

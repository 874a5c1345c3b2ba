// npm run bench -- memory [--against DIR] [--rounds 2] [--lenses 3] [--tokens 20]
//
// RSS of a process that runs lenses with stats and trajectories on the GPT-2-small shape (random
// float32 checkpoint, CPU): after opening the model, after each lens, and its peak (VmHWM), with the
// time of each lens. Every sample is a fresh process. `--against DIR` runs the same in another
// checkout (e.g. a worktree of an older commit, with its own node_modules) alternately with this
// one (A B A B …), so both see the same machine load.

import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { GPT2_SMALL, gpt2Checkpoint, promptOfTokens } from './checkpoints.js';

const { values } = parseArgs({
  options: {
    against: { type: 'string' },
    rounds: { type: 'string', default: '2' },
    lenses: { type: 'string', default: '3' },
    tokens: { type: 'string', default: '20' },
    child: { type: 'string' },
  },
});

interface Sample {
  openMb: number;
  afterMb: number[];
  hwmMb: number;
  lensMs: number[];
}

const mb = (b: number) => b / 2 ** 20;
const hwm = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) / 1024;

async function child(checkout: string): Promise<void> {
  const { openModel } = (await import(pathToFileURL(join(checkout, 'src/lens/index.ts')).href)) as typeof import('../src/lens/index.js');
  const model = await openModel(gpt2Checkpoint(GPT2_SMALL), { device: 'cpu' });
  const openMb = mb(process.memoryUsage().rss);
  const prompt = promptOfTokens(Number(values.tokens));
  const sample: Sample = { openMb, afterMb: [], hwmMb: 0, lensMs: [] };
  for (let i = 0; i < Number(values.lenses); i++) {
    const t = performance.now();
    await model.lens(prompt, { topK: 5, stats: true, trackAcrossLayers: true });
    sample.lensMs.push(performance.now() - t);
    sample.afterMb.push(mb(process.memoryUsage().rss));
  }
  sample.hwmMb = hwm();
  await model.close();
  process.stdout.write(JSON.stringify(sample));
}

function run(checkout: string): Sample {
  const self = fileURLToPath(import.meta.url);
  const tsx = join(dirname(self), '..', 'node_modules', '.bin', 'tsx');
  const out = execFileSync(tsx, [self, '--child', checkout, '--lenses', values.lenses!, '--tokens', values.tokens!], { maxBuffer: 1 << 20 });
  return JSON.parse(out.toString()) as Sample;
}

async function main(): Promise<void> {
  const here = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const checkouts = [...(values.against ? [resolve(values.against)] : []), here];
  gpt2Checkpoint(GPT2_SMALL); // written once, outside the samples
  const samples = new Map<string, Sample[]>(checkouts.map((c) => [c, []]));
  const load0 = loadavg()[0];
  for (let r = 0; r < Number(values.rounds); r++) {
    for (const c of checkouts) {
      const s = run(c);
      samples.get(c)!.push(s);
      console.error(`${c}: open ${s.openMb.toFixed(0)} MB, after ${s.afterMb.map((x) => x.toFixed(0)).join(' / ')} MB, peak ${s.hwmMb.toFixed(0)} MB, lens ${s.lensMs.map((x) => x.toFixed(0)).join(' / ')} ms`);
    }
  }
  const n = Number(values.lenses);
  console.log(`\n## RSS with stats + trajectories, GPT-2-small shape (F32, CPU), ${values.tokens}-token prompt, ${n} lenses per process`);
  console.log(`${cpus().length} × ${cpus()[0]?.model.trim()}; load ${load0.toFixed(1)} → ${loadavg()[0].toFixed(1)}; ${values.rounds} processes per checkout, alternating\n`);
  console.log(`| checkout | RSS after open | RSS after lens 1 / … / ${n} | peak (VmHWM) | time per lens (each process: lens 1 / … / ${n}) |`);
  console.log('|---|---:|---:|---:|---|');
  for (const c of checkouts) {
    const ss = samples.get(c)!;
    const f = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(' / ');
    console.log(
      `| ${c} | ${f(ss.map((s) => s.openMb))} MB | ${ss.map((s) => f(s.afterMb)).join('; ')} MB | ${f(ss.map((s) => s.hwmMb))} MB | ${ss.map((s) => f(s.lensMs)).join('; ')} ms |`,
    );
  }
}

if (values.child) await child(values.child);
else await main();

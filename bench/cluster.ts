// npm run bench -- cluster [--seconds 10] [--concurrency 16] [--max-workers 2]
// Requests per second on loopback, for the embedded default model on CPU: first one single-process
// gateway (no Redis; the baseline), then the distributed mode — one redis-server, one gateway and
// 1..N workers (separate processes). Distinct prompts, so the cache never answers. Prints the load
// average around each measurement: on a shared machine the other processes take cores too.
// Needs redis-server (Debian package) on PATH or at /usr/bin.

import { print } from 'graphql';
import { parseArgs } from 'node:util';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { LensDocument } from '../src/client/graphql.js';
import { startTestRedis } from '../test/helpers/redis.js';
import { spawnTsx, startServer, type Child } from '../test/server/spawn.js';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '10' }, concurrency: { type: 'string', default: '16' }, 'max-workers': { type: 'string', default: '2' } },
});
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);
const maxWorkers = Number(values['max-workers']);
const modelDir = fileURLToPath(new URL('../models/tiny-facts-gpt2', import.meta.url));

const query = print(LensDocument);
let n = 0;

async function measure(url: string): Promise<number> {
  let done = 0;
  const until = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query, variables: { input: { model: 'tiny', prompt: `The capital of France is number ${n++}` } } }),
        });
        const body = (await res.json()) as { errors?: unknown[] };
        if (body.errors) throw new Error(JSON.stringify(body.errors));
        done++;
      }
    }),
  );
  return done / seconds;
}

const rows: string[] = [];
const load = () => loadavg()[0].toFixed(1);
function row(label: string, rps: number, before: string, perWorker: number | null): void {
  rows.push(`| ${label} | ${rps.toFixed(1)} | ${perWorker === null ? '–' : perWorker.toFixed(1)} | ${before} → ${load()} |`);
  console.log(`${label}: ${rps.toFixed(1)} requests/s`);
}

// Baseline: one process that accepts clients and runs the model (npm start, no Redis).
{
  const single = await startServer(['--store', 'memory', '--model', `tiny=${modelDir}`]);
  try {
    await measure(single.url); // warm-up (prompts never repeat, so the cache never answers)
    const before = load();
    row('single process, no Redis', await measure(single.url), before, null);
  } finally {
    await single.kill('SIGKILL');
  }
}

const redis = await startTestRedis(0);
const children: Child[] = [];
const gw = await startServer(['--redis', redis.url]);
children.push(gw);
try {
  for (let w = 1; w <= maxWorkers; w++) {
    const worker = spawnTsx('src/cli/worker.ts', ['--redis', redis.url, '--device', 'cpu', '--id', `bench-${w}`, '--model', `tiny=${modelDir}`]);
    children.push(worker);
    await worker.waitFor(/ready as/);
    await new Promise((r) => setTimeout(r, 2500)); // the gateway sees the new worker's heartbeat
    if (w === 1) await measure(gw.url); // warm-up
    const before = load();
    const rps = await measure(gw.url);
    row(`Redis + 1 gateway + ${w} worker${w > 1 ? 's' : ''}`, rps, before, rps / w);
  }
} finally {
  await Promise.all(children.map((c) => c.kill('SIGKILL')));
  await redis.stop();
}
console.log(`\nmachine: ${cpus().length} × ${cpus()[0]?.model}; tiny-facts-gpt2 on CPU, ${concurrency} concurrent clients, ${seconds} s each\n`);
console.log('| setup | requests/s | per worker | load average (1 min) before → after |\n|---|---:|---:|---|\n' + rows.join('\n'));
process.exit(0);

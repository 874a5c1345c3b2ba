// npm run bench -- cluster [--seconds 10] [--concurrency 16] [--max-workers 2]
// Requests per second through the distributed mode on loopback: one redis-server, one gateway, and
// 1..N workers (separate processes) holding the embedded default model; distinct prompts so the
// cache never answers. Needs redis-server (Debian package) on PATH or at /usr/bin.

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

const redis = await startTestRedis(0);
const children: Child[] = [];
const gw = await startServer(['--redis', redis.url]);
children.push(gw);
const query = print(LensDocument);
let n = 0;

async function measure(): Promise<number> {
  let done = 0;
  const until = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const res = await fetch(gw.url, {
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
try {
  for (let w = 1; w <= maxWorkers; w++) {
    const worker = spawnTsx('src/cli/worker.ts', ['--redis', redis.url, '--device', 'cpu', '--id', `bench-${w}`, '--model', `tiny=${modelDir}`]);
    children.push(worker);
    await worker.waitFor(/ready as/);
    await new Promise((r) => setTimeout(r, 2500)); // the gateway sees the new worker's heartbeat
    const rps = await measure();
    rows.push(`| ${w} | ${rps.toFixed(1)} |`);
    console.log(`workers=${w}: ${rps.toFixed(1)} requests/s`);
  }
} finally {
  await Promise.all(children.map((c) => c.kill('SIGKILL')));
  await redis.stop();
}
console.log(`\nmachine: ${cpus().length} × ${cpus()[0]?.model}, load average ${loadavg()[0].toFixed(1)}; tiny-facts-gpt2 on CPU, ${concurrency} concurrent clients, ${seconds} s each\n`);
console.log('| workers | requests/s |\n|---|---|\n' + rows.join('\n'));
process.exit(0);

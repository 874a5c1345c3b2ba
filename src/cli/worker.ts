// npm run worker -- --model id=./dir[@cuda[,float16]] [--model ...] [--lens id=./tuned-lens-dir] --redis redis://host:6379
//                   [--device auto|cpu|cuda] [--concurrency 8] [--port 9400] [--id NAME]
//                   [--lock-ms 10000] [--stalled-ms 5000] [--heartbeat-ms 1000] [--store-max-mb 1024]
//                   [--result-ttl-s N] [--batch-window-ms 2]
// A model worker of the distributed mode: holds the given models and runs the lens jobs that any
// gateway on the same Redis queues for them. With --port it answers /health, /ready and /metrics.

import { createServer } from 'node:http';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { openModel } from '../lens/index.js';
import type { Device, LensModel } from '../lens/types.js';
import { ClusterWorker } from '../server/cluster/worker.js';
import { ping } from '../server/cluster/redis.js';
import { attachLenses, parseLensSpec, parseModelSpec, quantizeFlag } from './serve.js';
import { exitOnSignals } from './shutdown.js';

const USAGE = `usage: npm run worker -- --model id=./dir[@OPT[,OPT]] [--model ...] --redis redis://HOST:PORT
                 (per model OPT: auto|cpu|cuda, float32|float16, int8|int4) [--quantize int8|int4|none]
                 [--lens MODEL_ID=PATH ...] (a tuned-lens folder or a Jacobian lens file, as for npm start)
                 [--device auto|cpu|cuda] [--concurrency N] [--port N] [--id NAME]
                 [--lock-ms N] [--stalled-ms N] [--heartbeat-ms N] [--store-max-mb N] [--result-ttl-s N] [--batch-window-ms N]
                 (--result-ttl-s: results older than this expire; give the gateways the same value)`;

function fail(message: string): never {
  console.error(`lensgate worker: ${message}\n${USAGE}`);
  process.exit(2);
}

function positive(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!(n > 0)) fail(`--${name} must be a positive number (got ${value})`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', multiple: true },
      lens: { type: 'string', multiple: true },
      redis: { type: 'string', default: process.env.LENSGATE_REDIS },
      device: { type: 'string', default: 'auto' },
      quantize: { type: 'string' },
      concurrency: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string', default: '0.0.0.0' },
      id: { type: 'string' },
      'lock-ms': { type: 'string' },
      'stalled-ms': { type: 'string' },
      'heartbeat-ms': { type: 'string' },
      'store-max-mb': { type: 'string' },
      'result-ttl-s': { type: 'string' },
      'batch-window-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return void console.log(USAGE);
  if (!values.redis) fail('--redis redis://HOST:PORT is required (or LENSGATE_REDIS)');
  const quantize = quantizeFlag(values.quantize);
  const specs = (values.model ?? []).map(parseModelSpec).map((s) => ({ ...s, quantize: s.quantize ?? quantize }));
  if (specs.length === 0) fail('at least one --model id=DIR is required');
  attachLenses(specs, (values.lens ?? []).map(parseLensSpec));
  const device = values.device as Device;
  if (!['auto', 'cpu', 'cuda'].includes(device)) fail(`--device must be auto, cpu or cuda (got ${device})`);
  try {
    await ping(values.redis);
  } catch (err) {
    fail(`cannot reach Redis at ${values.redis}: ${err instanceof Error ? err.message : String(err)}`);
  }

  const models: Array<{ model: LensModel; dir: string }> = [];
  for (const spec of specs) {
    const t0 = performance.now();
    const model = await openModel(spec.dir, { id: spec.id, device: spec.device ?? device, dtype: spec.dtype, lenses: spec.lenses, quantize: spec.quantize });
    const i = model.info;
    console.log(
      `lensgate worker: model ${i.id} (${i.modelType}, ${i.numLayers} layers) on ${i.device} execution provider, ${i.computeType}, lenses ${i.lenses.map((l) => l.kind).join(', ')} [${Math.round(performance.now() - t0)} ms]`,
    );
    models.push({ model, dir: spec.dir });
  }
  const storeMb = positive('store-max-mb', values['store-max-mb']);
  const ttlS = positive('result-ttl-s', values['result-ttl-s']);
  const worker = await ClusterWorker.start({
    redisUrl: values.redis,
    models,
    id: values.id,
    concurrency: positive('concurrency', values.concurrency),
    lockDurationMs: positive('lock-ms', values['lock-ms']),
    stalledIntervalMs: positive('stalled-ms', values['stalled-ms']),
    heartbeatMs: positive('heartbeat-ms', values['heartbeat-ms']),
    storeMaxBytes: storeMb ? storeMb * 1024 ** 2 : undefined,
    resultTtlMs: ttlS ? ttlS * 1000 : undefined,
    scheduler: { batchWindowMs: positive('batch-window-ms', values['batch-window-ms']) },
  });

  let server: ReturnType<typeof createServer> | null = null;
  if (values.port !== undefined) {
    const metrics = new Registry();
    collectDefaultMetrics({ register: metrics });
    for (const [name, help, pick] of [
      ['lensgate_worker_jobs_running', 'Lens jobs this worker is running', 'running'],
      ['lensgate_worker_jobs_completed', 'Lens jobs this worker completed since it started', 'completed'],
      ['lensgate_worker_jobs_failed', 'Lens jobs this worker failed since it started', 'failed'],
    ] as const) {
      new Gauge({ name, help, registers: [metrics], collect() { this.set(worker.getStats()[pick]); } });
    }
    server = createServer((req, res) => {
      if (req.url === '/health' || req.url === '/ready') return void res.writeHead(200).end('ok');
      if (req.url === '/metrics') {
        return void metrics.metrics().then((text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text));
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => server!.listen(Number(values.port), values.host, r));
    const addr = server.address();
    console.log(`lensgate worker: /health and /metrics on port ${typeof addr === 'object' && addr ? addr.port : values.port}`);
  }
  console.log(`lensgate worker: ready as ${worker.id}`);

  exitOnSignals({
    label: 'lensgate worker',
    message: 'finishing running jobs, leaving the cluster',
    graceMs: 30_000,
    close: () =>
      worker
        .close()
        .then(() => Promise.allSettled(models.map((m) => m.model.close())))
        .then(() => server?.close()),
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  main().catch((err: unknown) => {
    console.error(`lensgate worker: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}

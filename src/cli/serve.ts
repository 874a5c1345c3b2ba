// npm start -- --model id=./dir[@cuda[,float16]] [--model id2=./dir2] [--port 4000] [--host 0.0.0.0] [--device auto|cpu|cuda]
//               [--cors-origin https://a.example,https://b.example] [--max-queue 64] [--batch-window-ms 2]
//               [--trusted-documents src/client/persisted-documents.json [--trusted-only]]
// With no --model, serves the embedded default model (models/tiny-facts-gpt2).

import { existsSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { openModel } from '../lens/index.js';
import type { Device } from '../lens/types.js';
import { buildApp } from '../server/app.js';
import { ModelRegistry, type ModelSpec } from '../server/models.js';
import { MemoryResultStore } from '../server/result-store.js';
import { gatewayApi } from '../../resolvers/index.js';
import { loadTrustedDocuments } from '../server/trusted-documents.js';
import { loadReporter } from './progress.js';

const CLIENT_DOCUMENTS = fileURLToPath(new URL('../client/persisted-documents.json', import.meta.url));
const DEFAULT_MODEL_DIR = fileURLToPath(new URL('../../models/tiny-facts-gpt2', import.meta.url));

const USAGE = `usage: npm start -- [--model id=./dir[@DEVICE[,DTYPE]] ...] [--port N] [--host H] [--device auto|cpu|cuda]
                 (per model: @auto|@cpu|@cuda, optionally ,float32|,float16 — e.g. llama=./Llama-3.1-8B@cuda,float16)
                 [--cors-origin ORIGIN[,ORIGIN...]] [--max-queue N] [--batch-window-ms N]
                 [--store-max-mb N (default 256)] [--result-ttl-s N (default 3600)]`;

function fail(message: string): never {
  console.error(`lensgate: ${message}\n${USAGE}`);
  process.exit(2);
}

export function parseModelSpec(arg: string): ModelSpec {
  // A trailing @device[,dtype] only when it names one, so directories containing "@" still work.
  const at = /@(auto|cpu|cuda)(?:,(float32|float16))?$/.exec(arg);
  const path = at ? arg.slice(0, at.index) : arg;
  const eq = path.indexOf('=');
  const [id, dir] = eq > 0 ? [path.slice(0, eq), path.slice(eq + 1)] : [basename(resolve(path)), path];
  if (!/^[A-Za-z0-9._-]+$/.test(id)) fail(`model id "${id}" may only contain letters, digits, ".", "_" and "-"`);
  if (!dir) fail(`--model ${arg}: missing directory`);
  const spec: ModelSpec = { id, dir: resolve(dir) };
  if (at) spec.device = at[1] as Device;
  if (at?.[2]) spec.dtype = at[2] as ModelSpec['dtype'];
  return spec;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', multiple: true },
      port: { type: 'string' },
      host: { type: 'string' },
      device: { type: 'string', default: 'auto' },
      'cors-origin': { type: 'string' },
      'max-queue': { type: 'string' },
      'batch-window-ms': { type: 'string' },
      'store-max-mb': { type: 'string' },
      'result-ttl-s': { type: 'string' },
      'trusted-documents': { type: 'string' },
      'trusted-only': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const device = values.device as Device;
  if (!['auto', 'cpu', 'cuda'].includes(device)) fail(`--device must be auto, cpu or cuda (got ${device})`);
  const port = Number(values.port ?? process.env.PORT ?? 4000);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`invalid port ${values.port ?? process.env.PORT}`);

  let specs = (values.model ?? []).map(parseModelSpec);
  if (specs.length === 0) {
    if (!existsSync(resolve(DEFAULT_MODEL_DIR, 'config.json'))) {
      fail(`no --model given and the default model is missing at ${DEFAULT_MODEL_DIR} (it is trained by training/)`);
    }
    specs = [{ id: 'tiny-facts-gpt2', dir: DEFAULT_MODEL_DIR }];
  }
  const ids = new Set<string>();
  for (const s of specs) {
    if (ids.has(s.id)) fail(`model id "${s.id}" is given twice`);
    ids.add(s.id);
  }

  const registry = new ModelRegistry({
    maxQueue: values['max-queue'] ? Number(values['max-queue']) : undefined,
    batchWindowMs: values['batch-window-ms'] ? Number(values['batch-window-ms']) : undefined,
  });
  const origins = values['cors-origin']?.split(',').map((o) => o.trim()).filter(Boolean);
  if (values['trusted-only'] && !values['trusted-documents']) fail('--trusted-only needs --trusted-documents FILE');
  const trustedDocuments = values['trusted-documents']
    ? { documents: loadTrustedDocuments(values['trusted-documents']), allowArbitraryDocuments: !values['trusted-only'] }
    : undefined;
  const positive = (flag: 'store-max-mb' | 'result-ttl-s'): number | undefined => {
    const raw = values[flag];
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0) fail(`--${flag} must be a positive number (got ${raw})`);
    return n;
  };
  const storeMb = positive('store-max-mb');
  const ttlS = positive('result-ttl-s');
  const store = new MemoryResultStore({
    maxBytes: storeMb === undefined ? undefined : Math.round(storeMb * 2 ** 20),
    ttlMs: ttlS === undefined ? undefined : ttlS * 1000,
  });
  const app = buildApp({
    registry,
    store,
    api: gatewayApi({ registry, store }),
    // The operations the bundled viewer and client send keep their names in /metrics.
    knownDocuments: loadTrustedDocuments(CLIENT_DOCUMENTS).values(),
    trustedDocuments,
    // GraphiQL sends arbitrary documents: pointless when only trusted ones run.
    graphiql: values['trusted-only'] ? false : undefined,
    port,
    host: values.host,
    cors: origins ? { origin: origins } : undefined,
    logging: 'info',
  });

  // Listen first so /health answers and /ready says 503 while the models load.
  const { url } = await app.start();
  console.log(`lensgate: viewer at ${new URL('/', url)}`);
  console.log(`lensgate: listening on ${url} (graphql-ws on the same path, SSE via Accept: text/event-stream)`);

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`lensgate: ${signal}: cancelling jobs, closing connections`);
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    app
      .stop()
      .then(() => registry.close())
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        console.error('lensgate: error during shutdown', err);
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  const states = await registry.load(
    specs,
    async (dir, opts) => {
      const t0 = performance.now();
      const progress = loadReporter(`model ${opts.id}`, process.stderr, 'lensgate: ');
      let ok = false;
      try {
        const model = await openModel(dir, {
          ...opts,
          onProgress: async (p) => {
            progress.onProgress(p);
            await opts.onProgress?.(p);
          },
        });
        ok = true;
        progress.done(true);
        const { id, modelType, numLayers, device: ep, deviceNote, computeType } = model.info;
        console.log(
          `lensgate: model ${id} (${modelType}, ${numLayers} layers) on ${ep} execution provider, ${computeType}` +
            `${deviceNote ? ` — ${deviceNote}` : ''} [${Math.round(performance.now() - t0)} ms]`,
        );
        return model;
      } finally {
        if (!ok) progress.done(false);
      }
    },
    device,
  );
  const failed = states.filter((s) => s.status === 'FAILED');
  for (const s of failed) console.error(`lensgate: model ${s.id} FAILED to load (${s.error?.code}); the other models keep serving`);
  if (stopping) return;
  if (failed.length === states.length) {
    console.error('lensgate: no model could be loaded; exiting');
    await app.stop();
    process.exit(1);
  }
  console.log(failed.length ? `lensgate: ready (${states.length - failed.length} of ${states.length} models)` : 'lensgate: ready');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  void main();
}

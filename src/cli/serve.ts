// npm start -- --model id=./dir[@cuda[,float16]] [--model id2=./dir2] [--lens id=./tuned-lens-dir] [--lens id=./x_jacobian_lens.pt]
//               [--port 4000] [--host 0.0.0.0] [--device auto|cpu|cuda]
//               [--cors-origin https://a.example,https://b.example] [--max-queue 64] [--batch-window-ms 2] [--max-new-tokens 64]
//               [--trusted-documents src/client/persisted-documents.json [--trusted-only]]
//               [--store ./lensgate.db | memory] [--store-max-mb N] [--result-ttl-s N]
//               [--redis redis://host:6379]  (distributed mode: see src/cli/worker.ts)
// With no --model, serves the embedded default model (models/tiny-facts-gpt2).

import { existsSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { modelContentHash, type DigestMemo } from '../checkpoint/content-hash.js';
import { openModel } from '../lens/index.js';
import type { Device, LensModel, QuantizeMode } from '../lens/types.js';
import { buildApp } from '../server/app.js';
import { ApiKeys } from '../server/api-keys.js';
import { ModelRegistry, type ModelSpec } from '../server/models.js';
import { ClusterGateway } from '../server/cluster/gateway.js';
import { ping } from '../server/cluster/redis.js';
import { ClusterWorker } from '../server/cluster/worker.js';
import { MemoryResultStore, type ResultStore } from '../server/result-store.js';
import { SqliteResultStore } from '../server/sqlite-store.js';
import { gatewayApi } from '../../resolvers/index.js';
import { loadTrustedDocuments } from '../server/trusted-documents.js';
import { loadReporter } from './progress.js';
import { exitOnSignals } from './shutdown.js';

const CLIENT_DOCUMENTS = fileURLToPath(new URL('../client/persisted-documents.json', import.meta.url));
const DEFAULT_MODEL_DIR = fileURLToPath(new URL('../../models/tiny-facts-gpt2', import.meta.url));
/** The default model's own lenses (fitted by training/fit_lenses.py). */
const DEFAULT_LENSES = {
  tuned: resolve(DEFAULT_MODEL_DIR, 'lenses', 'tuned'),
  jacobian: resolve(DEFAULT_MODEL_DIR, 'lenses', 'tiny-facts-gpt2_jacobian_lens.pt'),
};

const USAGE = `usage: npm start -- [--model id=./dir[@OPT[,OPT]] ...] [--port N] [--host H] [--device auto|cpu|cuda]
                 (per model OPT: auto|cpu|cuda, float32|float16, int8|int4 — e.g. llama=./Llama-3.1-8B@cuda,float16
                 or llama=./Llama-3.1-8B@int4)
                 [--quantize int8|int4|none] (weight-only quantization of the blocks on CPU, for models that name none)
                 [--lens MODEL_ID=PATH ...]  (a tuned-lens folder or a Jacobian lens file; MODEL_ID:tuned=PATH or
                                              MODEL_ID:jacobian=PATH to name the kind)
                 [--cors-origin ORIGIN[,ORIGIN...]] [--max-queue N] [--batch-window-ms N] [--no-compress-streams]
                 [--max-connections-per-address N] [--max-connections N] (open graphql-ws sockets and SSE streams
                 together, per client address and in all; default 32 and 1024)
                 [--store FILE|memory] (results and the cache; default ./lensgate.db) [--store-max-mb N]
                 (default 1024 for a file or Redis, 256 in memory) [--result-ttl-s N] (results older than this
                 are RESULT_EXPIRED; default: kept until the size budget evicts them, 3600 in memory)
                 [--redis redis://HOST:PORT] (distributed mode: results in Redis, jobs to workers; --model also runs a worker here)
                 [--max-new-tokens N]   (most tokens one request may generate; default 64)
                 [--api-keys FILE]   (JSON { "keys": [{ "name", "key" | "sha256", "admin", "requestsPerMinute" }] }: keys required, per-key rate limits, results private to their key; with --redis too)`;

function fail(message: string): never {
  console.error(`lensgate: ${message}\n${USAGE}`);
  process.exit(2);
}

const MODEL_OPTION = '(?:auto|cpu|cuda|float32|float16|int8|int4)';

/**
 * `id=DIR[@OPT[,OPT…]]`: OPT is a device (auto|cpu|cuda), a compute type (float32|float16) or a
 * quantization (int8|int4), each at most once. The @ list counts only when every entry is one of
 * these, so directories containing "@" still work.
 */
export function parseModelSpec(arg: string): ModelSpec {
  const at = new RegExp(`@(${MODEL_OPTION}(?:,${MODEL_OPTION})*)$`).exec(arg);
  const path = at ? arg.slice(0, at.index) : arg;
  const eq = path.indexOf('=');
  const [id, dir] = eq > 0 ? [path.slice(0, eq), path.slice(eq + 1)] : [basename(resolve(path)), path];
  if (!/^[A-Za-z0-9._-]+$/.test(id)) fail(`model id "${id}" may only contain letters, digits, ".", "_" and "-"`);
  if (!dir) fail(`--model ${arg}: missing directory`);
  const spec: ModelSpec = { id, dir: resolve(dir) };
  for (const opt of at ? at[1].split(',') : []) {
    const kind = ['auto', 'cpu', 'cuda'].includes(opt) ? 'device' : opt.startsWith('float') ? 'dtype' : 'quantize';
    if (spec[kind] !== undefined) fail(`--model ${arg}: two ${kind} options`);
    (spec as unknown as Record<string, string>)[kind] = opt;
  }
  return spec;
}

/** --quantize for every model that does not name its own. */
export function quantizeFlag(value: string | undefined): QuantizeMode | undefined {
  if (value === undefined || value === 'none') return undefined;
  if (value !== 'int8' && value !== 'int4') fail(`--quantize must be int8, int4 or none (got ${value})`);
  return value;
}

export interface LensSpec {
  model: string;
  kind: 'tuned' | 'jacobian';
  path: string;
}

/** `id=PATH` (kind from the path: a folder is a tuned lens, a file a Jacobian lens) or `id:tuned=PATH` / `id:jacobian=PATH`. */
export function parseLensSpec(arg: string): LensSpec {
  const m = /^([A-Za-z0-9._-]+)(?::(tuned|jacobian))?=(.+)$/.exec(arg);
  if (!m) fail(`--lens ${arg}: expected MODEL_ID=PATH, MODEL_ID:tuned=PATH or MODEL_ID:jacobian=PATH`);
  const path = resolve(m[3]);
  let kind = m[2] as LensSpec['kind'] | undefined;
  if (!kind) {
    if (!existsSync(path)) fail(`--lens ${arg}: ${path} does not exist`);
    kind = statSync(path).isDirectory() ? 'tuned' : 'jacobian';
  }
  return { model: m[1], kind, path };
}

/** Attaches --lens specs to their models; a lens for an unknown model or a kind given twice is an error. */
export function attachLenses(specs: ModelSpec[], lenses: LensSpec[]): void {
  for (const l of lenses) {
    const spec = specs.find((s) => s.id === l.model);
    if (!spec) fail(`--lens ${l.model}=…: no --model with id "${l.model}" (models: ${specs.map((s) => s.id).join(', ')})`);
    spec.lenses ??= {};
    if (spec.lenses[l.kind]) fail(`--lens: model "${l.model}" is given two ${l.kind} lenses`);
    spec.lenses[l.kind] = l.path;
  }
}

function positiveInteger(flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) fail(`--${flag} must be an integer ≥ 1 (got ${raw})`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', multiple: true },
      lens: { type: 'string', multiple: true },
      port: { type: 'string' },
      host: { type: 'string' },
      device: { type: 'string', default: 'auto' },
      quantize: { type: 'string' },
      'cors-origin': { type: 'string' },
      'max-queue': { type: 'string' },
      'max-connections-per-address': { type: 'string' },
      'max-connections': { type: 'string' },
      'batch-window-ms': { type: 'string' },
      'max-new-tokens': { type: 'string' },
      'store-max-mb': { type: 'string' },
      'result-ttl-s': { type: 'string' },
      'trusted-documents': { type: 'string' },
      'api-keys': { type: 'string' },
      'trusted-only': { type: 'boolean', default: false },
      // Streams are compressed when the client offers it; this turns that off (SSE identity, no deflate).
      'no-compress-streams': { type: 'boolean', default: false },
      // The old opt-in switch, from when streams were not compressed by default: still accepted.
      'compress-streams': { type: 'boolean', default: false },
      store: { type: 'string', default: process.env.LENSGATE_STORE ?? './lensgate.db' },
      redis: { type: 'string', default: process.env.LENSGATE_REDIS },
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
  const connectionCaps = {
    maxConnectionsPerAddress: positiveInteger('max-connections-per-address', values['max-connections-per-address']),
    maxConnections: positiveInteger('max-connections', values['max-connections']),
  };
  let apiKeys: ApiKeys | undefined;
  try {
    apiKeys = values['api-keys'] ? ApiKeys.load(values['api-keys']) : undefined;
  } catch (err) {
    fail(`--api-keys: ${err instanceof Error ? err.message : String(err)}`);
  }

  const maxNewTokens = values['max-new-tokens'] === undefined ? undefined : Number(values['max-new-tokens']);
  if (maxNewTokens !== undefined && !(Number.isInteger(maxNewTokens) && maxNewTokens >= 0)) {
    fail(`--max-new-tokens must be an integer ≥ 0 (0 turns generation off), got ${values['max-new-tokens']}`);
  }

  const quantize = quantizeFlag(values.quantize);
  let specs = (values.model ?? []).map(parseModelSpec).map((s) => ({ ...s, quantize: s.quantize ?? quantize }));
  if (values.redis) return serveCluster(values.redis, specs, device, port, { ...values, apiKeys, connectionCaps });
  if (specs.length === 0) {
    if (!existsSync(resolve(DEFAULT_MODEL_DIR, 'config.json'))) {
      fail(`no --model given and the default model is missing at ${DEFAULT_MODEL_DIR} (it is trained by training/)`);
    }
    specs = [{ id: 'tiny-facts-gpt2', dir: DEFAULT_MODEL_DIR, quantize }];
    const own = Object.entries(DEFAULT_LENSES).filter(([, p]) => existsSync(p));
    if (own.length && !values.lens?.length) specs[0].lenses = Object.fromEntries(own);
  }
  const ids = new Set<string>();
  for (const s of specs) {
    if (ids.has(s.id)) fail(`model id "${s.id}" is given twice`);
    ids.add(s.id);
  }
  attachLenses(specs, (values.lens ?? []).map(parseLensSpec));

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
  let store: ResultStore;
  try {
    store =
      values.store === 'memory'
        ? new MemoryResultStore({
            maxBytes: storeMb === undefined ? undefined : Math.round(storeMb * 2 ** 20),
            ttlMs: ttlS === undefined ? undefined : ttlS * 1000,
          })
        : new SqliteResultStore(values.store!, { maxBytes: Math.round((storeMb ?? 1024) * 2 ** 20), ttlMs: ttlS === undefined ? undefined : ttlS * 1000 });
  } catch (err) {
    fail(`could not open the result store: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (store instanceof SqliteResultStore) {
    console.log(`lensgate: results stored in ${store.file} (up to ${storeMb ?? 1024} MB${ttlS === undefined ? '' : `, each kept ${ttlS} s`})`);
  }
  const memo: DigestMemo | undefined = store instanceof SqliteResultStore ? store : undefined;
  const app = buildApp({
    registry,
    store,
    api: gatewayApi({ registry, store, limits: maxNewTokens === undefined ? undefined : { maxNewTokens } }),
    // The operations the bundled viewer and client send keep their names in /metrics.
    knownDocuments: loadTrustedDocuments(CLIENT_DOCUMENTS).values(),
    trustedDocuments,
    // GraphiQL sends arbitrary documents: pointless when only trusted ones run.
    graphiql: values['trusted-only'] ? false : undefined,
    port,
    host: values.host,
    cors: origins ? { origin: origins } : undefined,
    streamCompression: !values['no-compress-streams'],
    ...connectionCaps,
    apiKeys,
    logging: 'info',
  });

  // Listen first so /health answers and /ready says 503 while the models load.
  const { url } = await app.start();
  console.log(`lensgate: viewer at ${new URL('/', url)}`);
  console.log(`lensgate: listening on ${url} (graphql-ws on the same path, SSE via Accept: text/event-stream)`);

  const signals = exitOnSignals({
    label: 'lensgate',
    message: 'cancelling jobs, closing connections',
    graceMs: 10_000,
    close: () =>
      app
        .stop()
        .then(() => registry.close())
        .then(() => store.close?.()),
  });

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
        const { id, modelType, numLayers, device: ep, deviceNote, computeType, lenses, quantization: q } = model.info;
        const quantized = q ? `, blocks ${q.mode} (${q.cacheDir ? `cached in ${q.cacheDir}` : q.note})` : '';
        console.log(
          `lensgate: model ${id} (${modelType}, ${numLayers} layers) on ${ep} execution provider, ${computeType}${quantized}, lenses ${lenses.map((l) => l.kind).join(', ')}` +
            `${deviceNote ? ` — ${deviceNote}` : ''} [${Math.round(performance.now() - t0)} ms]`,
        );
        // Identical requests are answered from the store once the weights' hash is known; hashing
        // runs in the background (first run reads every byte; later runs reuse remembered digests).
        const hashStart = performance.now();
        modelContentHash(dir, memo).then(
          (hash) => {
            registry.setContentHash(id, hash);
            console.log(`lensgate: model ${id} content hash ${hash.slice(0, 12)}… [${Math.round(performance.now() - hashStart)} ms]; identical requests are cached`);
          },
          (err: unknown) => console.error(`lensgate: model ${id}: no caching, content hash failed: ${err instanceof Error ? err.message : String(err)}`),
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
  if (signals.stopping()) return;
  if (failed.length === states.length) {
    console.error('lensgate: no model could be loaded; exiting');
    await app.stop();
    process.exit(1);
  }
  console.log(failed.length ? `lensgate: ready (${states.length - failed.length} of ${states.length} models)` : 'lensgate: ready');
}

/**
 * Distributed mode: this gateway accepts clients and queues lens jobs for whichever workers hold
 * each model; results live in Redis. Models given with --model are run by a worker in this process.
 */
async function serveCluster(
  redisUrl: string,
  specs: ModelSpec[],
  device: Device,
  port: number,
  values: {
    host?: string;
    'max-queue'?: string;
    'store-max-mb'?: string;
    'result-ttl-s'?: string;
    'cors-origin'?: string;
    'no-compress-streams'?: boolean;
    apiKeys?: ApiKeys;
    connectionCaps: { maxConnectionsPerAddress?: number; maxConnections?: number };
  },
): Promise<void> {
  try {
    await ping(redisUrl);
  } catch (err) {
    fail(`cannot reach Redis at ${redisUrl}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const storeMb = Number(values['store-max-mb'] ?? 1024);
  if (!(storeMb > 0)) fail(`--store-max-mb must be a positive number (got ${values['store-max-mb']})`);
  const storeMaxBytes = Math.round(storeMb * 2 ** 20);
  const ttlS = values['result-ttl-s'] === undefined ? undefined : Number(values['result-ttl-s']);
  if (ttlS !== undefined && !(ttlS > 0)) fail(`--result-ttl-s must be a positive number (got ${values['result-ttl-s']})`);
  const resultTtlMs = ttlS === undefined ? undefined : ttlS * 1000;
  const registry = new ModelRegistry();
  const models: Array<{ model: LensModel; dir: string }> = [];
  for (const spec of specs) {
    const model = await openModel(spec.dir, { id: spec.id, device: spec.device ?? device, dtype: spec.dtype, quantize: spec.quantize });
    const i = model.info;
    console.log(`lensgate: model ${i.id} (${i.modelType}, ${i.numLayers} layers) on ${i.device} execution provider, ${i.computeType}`);
    models.push({ model, dir: spec.dir });
  }
  const worker = models.length ? await ClusterWorker.start({ redisUrl, models, storeMaxBytes, resultTtlMs }) : null;
  const cluster = await ClusterGateway.start({
    redisUrl,
    registry,
    storeMaxBytes,
    resultTtlMs,
    maxQueue: values['max-queue'] ? Number(values['max-queue']) : undefined,
  });
  const origins = values['cors-origin']?.split(',').map((o) => o.trim()).filter(Boolean);
  const app = buildApp({
    registry,
    api: gatewayApi({ registry, store: cluster.store }),
    knownDocuments: loadTrustedDocuments(CLIENT_DOCUMENTS).values(),
    port,
    host: values.host,
    cors: origins ? { origin: origins } : undefined,
    streamCompression: !values['no-compress-streams'],
    ...values.connectionCaps,
    // Keys are checked and rate-limited here, at the gateway; jobs carry the key's name to the
    // workers, which store it as the result's owner.
    apiKeys: values.apiKeys,
    logging: 'info',
  });
  const { url } = await app.start();
  registry.markReady();
  console.log(`lensgate: viewer at ${new URL('/', url)}`);
  console.log(`lensgate: listening on ${url} (distributed mode, Redis ${new URL(redisUrl).host})`);
  const served = registry.list().filter((s) => s.placements?.length).map((s) => s.model.info.id);
  console.log(`lensgate: ready; the cluster serves ${served.join(', ') || 'no models yet'}`);

  exitOnSignals({
    label: 'lensgate',
    message: 'cancelling jobs, closing connections',
    graceMs: 15_000,
    close: () =>
      app
        .stop()
        .then(() => cluster.close())
        .then(() => worker?.close())
        .then(() => registry.close())
        .then(() => Promise.allSettled(models.map((m) => m.model.close()))),
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  void main();
}

// npm run bench -- deflate [--sockets 200] [--tokens 20]
//
// graphql-ws permessage-deflate settings: bytes on the wire for the streamed 80-layer lens (the
// gateway bench's llama80 shape, 20 tokens, top-5, trajectories, JSON and PACKED events) against the
// deflate memory each socket keeps once it has sent one compressed message. The messages are
// recorded once from a live gateway (no compression) and replayed through ws's own
// PerMessageDeflate for each setting, so bytes are exact and every setting sees the same stream.
// Memory: `sockets` compressors per setting, each after one message: the process's RSS growth after
// a full GC (zlib allocates with malloc; V8's external memory does not see it).

import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import WebSocket from 'ws';
import { openModel } from '../src/lens/index.js';
import { buildApp } from '../src/server/app.js';
import { ModelRegistry } from '../src/server/models.js';
import { MemoryResultStore } from '../src/server/result-store.js';
import { PER_MESSAGE_DEFLATE } from '../src/server/ws.js';
import { gatewayApi } from '../resolvers/index.js';
import { makeCheckpoint, RECIPES, type FixtureRecipe } from '../test/helpers/fixtures.js';
import { promptOfTokens } from './checkpoints.js';

const { values } = parseArgs({ options: { sockets: { type: 'string', default: '200' }, tokens: { type: 'string', default: '20' } } });
const SOCKETS = Number(values.sockets);

interface PerMessageDeflate {
  accept(offers: Array<Record<string, unknown[]>>): Record<string, unknown>;
  compress(data: Buffer, fin: boolean, cb: (err: Error | null, out?: Buffer) => void): void;
  cleanup(): void;
}
// Not in ws's package exports: loaded by its path.
const wsRequire = createRequire(import.meta.url);
const PMD_PATH = join(dirname(wsRequire.resolve('ws')), 'lib', 'permessage-deflate.js');
const PerMessageDeflateClass = wsRequire(PMD_PATH) as new (options: Record<string, unknown>) => PerMessageDeflate;

const LLAMA80: FixtureRecipe = { ...RECIPES['llama-gqa-tied'], name: 'bench-llama-80L-v128k', layers: 80 };
const STREAM_JSON = `subscription($input: LensInput!) { lensLayers(input: $input) { __typename
  ... on LayerResult { layer topIndices topProbs } ... on LensCompleted { result { id tracked { tokenIds probs } } } } }`;
const STREAM_PACKED = `subscription($input: LensInput!) { lensLayers(input: $input) { __typename
  ... on LayerResult { layer packed { topIndices topProbs } } ... on LensCompleted { result { id packed { trackedCounts trackedIds trackedProbs } } } } }`;

/** Every server message of one subscription, as sent (graphql-ws over a socket without deflate). */
async function record(wsUrl: string, query: string, input: unknown): Promise<Buffer[]> {
  const ws = new WebSocket(wsUrl, 'graphql-transport-ws', { perMessageDeflate: false });
  const messages: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init' })));
    ws.on('message', (data: Buffer) => {
      messages.push(Buffer.from(data));
      const msg = JSON.parse(data.toString()) as { type: string };
      if (msg.type === 'connection_ack') ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query, variables: { input } } }));
      if (msg.type === 'error') reject(new Error(data.toString()));
      if (msg.type === 'complete') resolve();
    });
    ws.on('error', reject);
  });
  ws.close();
  return messages;
}

function frameHeader(len: number): number {
  return 2 + (len > 65535 ? 8 : len > 125 ? 2 : 0);
}

/** Server frames' bytes for `messages` with ws's deflate under `options` (threshold applied as ws's sender does). */
async function wireBytes(messages: Buffer[], options: Record<string, unknown>, offer: Record<string, unknown[]>): Promise<number> {
  const pmd = new PerMessageDeflateClass({ ...options, isServer: true });
  pmd.accept([structuredClone(offer)]);
  const threshold = (options.threshold as number | undefined) ?? 1024;
  let bytes = 0;
  for (const m of messages) {
    if (m.length < threshold) {
      bytes += frameHeader(m.length) + m.length;
      continue;
    }
    const out = await new Promise<Buffer>((resolve, reject) => pmd.compress(m, true, (err, buf) => (err ? reject(err) : resolve(buf!))));
    bytes += frameHeader(out.length) + out.length;
  }
  pmd.cleanup();
  return bytes;
}

/**
 * RSS growth per compressor after one compressed message each (bytes), in a fresh Node process per
 * setting: memory freed by one setting would otherwise be reused by the next without growing RSS.
 */
function memoryPerSocket(message: Buffer, options: Record<string, unknown>, offer: Record<string, unknown[]>): number {
  const script = `
    const PMD = require(${JSON.stringify(PMD_PATH)});
    const [options, offer, message, n] = JSON.parse(process.argv[1]);
    const data = Buffer.from(message, 'base64');
    (async () => {
      const one = (held) => new Promise((resolve, reject) => {
        const p = new PMD({ ...options, isServer: true });
        p.accept([structuredClone(offer)]);
        p.compress(data, true, (err) => (err ? reject(err) : resolve(held.push(p))));
      });
      await one([]); // zlib's code and first allocations outside the measurement
      gc();
      const before = process.memoryUsage().rss;
      const held = [];
      for (let i = 0; i < n; i++) await one(held);
      gc();
      console.log((process.memoryUsage().rss - before) / n);
    })();`;
  const out = execFileSync(process.execPath, ['--expose-gc', '-e', script, JSON.stringify([options, offer, message.toString('base64'), SOCKETS])]);
  return Number(out.toString().trim());
}

// What browsers and the ws client offer: `permessage-deflate; client_max_window_bits`.
const OFFER = { client_max_window_bits: [true] };

const SETTINGS: Array<{ label: string; options: Record<string, unknown> }> = [
  { label: 'before: window 15, memLevel 8 (zlib defaults), level 6', options: { threshold: 1024, zlibDeflateOptions: { level: 6 }, serverNoContextTakeover: false, clientNoContextTakeover: false } },
  { label: 'no context takeover (window 15, memLevel 8)', options: { threshold: 1024, zlibDeflateOptions: { level: 6 }, serverNoContextTakeover: true } },
  ...[15, 14, 13, 12, 11, 10].flatMap((w) =>
    [8, 7, 6, 5, 4].map((m) => ({
      label: `window ${w}, memLevel ${m}`,
      options: { threshold: 1024, zlibDeflateOptions: { level: 6, memLevel: m }, serverMaxWindowBits: w },
    })),
  ),
  { label: `chosen (src/server/ws.ts)`, options: { ...PER_MESSAGE_DEFLATE } },
];

async function main() {
  const model = await openModel(makeCheckpoint(LLAMA80), { id: 'llama-80l', device: 'cpu' });
  const registry = new ModelRegistry({ maxQueue: 16 });
  registry.add(model);
  registry.markReady();
  const app = buildApp({ registry, api: gatewayApi({ registry, store: new MemoryResultStore() }), port: 0, host: '127.0.0.1', logging: false, graphiql: false, streamCompression: false });
  const { url } = await app.start();
  const input = { model: 'llama-80l', prompt: promptOfTokens(Number(values.tokens)), topK: 5, trackAcrossLayers: true };
  const streams = { json: await record(url.replace(/^http/, 'ws'), STREAM_JSON, input), packed: await record(url.replace(/^http/, 'ws'), STREAM_PACKED, input) };
  await app.stop();
  await registry.close();
  const raw = (ms: Buffer[]) => ms.reduce((a, m) => a + frameHeader(m.length) + m.length, 0);
  const layer = streams.packed.find((m) => m.includes('"LayerResult"'))!;

  const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
  const rows: string[] = [];
  for (const s of SETTINGS) {
    const json = await wireBytes(streams.json, s.options, OFFER);
    const packed = await wireBytes(streams.packed, s.options, OFFER);
    const mem = memoryPerSocket(layer, s.options, OFFER);
    rows.push(`| ${s.label} | ${kib(json)} | ${kib(packed)} | ${kib(mem)} | ${((mem * 1000) / 2 ** 20).toFixed(0)} MiB |`);
    console.error(rows[rows.length - 1]);
  }
  console.log(`\n## graphql-ws permessage-deflate settings (${cpus().length} × ${cpus()[0]?.model.trim()}; ${model.info.numLayers} layers, V ${model.info.vocabSize}, ${Number(values.tokens)} tokens, top-5, trajectories)\n`);
  console.log(`Without deflate: JSON events ${kib(raw(streams.json))}, PACKED events ${kib(raw(streams.packed))} (${streams.packed.length} messages; one LayerResult ${kib(layer.length)}).`);
  console.log(`Memory: deflate context per socket after one compressed message (RSS growth, mean of ${SOCKETS}).\n`);
  console.log('| server deflate setting | JSON events | PACKED events | memory per socket | 1000 sockets |');
  console.log('|---|---:|---:|---:|---:|');
  for (const r of rows) console.log(r);

}

await main();

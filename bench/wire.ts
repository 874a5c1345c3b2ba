// Wire-format measurements for `npm run bench -- gateway`: bytes of each encoding of one mode 2
// result (identity and gzip, as received over HTTP), encode/decode time in-process, and streamed
// subscriptions with and without compression (graphql-ws permessage-deflate, SSE gzip).

import { request } from 'node:http';
import type { Socket } from 'node:net';
import { createGunzip } from 'node:zlib';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { DEFAULT_PACK, packP16, probCode, packTopLocal, packU32, trackedMatrix, unpackLens, type PackOptions } from '../src/lens/packed.js';
import type { LensResult } from '../src/lens/types.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Bytes actually received for one POST (no client-side decompression). */
export function wireBytes(url: string, body: unknown, gzip: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/graphql-response+json' };
    if (gzip) headers['accept-encoding'] = 'gzip';
    const req = request(url, { method: 'POST', headers }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => (n += c.length));
      res.on('end', () => (res.statusCode === 200 ? resolve(n) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

// The encodings are read from one stored result (Query.lensResult), so the lens runs once.
const COMPUTE = `query($input: LensInput!) { lens(input: $input) { id tokens { position id text } layers topK topIndices topProbs tracked { position tokenIds probs } } }`;
const JSON_MODE2 = (precision: string) =>
  `query($id: ID!) { lensResult(id: $id) { tokens { id text } layers topIndices topProbs${precision} tracked { tokenIds probs${precision} } } }`;
// Two PACKED selections: the top-k as their own arrays, or through topLocal (the smallest, what the
// viewer and LensPackedTracked select); both with the tokens' texts.
const PACKED = (top: string) => `query($id: ID!, $relativeError: Float, $floor: Float) { lensResult(id: $id) { tokens { id text } layers
  packed(relativeError: $relativeError, floor: $floor) { ${top} trackedCounts trackedIds trackedProbs tokens { id text } } } }`;

export interface EncodingRow {
  label: string;
  identity: number;
  gzip: number;
  /** Server-side serialization of the arrays in-process (JSON.stringify or packLens), median ms. */
  encodeMs: number;
  /** Client-side: JSON.parse or JSON.parse + unpackLens to typed arrays, median ms. */
  decodeMs: number;
  /** Worst |p′ − p| / max(p, floor) against the float64 result, over top-k and trajectories. */
  error: string;
}

function timeIt(fn: () => unknown, runs: number): number {
  const times: number[] = [];
  for (let i = 0; i < Math.max(3, runs); i++) {
    const t = performance.now();
    fn();
    times.push(performance.now() - t);
  }
  return median(times);
}

function allProbs(r: Pick<LensResult, 'topProbs' | 'tracked'>): number[] {
  return [...r.topProbs.flat(2), ...(r.tracked ?? []).flatMap((t) => t.probs.flat())];
}

/** Largest error relative to max(p, floor) between two lists of the same probabilities. */
function worstError(exact: number[], got: ArrayLike<number>, floor: number): number {
  let w = 0;
  for (let i = 0; i < exact.length; i++) w = Math.max(w, Math.abs(got[i] - exact[i]) / Math.max(exact[i], floor));
  return w;
}

const round = (x: number, d: number) => (x === 0 ? 0 : Number(x.toPrecision(d)));

/** Every encoding of one mode 2 request: bytes through the live gateway, times and error in-process. */
export async function measureEncodings(url: string, input: Record<string, unknown>, runs: number): Promise<{ rows: EncodingRow[]; result: LensResult }> {
  const rows: EncodingRow[] = [];
  // Full-digit JSON carries the float64 values exactly, so this is the reference for the errors.
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: COMPUTE, variables: { input } }) });
  const body = (await res.json()) as { data?: { lens: LensResult & { id: string } }; errors?: unknown };
  if (!body.data) throw new Error(JSON.stringify(body.errors));
  const result = { ...body.data.lens, attention: null, stats: null };
  const id = body.data.lens.id;
  const exact = allProbs(result);
  const shape = (r: Pick<LensResult, 'topIndices' | 'topProbs' | 'tracked'>) => ({
    topIndices: r.topIndices,
    topProbs: r.topProbs,
    tracked: r.tracked!.map((t) => ({ tokenIds: t.tokenIds, probs: t.probs })),
  });
  for (const precision of [null, 4, 3]) {
    const body = { query: JSON_MODE2(precision ? `(precision: ${precision})` : ''), variables: { id } };
    const rounded = (r: LensResult) =>
      precision
        ? { ...r, topProbs: r.topProbs.map((a) => a.map((b) => b.map((x) => round(x, precision)))), tracked: r.tracked!.map((t) => ({ ...t, probs: t.probs.map((a) => a.map((x) => round(x, precision))) })) }
        : r;
    console.error(`encodings: JSON precision ${precision ?? 'full'}`);
    const text = JSON.stringify(shape(rounded(result)));
    const parsed = JSON.parse(text) as ReturnType<typeof shape>;
    rows.push({
      label: precision ? `mode 2 JSON, precision: ${precision}` : 'mode 2 JSON (default, full float64 digits)',
      identity: await wireBytes(url, body, false),
      gzip: await wireBytes(url, body, true),
      encodeMs: timeIt(() => JSON.stringify(shape(rounded(result))), runs),
      decodeMs: timeIt(() => JSON.parse(text), runs),
      error: precision ? `${worstError(exact, allProbs(parsed as LensResult), 0).toExponential(1)} relative` : 'exact',
    });
  }
  const widget = { query: 'query($id: ID!) { lensResult(id: $id) { widget(format: V2) } }', variables: { id } };
  rows.push({
    label: 'widget JSON V2 (logitlenskit: 5 decimals, keyed by token text)',
    identity: await wireBytes(url, widget, false),
    gzip: await wireBytes(url, widget, true),
    encodeMs: NaN,
    decodeMs: NaN,
    error: '≤ 5e-6 absolute',
  });
  const cases: Array<{ bound: Required<PackOptions>; local: boolean; note: string }> = [
    { bound: DEFAULT_PACK, local: true, note: 'default; top-k via topLocal' },
    { bound: DEFAULT_PACK, local: false, note: 'default; topIndices + topProbs' },
    { bound: { relativeError: 1e-3, floor: 1e-4 }, local: true, note: 'format 1’s default bound; top-k via topLocal' },
    { bound: { relativeError: 1e-2, floor: 1e-3 }, local: true, note: 'top-k via topLocal' },
  ];
  // Reorder the exact trajectories like the decoded [layer][N] matrix.
  const exactPacked = [...result.topProbs.flat(2), ...result.layers.flatMap((_, l) => result.tracked!.flatMap((t) => t.probs[l]))];
  for (const { bound, local, note } of cases) {
    console.error(`encodings: PACKED ${note}`);
    const body = { query: PACKED(local ? 'topLocal' : 'topIndices topProbs'), variables: { id, ...bound } };
    // What the resolvers do for this selection (the tokens' texts are left out of the timing).
    const encode = () => {
      const m = trackedMatrix(result.tracked!, result.layers.length);
      const shape = [result.layers.length, result.tokens.length, result.topK];
      return JSON.stringify({
        ...(local
          ? { topLocal: packTopLocal(result.topIndices, result.tracked!) }
          : { topIndices: packU32(result.topIndices.flat(2), shape), topProbs: packP16(result.topProbs.flat(2), shape, probCode(bound)) }),
        trackedCounts: packU32(m.counts, [m.counts.length]),
        trackedIds: packU32(m.ids, [m.ids.length]),
        trackedProbs: packP16(m.probs, [result.layers.length, m.ids.length], probCode(bound)),
      });
    };
    const text = encode();
    const decoded = unpackLens(JSON.parse(text));
    const got = [...decoded.topProbs, ...decoded.tracked!.probs];
    rows.push({
      label: `PACKED, relativeError ${bound.relativeError}, floor ${bound.floor} (${note})`,
      identity: await wireBytes(url, body, false),
      gzip: await wireBytes(url, body, true),
      encodeMs: timeIt(encode, runs),
      decodeMs: timeIt(() => unpackLens(JSON.parse(text)), runs),
      error: `${worstError(exactPacked, got, bound.floor).toExponential(2)} of max(p, ${bound.floor})`,
    });
  }
  return { rows, result };
}

export interface StreamRow {
  label: string;
  bytes: number;
  firstMs: number;
  totalMs: number;
  /** Mean time between consecutive LayerResults as the client sees them. */
  gapMs: number;
}

const STREAM_JSON = `subscription($input: LensInput!) { lensLayers(input: $input) { __typename
  ... on LayerResult { layer topIndices topProbs } ... on LensCompleted { result { id tracked { tokenIds probs } } } } }`;
const STREAM_PACKED = `subscription($input: LensInput!) { lensLayers(input: $input) { __typename
  ... on LayerResult { layer packed { topIndices topProbs } } ... on LensCompleted { result { id packed { trackedCounts trackedIds trackedProbs } } } } }`;

/** A ws client that offers permessage-deflate or not and remembers its TCP socket (to count bytes). */
function wsImpl(deflate: boolean, sockets: Socket[]) {
  return class extends WebSocket {
    constructor(address: string, protocols?: string | string[]) {
      super(address, protocols, { perMessageDeflate: deflate });
      this.on('upgrade', (res) => sockets.push(res.socket as Socket));
    }
  };
}

/** `stopAfterFirst`: unsubscribe as soon as the first LayerResult arrives (total = that moment). */
async function wsRun(url: string, query: string, input: unknown, deflate: boolean, stopAfterFirst = false): Promise<{ bytes: number; arrivals: number[]; total: number }> {
  const sockets: Socket[] = [];
  // lazyCloseTimeout keeps the socket of the warm-up operation open for the measured one: with the
  // default (0) the lazy client closed it when the warm-up completed and the lens ran on a second
  // socket, so the first socket's counter read 0 bytes for the stream.
  const client = createClient({ url: url.replace(/^http/, 'ws'), webSocketImpl: wsImpl(deflate, sockets), retryAttempts: 0, lazy: true, lazyCloseTimeout: 60_000 });
  // Connect first so the handshake is outside the timings.
  for await (const _ of client.iterate({ query: '{ __typename }' }));
  const before = sockets[0].bytesRead;
  const t0 = performance.now();
  const arrivals: number[] = [];
  for await (const ev of client.iterate<{ lensLayers: { __typename: string } }>({ query, variables: { input } as Record<string, unknown> })) {
    if (ev.errors) throw new Error(JSON.stringify(ev.errors));
    if (ev.data?.lensLayers.__typename === 'LayerResult') arrivals.push(performance.now() - t0);
    if (stopAfterFirst && arrivals.length) break; // the iterator's return() sends graphql-ws `complete`
  }
  const total = performance.now() - t0;
  if (sockets.length !== 1) throw new Error(`the stream used ${sockets.length} sockets; bytes would be miscounted`);
  const bytes = sockets[0].bytesRead - before;
  void client.dispose();
  return { bytes, arrivals, total };
}

function sseRun(url: string, query: string, input: unknown, gzip: boolean, stopAfterFirst = false): Promise<{ bytes: number; arrivals: number[]; total: number }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'text/event-stream' };
    if (gzip) headers['accept-encoding'] = 'gzip';
    const t0 = performance.now();
    const req = request(url, { method: 'POST', headers }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      const text = gzip ? res.pipe(createGunzip()) : res;
      const arrivals: number[] = [];
      let tail = '';
      text.on('data', (d: Buffer) => {
        const parts = (tail + d.toString()).split('\n\n');
        tail = parts.pop()!;
        for (const p of parts) if (p.includes('"LayerResult"')) arrivals.push(performance.now() - t0);
        if (stopAfterFirst && arrivals.length) {
          const total = performance.now() - t0;
          req.destroy(); // the client goes away: the server must cancel the run
          resolve({ bytes, arrivals, total });
        }
      });
      text.on('end', () => resolve({ bytes, arrivals, total: performance.now() - t0 }));
      text.on('error', reject);
    });
    req.on('error', reject);
    req.end(JSON.stringify({ query, variables: { input } }));
  });
}

/** Streams the same request over graphql-ws and SSE, compressed and not, `runs` times each (interleaved). */
export async function measureStreams(url: string, input: Record<string, unknown>, runs: number): Promise<StreamRow[]> {
  const cases = [
    { label: 'graphql-ws, JSON events', run: (c: boolean) => wsRun(url, STREAM_JSON, input, c), on: 'permessage-deflate', off: 'no deflate' },
    { label: 'graphql-ws, PACKED events', run: (c: boolean) => wsRun(url, STREAM_PACKED, input, c), on: 'permessage-deflate', off: 'no deflate' },
    { label: 'SSE, JSON events', run: (c: boolean) => sseRun(url, STREAM_JSON, input, c), on: 'gzip, flushed per event', off: 'identity' },
    { label: 'SSE, PACKED events', run: (c: boolean) => sseRun(url, STREAM_PACKED, input, c), on: 'gzip, flushed per event', off: 'identity' },
  ];
  const rows: StreamRow[] = [];
  for (const c of cases) {
    console.error(`streams: ${c.label}`);
    const samples = { off: [] as Array<Awaited<ReturnType<typeof c.run>>>, on: [] as Array<Awaited<ReturnType<typeof c.run>>> };
    for (let r = 0; r < runs; r++) {
      samples.off.push(await c.run(false));
      samples.on.push(await c.run(true));
    }
    for (const key of ['off', 'on'] as const) {
      const s = samples[key];
      rows.push({
        label: `${c.label}, ${c[key]}`,
        bytes: median(s.map((x) => x.bytes)),
        firstMs: median(s.map((x) => x.arrivals[0])),
        totalMs: median(s.map((x) => x.total)),
        gapMs: median(s.map((x) => (x.arrivals[x.arrivals.length - 1] - x.arrivals[0]) / Math.max(1, x.arrivals.length - 1))),
      });
    }
  }
  return rows;
}

export interface CancelRow {
  label: string;
  /** A stream on an idle model: request → first LayerResult (median ms). */
  idleFirstMs: number;
  /** Cancel a running stream at its first LayerResult, start the same stream again: cancel → its first LayerResult. */
  afterCancelFirstMs: number;
}

/**
 * Cancellation with and without stream compression: the model runs one job at a time, so a second
 * stream started right after the first is cancelled gets its first layer only once the server has
 * stopped the first run. afterCancelFirstMs ≈ idleFirstMs means cancellation took effect at once;
 * ≈ a whole run means the server kept computing for a client that had left.
 */
export async function measureCancel(url: string, input: Record<string, unknown>, runs: number): Promise<CancelRow[]> {
  const cases = [
    { label: 'graphql-ws, no deflate', run: (stop: boolean) => wsRun(url, STREAM_PACKED, input, false, stop) },
    { label: 'graphql-ws, permessage-deflate', run: (stop: boolean) => wsRun(url, STREAM_PACKED, input, true, stop) },
    { label: 'SSE, identity', run: (stop: boolean) => sseRun(url, STREAM_PACKED, input, false, stop) },
    { label: 'SSE, gzip flushed per event', run: (stop: boolean) => sseRun(url, STREAM_PACKED, input, true, stop) },
  ];
  const samples = cases.map(() => ({ idle: [] as number[], after: [] as number[] }));
  for (let r = 0; r < runs; r++) {
    // Interleaved, so load on the machine hits every case alike.
    for (const [i, c] of cases.entries()) {
      console.error(`cancel: ${c.label}, round ${r + 1}`);
      const idle = await c.run(true);
      samples[i].idle.push(idle.arrivals[0]);
      await new Promise((res) => setTimeout(res, 1000)); // let the cancelled run stop before the next case
      await c.run(true); // cancelled at its first layer …
      const again = await c.run(true); // … and the next stream waits for the server to notice
      samples[i].after.push(again.arrivals[0]);
      await new Promise((res) => setTimeout(res, 1000));
    }
  }
  return cases.map((c, i) => ({ label: c.label, idleFirstMs: median(samples[i].idle), afterCancelFirstMs: median(samples[i].after) }));
}

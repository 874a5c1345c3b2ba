// gzip for responses. Whole JSON responses are compressed in one go. Streams (SSE, multipart
// @defer/@stream) are compressed only when asked (`streams`), flushed (Z_SYNC_FLUSH) as soon as
// yoga has written an event: the compressor never holds an event back, and its window still spans
// the stream, so each LayerResult costs only what differs from the ones before it.
//
// The compressed stream is a Node stream (zlib's own), not a web TransformStream: the Node adapter
// under yoga (@whatwg-node/server) destroys a Node-stream body when the client's connection closes,
// and that destroy is what reaches the subscription (here: cancels the source stream, whose cancel
// returns yoga's iterator, which stops the lens run). A web ReadableStream body is only read, never
// cancelled on disconnect, so behind the old TransformStream a cancelled client's run went on to its
// last layer while the next request waited in the model's queue.

import { promisify } from 'node:util';
import { constants, createGzip, gzip, type Gzip } from 'node:zlib';
import type { Plugin } from 'graphql-yoga';

const gzipAsync = promisify(gzip);
const COMPRESSIBLE = /^application\/(graphql-response\+)?json\b/;
const STREAMING = /^(text\/event-stream|multipart\/mixed)\b/;

export interface CompressionOptions {
  thresholdBytes?: number;
  level?: number;
  /** Also gzip SSE and multipart streams, flushing after every event (default false). */
  streams?: boolean;
}

/**
 * gzip of a streamed body as a Node stream. What the source yields in one go (yoga writes an SSE
 * event as two chunks, `event:` and `data:`) is flushed together once the source has nothing more
 * ready (one setImmediate later), so no event waits for the next one. Destroying the returned
 * stream (the client left) cancels the source.
 */
export function gzipStream(source: ReadableStream<Uint8Array>, level = 6): Gzip {
  const z = createGzip({ level });
  // Nothing to report to: a failed compressor just ends the response (the client sees the stream stop).
  z.on('error', () => undefined);
  const reader = source.getReader();
  let flushing: NodeJS.Immediate | null = null;
  let gone = false;
  z.once('close', () => {
    gone = true;
    if (flushing) clearImmediate(flushing);
    // The client went away (or the stream ended): stop whatever produces the events. Cancelling
    // the stream itself first: the adapter's reader (an async generator over a Node stream) holds
    // a cancel until its pending read returns, which for a queued run (no event coming) is never;
    // the adapter's stream.cancel() destroys it at once. A standard stream refuses cancel() while
    // locked, and its reader's cancel() is immediate.
    Promise.resolve()
      .then(() => source.cancel())
      .catch(() => reader.cancel())
      .catch(() => undefined);
  });
  const flushSoon = () => {
    flushing ??= setImmediate(() => {
      flushing = null;
      if (!gone) z.flush(constants.Z_SYNC_FLUSH);
    });
  };
  const room = () =>
    new Promise<void>((resolve) => {
      const done = () => {
        z.off('drain', done);
        z.off('close', done);
        resolve();
      };
      z.on('drain', done);
      z.on('close', done);
    });
  void (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (gone) return;
        if (done) {
          if (flushing) clearImmediate(flushing);
          z.end();
          return;
        }
        flushSoon();
        if (!z.write(value)) await room();
        if (gone) return;
      }
    } catch {
      // The source failed: end the gzip stream cleanly so the response ends where the events did.
      if (!gone) z.end();
    }
  })();
  return z;
}

export function useCompression(options: CompressionOptions = {}): Plugin {
  const threshold = options.thresholdBytes ?? 1024;
  const level = options.level ?? 6;
  return {
    async onResponse({ request, response, setResponse, fetchAPI }) {
      const accepted = (request.headers.get('accept-encoding') ?? '').split(',').map((e) => e.trim().split(';')[0]);
      // yoga marks SSE `content-encoding: none` so that proxies leave it alone; that is not an encoding.
      const encoding = response.headers.get('content-encoding');
      if (!accepted.includes('gzip') || !response.body || (encoding && encoding !== 'none' && encoding !== 'identity')) return;
      const type = response.headers.get('content-type') ?? '';
      if (options.streams === true && STREAMING.test(type)) {
        const headers = new fetchAPI.Headers(response.headers);
        headers.append('vary', 'accept-encoding');
        headers.set('content-encoding', 'gzip');
        headers.delete('content-length');
        // fetchAPI's Response (the adapter's own) takes a Node stream as its body; see the top comment.
        const body = gzipStream(response.body, level) as unknown as BodyInit;
        setResponse(new fetchAPI.Response(body, { status: response.status, statusText: response.statusText, headers }));
        return;
      }
      if (!COMPRESSIBLE.test(type)) return;
      const raw = new Uint8Array(await response.arrayBuffer());
      const headers = new Headers(response.headers);
      headers.append('vary', 'accept-encoding');
      if (raw.byteLength < threshold) {
        setResponse(new Response(raw, { status: response.status, statusText: response.statusText, headers }));
        return;
      }
      const body = await gzipAsync(raw, { level });
      headers.set('content-encoding', 'gzip');
      headers.set('content-length', String(body.byteLength));
      setResponse(new Response(body, { status: response.status, statusText: response.statusText, headers }));
    },
  };
}

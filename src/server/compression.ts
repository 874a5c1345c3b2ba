// gzip for responses. Whole JSON responses are compressed in one go. Streams (SSE, multipart
// @defer/@stream) are compressed only when asked (`streams`), with a sync flush after every chunk
// yoga writes (one event):
// the compressor never holds an event back, and its window still spans the stream, so each
// LayerResult costs only what differs from the ones before it.

import { promisify } from 'node:util';
import { constants, createGzip, gzip } from 'node:zlib';
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
 * gzip as a web TransformStream that emits everything it has after each input chunk. The output is
 * taken as zlib produces it (flowing mode): reading only after a chunk's flush deadlocks once one
 * event compresses to more than zlib's readable buffer (16 KiB), e.g. an 80-layer LensCompleted.
 */
export function flushingGzip(level = 6): TransformStream<Uint8Array, Uint8Array> {
  const z = createGzip({ level });
  return new TransformStream({
    start(controller) {
      z.on('data', (chunk: Buffer) => controller.enqueue(new Uint8Array(chunk)));
    },
    transform(chunk) {
      return new Promise<void>((resolve, reject) => {
        z.write(chunk, (err) => err && reject(err));
        // Queued after the write: its callback runs once everything so far has been emitted.
        z.flush(constants.Z_SYNC_FLUSH, () => resolve());
      });
    },
    flush() {
      return new Promise<void>((resolve, reject) => {
        z.once('error', reject);
        z.once('end', resolve);
        z.end();
      });
    },
  });
}

export function useCompression(options: CompressionOptions = {}): Plugin {
  const threshold = options.thresholdBytes ?? 1024;
  const level = options.level ?? 6;
  return {
    async onResponse({ request, response, setResponse }) {
      const accepted = (request.headers.get('accept-encoding') ?? '').split(',').map((e) => e.trim().split(';')[0]);
      // yoga marks SSE `content-encoding: none` so that proxies leave it alone; that is not an encoding.
      const encoding = response.headers.get('content-encoding');
      if (!accepted.includes('gzip') || !response.body || (encoding && encoding !== 'none' && encoding !== 'identity')) return;
      const type = response.headers.get('content-type') ?? '';
      if (options.streams === true && STREAMING.test(type)) {
        const headers = new Headers(response.headers);
        headers.append('vary', 'accept-encoding');
        headers.set('content-encoding', 'gzip');
        headers.delete('content-length');
        setResponse(new Response(response.body.pipeThrough(flushingGzip(level)), { status: response.status, statusText: response.statusText, headers }));
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

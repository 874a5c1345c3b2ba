// gzip for whole JSON responses. Streams (SSE, multipart @defer) are left alone: a compressor
// buffers, and a LayerResult must leave as soon as it exists.

import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { Plugin } from 'graphql-yoga';

const gzipAsync = promisify(gzip);
const COMPRESSIBLE = /^application\/(graphql-response\+)?json\b/;

export function useCompression(options: { thresholdBytes?: number; level?: number } = {}): Plugin {
  const threshold = options.thresholdBytes ?? 1024;
  return {
    async onResponse({ request, response, setResponse }) {
      const accepted = (request.headers.get('accept-encoding') ?? '').split(',').map((e) => e.trim().split(';')[0]);
      if (!accepted.includes('gzip') || !response.body || response.headers.has('content-encoding')) return;
      if (!COMPRESSIBLE.test(response.headers.get('content-type') ?? '')) return;
      const raw = new Uint8Array(await response.arrayBuffer());
      const headers = new Headers(response.headers);
      headers.append('vary', 'accept-encoding');
      if (raw.byteLength < threshold) {
        setResponse(new Response(raw, { status: response.status, statusText: response.statusText, headers }));
        return;
      }
      const body = await gzipAsync(raw, { level: options.level ?? 6 });
      headers.set('content-encoding', 'gzip');
      headers.set('content-length', String(body.byteLength));
      setResponse(new Response(body, { status: response.status, statusText: response.statusText, headers }));
    },
  };
}

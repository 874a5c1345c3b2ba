// The web viewer at `/`: the static files of src/viewer/ plus one script bundled from
// src/viewer/app.ts with esbuild inside the server process. The server reads those files, it does
// not import them: the viewer sits above the server in the layer order. Bundling in-process
// (instead of a build step) means a clone that ran `npm ci && npm start` always serves a bundle
// that matches its sources and generated client, and the machine needs nothing from a CDN.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void;

interface Asset {
  body: Buffer;
  gzip: Buffer;
  type: string;
  etag: string;
}

const here = (name: string) => fileURLToPath(new URL(name, import.meta.url));

function asset(body: string | Buffer, type: string): Asset {
  const buf = typeof body === 'string' ? Buffer.from(body) : body;
  return { body: buf, gzip: gzipSync(buf), type, etag: `"${createHash('sha1').update(buf).digest('base64url')}"` };
}

/** Bundles app.ts for the browser; a failure becomes a script that shows the error in the page. */
export async function bundleViewer(): Promise<string> {
  try {
    const { build } = await import('esbuild');
    const out = await build({
      entryPoints: [here('../viewer/app.ts')],
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'browser',
      target: 'es2020',
      minify: true,
      sourcemap: 'inline',
      // graphql's dev-mode instanceOf check reads process.env, which browsers do not have.
      define: { 'process.env.NODE_ENV': '"production"' },
      logLevel: 'silent',
    });
    return out.outputFiles[0].text;
  } catch (err) {
    const message = `The viewer script could not be built: ${err instanceof Error ? err.message : String(err)}`;
    return `const e=document.getElementById('fatal');if(e){e.hidden=false;e.textContent=${JSON.stringify(message)};}`;
  }
}

function send(req: IncomingMessage, res: ServerResponse, a: Asset): void {
  if (req.headers['if-none-match'] === a.etag) {
    res.writeHead(304, { etag: a.etag });
    res.end();
    return;
  }
  const gz = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  const body = gz ? a.gzip : a.body;
  res.writeHead(200, {
    'content-type': a.type,
    'content-length': body.length,
    etag: a.etag,
    // Revalidate every load: the bundle changes whenever the server restarts with new sources.
    'cache-control': 'no-cache',
    vary: 'accept-encoding',
    'x-content-type-options': 'nosniff',
    ...(gz ? { 'content-encoding': 'gzip' } : {}),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

// One bundle per process, built on the first page load rather than per buildApp(): the test suite
// starts many gateways that never serve a page, and they share two cores.
let script: Promise<Asset> | null = null;
const getScript = () => (script ??= bundleViewer().then((js) => asset(js, 'text/javascript; charset=utf-8')));

/** Answers GET/HEAD for the viewer's own paths and hands every other request to `next` untouched. */
export function serveViewer(next: NodeHandler): NodeHandler {
  const page = asset(readFileSync(here('../viewer/index.html')), 'text/html; charset=utf-8');
  const css = asset(readFileSync(here('../viewer/viewer.css')), 'text/css; charset=utf-8');
  const icon = asset(readFileSync(here('../viewer/favicon.svg')), 'image/svg+xml');

  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next(req, res);
    const path = (req.url ?? '/').split('?')[0];
    switch (path) {
      case '/':
      case '/index.html':
        // The browser asks for the script right after the page: start bundling now.
        void getScript();
        return send(req, res, page);
      case '/viewer/viewer.css':
        return send(req, res, css);
      case '/favicon.ico':
      case '/viewer/favicon.svg':
        return send(req, res, icon);
      case '/viewer/app.js':
        void getScript().then((a) => send(req, res, a));
        return;
      default:
        return next(req, res);
    }
  };
}

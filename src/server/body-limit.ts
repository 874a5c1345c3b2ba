// Request body size limit in front of yoga. The body is read here with a byte cap (also for
// chunked uploads without Content-Length) and handed to yoga as a Buffer on `req.body`, which its
// node adapter uses instead of the consumed stream.

import type { IncomingMessage, ServerResponse } from 'node:http';

export type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void;

function reject(res: ServerResponse, limit: number): void {
  res.writeHead(413, { 'content-type': 'application/json', connection: 'close' });
  res.end(JSON.stringify({ errors: [{ message: `Request body is larger than ${limit} bytes`, extensions: { code: 'BAD_USER_INPUT' } }] }));
}

function timedOut(res: ServerResponse, ms: number): void {
  res.writeHead(408, { 'content-type': 'application/json', connection: 'close' });
  // The rest of the body is never read: drop the connection once the answer is out.
  res.end(JSON.stringify({ errors: [{ message: `Request body not received within ${ms} ms`, extensions: { code: 'REQUEST_TIMEOUT' } }] }), () => res.socket?.destroy());
}

/** `timeoutMs`: the whole body must arrive within it, so a client trickling bytes cannot hold a connection open. */
export function withBodyLimit(limit: number, next: NodeHandler, timeoutMs = 10_000): NodeHandler {
  return (req, res) => {
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return next(req, res);
    const timer = setTimeout(() => {
      over = true;
      timedOut(res, timeoutMs);
    }, timeoutMs);
    req.once('close', () => clearTimeout(timer));
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      clearTimeout(timer);
      reject(res, limit);
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > limit) {
        over = true;
        reject(res, limit);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      clearTimeout(timer);
      if (over) return;
      (req as IncomingMessage & { body?: Buffer }).body = Buffer.concat(chunks);
      next(req, res);
    });
    req.on('error', () => res.destroy());
  };
}

// Request body size limit in front of yoga. The body is read here with a byte cap (also for
// chunked uploads without Content-Length) and handed to yoga as a Buffer on `req.body`, which its
// node adapter uses instead of the consumed stream.

import type { IncomingMessage, ServerResponse } from 'node:http';

export type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void;

function reject(res: ServerResponse, limit: number): void {
  res.writeHead(413, { 'content-type': 'application/json', connection: 'close' });
  res.end(JSON.stringify({ errors: [{ message: `Request body is larger than ${limit} bytes`, extensions: { code: 'BAD_USER_INPUT' } }] }));
}

export function withBodyLimit(limit: number, next: NodeHandler): NodeHandler {
  return (req, res) => {
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return next(req, res);
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
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
      if (over) return;
      (req as IncomingMessage & { body?: Buffer }).body = Buffer.concat(chunks);
      next(req, res);
    });
    req.on('error', () => res.destroy());
  };
}

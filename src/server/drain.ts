// Shutdown drain for HTTP. While draining, new requests (also on kept-alive connections) get 503
// UNAVAILABLE with `Connection: close`; requests already in flight are tracked until their response
// ends, so stop() can wait for every one of them to be answered (lens work ends with CANCELLED)
// instead of cutting connections under a client (ECONNRESET).

import type { ServerResponse } from 'node:http';
import type { NodeHandler } from './body-limit.js';

function unavailable(res: ServerResponse, message: string, code = 'UNAVAILABLE'): void {
  res.writeHead(503, { 'content-type': 'application/json', connection: 'close', 'retry-after': '1' });
  res.end(JSON.stringify({ errors: [{ message, extensions: { code } }] }));
}

export class HttpDrain {
  private draining = false;
  private readonly open = new Set<ServerResponse>();
  private readonly idle = new Set<() => void>();

  get isDraining(): boolean {
    return this.draining;
  }

  /** Responses not yet ended. */
  get inFlight(): number {
    return this.open.size;
  }

  handler(next: NodeHandler): NodeHandler {
    return (req, res) => {
      if (this.draining) {
        req.resume();
        unavailable(res, 'The server is shutting down; retry on another instance');
        return;
      }
      this.open.add(res);
      res.once('close', () => {
        this.open.delete(res);
        if (this.open.size === 0) for (const wake of this.idle) wake();
      });
      next(req, res);
    };
  }

  /** From now on new requests are refused; in-flight responses carry `Connection: close` where headers are not out yet. */
  start(): void {
    this.draining = true;
    for (const res of this.open) if (!res.headersSent) res.setHeader('connection', 'close');
  }

  /** Resolves when no response is open (true) or after `ms` (false). */
  settled(ms: number): Promise<boolean> {
    if (this.open.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.idle.delete(wake);
        resolve(ok);
      };
      const wake = () => done(true);
      const timer = setTimeout(() => done(false), ms);
      this.idle.add(wake);
    });
  }

  /**
   * Last resort for responses still open after the drain period: one not started yet is answered
   * 503 CANCELLED; a stream already under way is ended cleanly (its chunked body terminated), never
   * reset.
   */
  finish(): void {
    for (const res of this.open) {
      if (!res.headersSent) unavailable(res, 'The server shut down before this request finished', 'CANCELLED');
      else res.end();
    }
  }
}

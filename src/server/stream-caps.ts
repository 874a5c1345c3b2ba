// Concurrent streamed operations per client address, counted across transports: graphql-ws
// operations (ws.ts counts those on its sockets) and streamed HTTP responses (SSE, and multipart
// incremental delivery). One client address holds at most `perAddress` of them in all, so opening
// SSE streams next to its sockets does not get it past the graphql-ws cap.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NodeHandler } from './body-limit.js';
import { errorBody, type ConnectionCounts } from './connection-caps.js';

export class StreamCounts {
  private readonly http = new Map<string, number>();
  /** Set by the graphql-ws server: operations its sockets from `address` run now. */
  wsOperations: (address: string) => number = () => 0;

  constructor(readonly perAddress: number) {}

  httpStreams(address: string): number {
    return this.http.get(address) ?? 0;
  }

  total(address: string): number {
    return this.httpStreams(address) + this.wsOperations(address);
  }

  /** Counts one streamed response until it closes; false (nothing counted) when the address is at its cap. */
  admitHttp(address: string, res: ServerResponse): boolean {
    if (this.total(address) >= this.perAddress) return false;
    this.http.set(address, this.httpStreams(address) + 1);
    res.once('close', () => {
      const left = this.httpStreams(address) - 1;
      if (left > 0) this.http.set(address, left);
      else this.http.delete(address);
    });
    return true;
  }
}

export function peerAddress(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}

function streamed(req: IncomingMessage): boolean {
  const accept = req.headers.accept ?? '';
  return accept.includes('text/event-stream') || accept.includes('multipart/mixed');
}

/**
 * Refuses a streamed GraphQL request the way yoga reports any GraphQL error on a stream: 200, one
 * `next` event with the coded error, then `complete` (graphql-sse clients read the code from there;
 * a non-2xx status would reach them as a bare network error). Multipart clients get `status`.
 */
function refuse(req: IncomingMessage, res: ServerResponse, status: number, message: string, code: string): void {
  req.resume();
  if ((req.headers.accept ?? '').includes('text/event-stream')) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'close' });
    res.end(`event: next\ndata: ${errorBody(message, code)}\n\nevent: complete\ndata:\n\n`);
  } else {
    res.writeHead(status, { 'content-type': 'application/json', connection: 'close' });
    res.end(errorBody(message, code));
  }
}

/**
 * Streamed requests on `path`: refused past the connection caps (TOO_MANY_CONNECTIONS) or past the
 * address's streamed operations (TOO_MANY_SUBSCRIPTIONS); admitted ones count toward both until they close.
 */
export function withStreamCaps(counts: StreamCounts, connections: ConnectionCounts, path: string, next: NodeHandler): NodeHandler {
  return (req, res) => {
    if (req.method !== 'OPTIONS' && streamed(req) && (req.url ?? '').split('?')[0] === path) {
      const address = peerAddress(req);
      const full = connections.refusal(address);
      if (full) return refuse(req, res, full.status, full.message, full.code);
      if (!counts.admitHttp(address, res)) {
        return refuse(req, res, 429, `This client already runs ${counts.perAddress} streamed operations (SSE and WebSocket together); complete one first`, 'TOO_MANY_SUBSCRIPTIONS');
      }
      connections.hold(address, (release) => res.once('close', release));
    }
    next(req, res);
  };
}

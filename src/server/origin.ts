// Browser origins. CORS headers only stop a page from *reading* a response; a WebSocket upgrade or
// an EventSource/simple request from a foreign page still runs its operation (and takes a queue
// slot). With an allow-list configured, requests that carry any other Origin are refused outright
// on every path; requests without an Origin (curl, servers, the graphql-ws Node client) pass.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { YogaServerOptions } from 'graphql-yoga';
import type { NodeHandler } from './body-limit.js';

type Cors = YogaServerOptions<object, object>['cors'];

/** The allow-list in yoga CORS options, or null when any origin may call. */
export function allowedOrigins(cors: Cors): Set<string> | null {
  if (!cors || typeof cors !== 'object') return null;
  const origin = (cors as { origin?: string | string[] }).origin;
  const list = typeof origin === 'string' ? [origin] : (origin ?? []);
  return list.length === 0 || list.includes('*') ? null : new Set(list);
}

/** Default CORS: any origin, never credentials (yoga would otherwise reflect the origin *with* credentials). */
export function corsOptions(cors: Cors): Cors {
  if (cors === false) return false;
  if (typeof cors === 'function') return cors;
  return { credentials: false, ...((cors ?? {}) as object) } as Cors;
}

export function originAllowed(allowed: Set<string> | null, origin: string | undefined): boolean {
  return !allowed || origin === undefined || allowed.has(origin);
}

export function forbidOrigin(res: ServerResponse | { writeHead: ServerResponse['writeHead']; end: ServerResponse['end'] }): void {
  res.writeHead(403, { 'content-type': 'application/json', connection: 'close' });
  res.end(JSON.stringify({ errors: [{ message: 'Origin not allowed', extensions: { code: 'FORBIDDEN_ORIGIN' } }] }));
}

export function withOriginCheck(allowed: Set<string> | null, next: NodeHandler): NodeHandler {
  if (!allowed) return next;
  return (req: IncomingMessage, res: ServerResponse) => {
    if (!originAllowed(allowed, req.headers.origin)) {
      req.resume();
      forbidOrigin(res);
      return;
    }
    next(req, res);
  };
}

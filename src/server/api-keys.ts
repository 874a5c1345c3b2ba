// Optional API keys (`npm start -- --api-keys FILE`), for servers exposed beyond a lab. The file is
// JSON: { "keys": [ { "name": "alice", "sha256": "<hex of sha256(key)>" | "key": "<the key>",
// "admin": false, "requestsPerMinute": 60 } ] }. Clients send the key as `Authorization: Bearer KEY`
// or `X-Api-Key: KEY` (HTTP and SSE), or in graphql-ws's connection_init payload as { "apiKey": KEY }
// (or the same headers on the upgrade request). Each key has its own rate limit (a token bucket:
// bursts up to a minute's worth, refilled continuously); admin keys read any result and /metrics.
// The bucket is written here rather than taken from a library (rate-limiter-flexible and the like):
// one in-process map of two numbers per key is all it needs, with no store behind it.

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NodeHandler } from './body-limit.js';

export interface Caller {
  /** The key's name: owner of the results it creates, and its own share of each model's queue. */
  key: string;
  admin: boolean;
}

interface KeyEntry extends Caller {
  digest: Buffer;
  perMinute: number;
  tokens: number;
  at: number;
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest();

export class ApiKeys {
  private readonly entries: KeyEntry[];

  constructor(keys: Array<{ name: string; key?: string; sha256?: string; admin?: boolean; requestsPerMinute?: number }>) {
    if (keys.length === 0) throw new Error('the API key file lists no keys');
    const names = new Set<string>();
    this.entries = keys.map((k, i) => {
      if (typeof k.name !== 'string' || !k.name) throw new Error(`key ${i}: "name" is required`);
      if (names.has(k.name)) throw new Error(`key "${k.name}" is listed twice`);
      names.add(k.name);
      const digest = k.sha256 ? Buffer.from(k.sha256, 'hex') : k.key ? sha256(k.key) : null;
      if (!digest || digest.length !== 32) throw new Error(`key "${k.name}": give "key" or a 64-hex-digit "sha256"`);
      const perMinute = k.requestsPerMinute ?? 60;
      if (!(perMinute > 0)) throw new Error(`key "${k.name}": requestsPerMinute must be positive`);
      return { key: k.name, admin: k.admin === true, digest, perMinute, tokens: perMinute, at: Date.now() };
    });
  }

  static load(file: string): ApiKeys {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as { keys?: unknown };
    if (!Array.isArray(parsed.keys)) throw new Error(`${file}: expected { "keys": [ ... ] }`);
    return new ApiKeys(parsed.keys as never);
  }

  /** The caller holding `token`, or null for a missing or unknown key (compared in constant time). */
  authenticate(token: string | undefined | null): Caller | null {
    if (!token) return null;
    const digest = sha256(token);
    const entry = this.entries.find((e) => timingSafeEqual(e.digest, digest));
    return entry ? { key: entry.key, admin: entry.admin } : null;
  }

  /** Takes one request from the key's bucket; returns seconds to wait when it is empty, else 0. */
  take(caller: Caller): number {
    const e = this.entries.find((x) => x.key === caller.key)!;
    const now = Date.now();
    e.tokens = Math.min(e.perMinute, e.tokens + ((now - e.at) / 60_000) * e.perMinute);
    e.at = now;
    if (e.tokens >= 1) {
      e.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - e.tokens) * 60) / e.perMinute);
  }
}

export function tokenFromHeaders(headers: IncomingMessage['headers']): string | undefined {
  const auth = headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice(7).trim();
  const x = headers['x-api-key'];
  return typeof x === 'string' ? x : undefined;
}

/** The authenticated caller of a request that passed withApiKeys (or a graphql-ws upgrade). */
export function callerOf(req: IncomingMessage | undefined): Caller | undefined {
  return (req as (IncomingMessage & { lensgateCaller?: Caller }) | undefined)?.lensgateCaller;
}

export function setCaller(req: IncomingMessage, caller: Caller): void {
  (req as IncomingMessage & { lensgateCaller?: Caller }).lensgateCaller = caller;
}

/** The error a refused request carries (RATE_LIMITED also says when to retry, in seconds). */
export function keyError(code: 'UNAUTHENTICATED' | 'FORBIDDEN' | 'RATE_LIMITED', message: string, retryAfter?: number) {
  return { message, extensions: retryAfter === undefined ? { code } : { code, retryAfter } };
}

type Wire = 'json' | 'sse' | 'multipart';

/** The response format the client asked for first (as yoga picks it): JSON unless a stream comes first. */
export function wireOf(req: IncomingMessage): Wire {
  for (const part of String(req.headers.accept ?? '').split(',')) {
    const type = part.split(';')[0].trim().toLowerCase();
    if (type === 'text/event-stream') return 'sse';
    if (type === 'multipart/mixed') return 'multipart';
    if (type === 'application/json' || type === 'application/graphql-response+json' || type === '*/*') return 'json';
  }
  return 'json';
}

/**
 * Answers a refused GraphQL request in the format it asked for, as yoga answers any request error:
 * JSON with the HTTP status; multipart with the status and the error as its one part; SSE with
 * 200, the error as the one `next` event, then `complete` — graphql-sse's client reads a non-2xx
 * answer as a bare network error, and from the event it gets the coded error. The status's own
 * headers (WWW-Authenticate, Retry-After) go with every format.
 */
export function refuse(req: IncomingMessage, res: ServerResponse, status: number, error: ReturnType<typeof keyError>, headers: Record<string, string> = {}): void {
  req.resume();
  const body = JSON.stringify({ errors: [error] });
  const wire = wireOf(req);
  if (wire === 'sse') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...headers });
    res.end(`event: next\ndata: ${body}\n\nevent: complete\ndata:\n\n`);
  } else if (wire === 'multipart') {
    res.writeHead(status, { 'content-type': 'multipart/mixed; boundary="-"', ...headers });
    res.end(`\r\n---\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}\r\n-----\r\n`);
  } else {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(body);
  }
}

/** Keys on the GraphQL endpoint (HTTP, SSE, multipart) and /metrics (admin only); /health, /ready and the viewer's files stay open. */
export function withApiKeys(keys: ApiKeys, graphqlPath: string, next: NodeHandler): NodeHandler {
  return (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if ((path !== graphqlPath && path !== '/metrics') || req.method === 'OPTIONS') return next(req, res);
    const caller = keys.authenticate(tokenFromHeaders(req.headers));
    if (!caller) {
      return refuse(req, res, 401, keyError('UNAUTHENTICATED', 'An API key is required: Authorization: Bearer KEY or X-Api-Key: KEY'), { 'www-authenticate': 'Bearer' });
    }
    if (path === '/metrics' && !caller.admin) return refuse(req, res, 403, keyError('FORBIDDEN', 'Metrics need an admin key'));
    const wait = keys.take(caller);
    if (wait > 0) {
      return refuse(req, res, 429, keyError('RATE_LIMITED', `Key "${caller.key}" is over its request rate; retry in ${wait} s`, wait), { 'retry-after': String(wait) });
    }
    setCaller(req, caller);
    next(req, res);
  };
}

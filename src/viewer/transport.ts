// GraphQL over HTTP and over SSE ("distinct connections" mode) with nothing but fetch: a POST with
// `Accept: text/event-stream` streams `event: next` / `event: complete`. No client library, so the
// browser bundle stays a few kilobytes and works offline.

import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print } from 'graphql';

export interface GqlError {
  message: string;
  extensions?: { code?: string };
}

export interface GqlResult<R> {
  data?: R | null;
  errors?: GqlError[];
}

/** A failed operation; `code` is the server's extensions.code (or a transport code of our own). */
export class GatewayError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }

  static from(errors: readonly GqlError[]): GatewayError {
    const first = errors[0];
    const more = errors.length > 1 ? ` (+${errors.length - 1} more)` : '';
    return new GatewayError(first.extensions?.code ?? 'ERROR', first.message + more);
  }
}

const ENDPOINT = '/graphql';

/**
 * The query text plus, when codegen persisted the document, its hash as an Apollo-style
 * `persistedQuery` extension: a server started with `--trusted-only` runs the hash and ignores the
 * text, any other server runs the text and ignores the extension, so one request suits both.
 */
function body<V>(doc: TypedDocumentNode<unknown, V>, variables: V): string {
  const hash = (doc as { __meta__?: { hash?: string } }).__meta__?.hash;
  const extensions = hash ? { persistedQuery: { version: 1, sha256Hash: hash.replace(/^sha256:/, '') } } : undefined;
  return JSON.stringify({ query: print(doc), variables, extensions });
}

async function httpFailure(res: Response): Promise<GatewayError> {
  // The gateway answers GraphQL errors as JSON even on 4xx; anything else is a transport problem.
  const text = await res.text().catch(() => '');
  try {
    const parsed = JSON.parse(text) as GqlResult<unknown>;
    if (parsed.errors?.length) return GatewayError.from(parsed.errors);
  } catch {
    // not JSON: fall through
  }
  return new GatewayError(`HTTP_${res.status}`, text.slice(0, 300) || res.statusText);
}

export async function query<R, V>(doc: TypedDocumentNode<R, V>, variables: V, signal?: AbortSignal): Promise<R> {
  const res = await post(doc, variables, 'application/graphql-response+json, application/json', signal);
  if (!res.ok && !(res.headers.get('content-type') ?? '').includes('json')) throw await httpFailure(res);
  const result = (await res.json()) as GqlResult<R>;
  if (result.errors?.length) throw GatewayError.from(result.errors);
  if (!result.data) throw new GatewayError('NO_DATA', 'The server returned no data');
  return result.data;
}

/** POSTs one operation; a failure to connect becomes a NETWORK error (an abort stays an abort). */
async function post<R, V>(doc: TypedDocumentNode<R, V>, variables: V, accept: string, signal?: AbortSignal): Promise<Response> {
  try {
    return await fetch(ENDPOINT, { method: 'POST', headers: { 'content-type': 'application/json', accept }, body: body(doc, variables), signal });
  } catch (err) {
    throw networkError(err);
  }
}

function networkError(err: unknown): Error {
  if (err instanceof DOMException && err.name === 'AbortError') return err;
  return new GatewayError('NETWORK', `Could not reach the gateway: ${err instanceof Error ? err.message : String(err)}`);
}

/**
 * Every result of a subscription, in order. Errors inside a result are yielded, not thrown, so the
 * caller can tell a failed start from a failure after some layers arrived. Aborting `signal` closes
 * the connection, which cancels the server's work between layers.
 */
export async function* subscribe<R, V>(
  doc: TypedDocumentNode<R, V>,
  variables: V,
  signal: AbortSignal,
): AsyncGenerator<GqlResult<R>> {
  const res = await post(doc, variables, 'text/event-stream', signal);
  const type = res.headers.get('content-type') ?? '';
  if (!type.includes('text/event-stream') || !res.body) {
    // Rejected before a stream opened (e.g. a parse error or a 4xx): one JSON result.
    if (!type.includes('json')) throw await httpFailure(res);
    yield (await res.json()) as GqlResult<R>;
    return;
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer = (buffer + value).replace(/\r\n?/g, '\n');
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue; // keep-alive comment
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') event = val;
          else if (field === 'data') data.push(val);
        }
        if (event === 'complete') return;
        if (event === 'next' && data.length) yield JSON.parse(data.join('\n')) as GqlResult<R>;
      }
    }
  } catch (err) {
    throw networkError(err);
  } finally {
    reader.cancel().catch(() => undefined);
  }
}

// How the viewer talks to the gateway: plain fetch for queries (GraphQL over HTTP) and graphql-sse's
// client for the layer-by-layer subscription (SSE, "distinct connections" mode). createViewer()
// takes a Transport, so a test or an embedding page can hand it another one.

import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print } from 'graphql';
import { createClient, NetworkError } from 'graphql-sse';

export interface GqlError {
  message: string;
  /** `retryAfter`: seconds, on RATE_LIMITED. */
  extensions?: { code?: string; retryAfter?: number };
}

export interface GqlResult<R> {
  data?: R | null;
  errors?: readonly GqlError[];
}

/** A failed operation; `code` is the server's extensions.code (or a transport code of our own). */
export class GatewayError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** Seconds to wait before retrying (RATE_LIMITED), when the server said. */
    readonly retryAfter?: number,
  ) {
    super(message);
  }

  static from(errors: readonly GqlError[]): GatewayError {
    const first = errors[0];
    const more = errors.length > 1 ? ` (+${errors.length - 1} more)` : '';
    const retry = first.extensions?.retryAfter;
    return new GatewayError(first.extensions?.code ?? 'ERROR', first.message + more, typeof retry === 'number' ? retry : undefined);
  }
}

export interface Transport {
  query<R, V>(doc: TypedDocumentNode<R, V>, variables: V, signal?: AbortSignal): Promise<R>;
  /**
   * Every result of a subscription, in order. Errors inside a result are yielded, not thrown, so the
   * caller can tell a failed start from a failure after some layers arrived. Aborting `signal`
   * closes the connection, which cancels the server's work between layers, and ends the iteration
   * with an AbortError.
   */
  subscribe<R, V>(doc: TypedDocumentNode<R, V>, variables: V, signal: AbortSignal): AsyncIterable<GqlResult<R>>;
}

/**
 * The query text plus, when codegen persisted the document, its hash as an Apollo-style
 * `persistedQuery` extension: a server started with `--trusted-only` runs the hash and ignores the
 * text, any other server runs the text and ignores the extension, so one request suits both.
 */
function request<V>(doc: TypedDocumentNode<unknown, V>, variables: V) {
  const hash = (doc as { __meta__?: { hash?: string } }).__meta__?.hash;
  const extensions = hash ? { persistedQuery: { version: 1, sha256Hash: hash.replace(/^sha256:/, '') } } : undefined;
  return { query: print(doc), variables: variables as Record<string, unknown>, extensions };
}

/** A non-2xx answer: the gateway sends GraphQL errors as JSON even then; anything else is transport. */
async function httpFailure(res: Response): Promise<GatewayError> {
  const text = await res.text().catch(() => '');
  try {
    const parsed = JSON.parse(text) as GqlResult<unknown>;
    if (parsed.errors?.length) return GatewayError.from(parsed.errors);
  } catch {
    // not JSON: fall through
  }
  return new GatewayError(`HTTP_${res.status}`, text.slice(0, 300) || res.statusText);
}

function isAbort(err: unknown): boolean {
  return err instanceof DOMException && err.name === 'AbortError';
}

function networkError(err: unknown): GatewayError {
  return new GatewayError('NETWORK', `Could not reach the gateway: ${err instanceof Error ? err.message : String(err)}`);
}

export interface TransportOptions {
  /**
   * The API key to send (servers started with --api-keys), read before every request and stream:
   * sent as `Authorization: Bearer KEY`, the header the gateway accepts on HTTP and SSE alike.
   */
  apiKey?: () => string | null;
}

export function httpTransport(endpoint = '/graphql', options: TransportOptions = {}): Transport {
  const auth = (): Record<string, string> => {
    const key = options.apiKey?.();
    return key ? { authorization: `Bearer ${key}` } : {};
  };
  const sse = createClient({ url: endpoint, singleConnection: false, retryAttempts: 0, headers: auth });

  async function query<R, V>(doc: TypedDocumentNode<R, V>, variables: V, signal?: AbortSignal): Promise<R> {
    let res: Response;
    try {
      res = await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', ...auth() },
        body: JSON.stringify(request(doc, variables)),
        signal,
      });
    } catch (err) {
      throw isAbort(err) ? err : networkError(err);
    }
    if (!res.ok && !(res.headers.get('content-type') ?? '').includes('json')) throw await httpFailure(res);
    const result = (await res.json()) as GqlResult<R>;
    if (result.errors?.length) throw GatewayError.from(result.errors);
    if (!result.data) throw new GatewayError('NO_DATA', 'The server returned no data');
    return result.data;
  }

  async function* subscribe<R, V>(doc: TypedDocumentNode<R, V>, variables: V, signal: AbortSignal): AsyncGenerator<GqlResult<R>> {
    const queue: Array<GqlResult<R>> = [];
    let done = false;
    let failure: unknown = null;
    let wake = () => {};
    const dispose = sse.subscribe<R>(request(doc, variables), {
      next: (value) => {
        queue.push(value as GqlResult<R>);
        wake();
      },
      error: (err) => {
        failure = err;
        done = true;
        wake();
      },
      complete: () => {
        done = true;
        wake();
      },
    });
    const onAbort = () => {
      failure = new DOMException('The subscription was stopped', 'AbortError');
      done = true;
      wake();
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        while (queue.length && !signal.aborted) yield queue.shift()!;
        if (done) break;
        await new Promise<void>((resolve) => (wake = resolve));
      }
      if (failure) throw failure;
    } catch (err) {
      if (isAbort(err)) throw err;
      // Rejected before a stream opened (a 4xx with GraphQL errors) or the connection failed.
      if (err instanceof NetworkError && err.response) throw await httpFailure(err.response as Response);
      throw err instanceof GatewayError ? err : networkError(err);
    } finally {
      signal.removeEventListener('abort', onAbort);
      dispose();
    }
  }

  return { query, subscribe };
}

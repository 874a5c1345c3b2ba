// graphql-ws on the yoga endpoint. Every operation goes through yoga's envelop (armor, masking,
// trusted documents) and failures come back as GraphQLError[] from onSubscribe: a throw there
// would close the socket (4500) and end every other subscription on it.

import type { IncomingMessage, Server } from 'node:http';
import { GraphQLError, type ExecutionArgs } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import type { YogaServerInstance } from 'graphql-yoga';
import { originAllowed } from './origin.js';
import { peerAddress, StreamCounts } from './stream-caps.js';
import { ConnectionCounts, errorBody } from './connection-caps.js';
import { callerOf, keyError, setCaller, tokenFromHeaders, type ApiKeys } from './api-keys.js';
import { resolveDocument, type TrustedDocumentsOptions } from './trusted-documents.js';

interface EnvelopedRoot {
  execute: (args: ExecutionArgs) => unknown;
  subscribe: (args: ExecutionArgs) => unknown;
}

export interface WsOptions {
  trustedDocuments?: TrustedDocumentsOptions;
  /** permessage-deflate (RFC 7692) when the client offers it; default false. */
  compression?: boolean;
  /** Largest message accepted (bytes); larger ones close the socket with 1009. Same as the HTTP body limit. */
  maxPayload: number;
  /** Browser origins allowed to open a socket; null: any. */
  allowedOrigins: Set<string> | null;
  /** Operations one socket may run at once (default 8). */
  maxOperationsPerSocket?: number;
  /** Operations all sockets of one client address may run at once (default 32). */
  maxOperationsPerAddress?: number;
  /** Shared with the SSE cap: the address's streamed HTTP responses count toward maxOperationsPerAddress too. */
  streams?: StreamCounts;
  /** Open sockets (with SSE streams, when shared with stream-caps) per client address and in all; default 32 and 1024. */
  connections?: ConnectionCounts;
  /** With keys on, each operation needs one (connection_init { apiKey } or the upgrade's headers) and is rate-limited. */
  apiKeys?: ApiKeys;
}

interface SocketContext {
  subscriptions: Record<string, unknown>;
  connectionParams?: Readonly<Record<string, unknown>>;
  extra: { request: IncomingMessage; socket: { readyState: number; send(data: string): void; close(code: number, reason: string): void } };
}

function keyErrorArgs(e: ReturnType<typeof keyError>): [string, { extensions: Record<string, unknown> }] {
  return [e.message, { extensions: e.extensions }];
}

function unavailable(): GraphQLError {
  return new GraphQLError('The server is shutting down; retry on another instance', { extensions: { code: 'UNAVAILABLE' } });
}

function tooMany(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' } });
}

// Each message is deflated and sync-flushed on its own (nothing waits for the next one), with the
// window kept across messages, so a LayerResult mostly costs what differs from the previous ones.
// Small messages (LensStarted, pings, errors) are not worth a deflate call. A socket keeps its
// deflate context from its first compressed message until it closes, so the window is bounded: 13
// bits (announced to the client as server_max_window_bits) instead of zlib's 15 took the context
// from 250 to 152 KiB of RSS for 154.2 instead of 153.2 KiB of the streamed 80-layer lens; 12 bits
// saved 16 KiB more for +1.7 KiB, 10 bits cost +20 KiB on the wire. memLevel is left at 8: Node's
// zlib (Chromium's) sizes its hash table regardless, so lower levels saved ≤ 11 KiB and cost bytes.
// Measured by `npm run bench -- deflate` (docs/wire-format.md#compression).
export const PER_MESSAGE_DEFLATE = {
  threshold: 1024,
  zlibDeflateOptions: { level: 6 },
  serverMaxWindowBits: 13,
  serverNoContextTakeover: false,
  clientNoContextTakeover: false,
} as const;

export function attachGraphQLWs(
  server: Server,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  yoga: YogaServerInstance<any, any>,
  options: WsOptions,
) {
  const perSocket = options.maxOperationsPerSocket ?? 8;
  const streams = options.streams ?? new StreamCounts(options.maxOperationsPerAddress ?? 32);
  const perAddress = streams.perAddress;
  // graphql-ws keeps each socket's running operations in ctx.subscriptions (the new one included
  // by the time onSubscribe runs); sockets are grouped by address to count them per client.
  const byAddress = new Map<string, Set<SocketContext>>();
  const address = (ctx: SocketContext) => peerAddress(ctx.extra.request);
  const running = (ctx: SocketContext) => Object.keys(ctx.subscriptions).length;
  streams.wsOperations = (key) => [...(byAddress.get(key) ?? [])].reduce((n, c) => n + running(c), 0);
  const connections = options.connections ?? new ConnectionCounts();
  let draining = false;
  type Done = (ok: boolean, status?: number, body?: string, headers?: Record<string, string>) => void;
  // Refused upgrades get the HTTP status and the coded JSON body that HTTP requests get.
  const refuse = (done: Done, status: number, message: string, code: string) =>
    done(false, status, errorBody(message, code), { 'Content-Type': 'application/json' });
  const wss = new WebSocketServer({
    server,
    path: yoga.graphqlEndpoint,
    maxPayload: options.maxPayload,
    verifyClient: ({ origin, req }: { origin?: string; req: IncomingMessage }, done: Done) => {
      if (draining) return refuse(done, 503, 'The server is shutting down; retry on another instance', 'UNAVAILABLE');
      if (!originAllowed(options.allowedOrigins, origin)) return refuse(done, 403, 'Origin not allowed', 'FORBIDDEN_ORIGIN');
      const full = connections.refusal(peerAddress(req));
      if (full) return refuse(done, full.status, full.message, full.code);
      // ws completes the upgrade within this call and emits 'connection' (counted below) before
      // the next upgrade is verified.
      return done(true);
    },
    perMessageDeflate: options.compression === true ? PER_MESSAGE_DEFLATE : false,
  });
  const disposable = useServer(
    {
      execute: (args) => (args.rootValue as EnvelopedRoot).execute(args) as never,
      subscribe: (args) => (args.rootValue as EnvelopedRoot).subscribe(args) as never,
      onConnect: (ctx) => {
        if (options.apiKeys) {
          // A socket without a valid key is acknowledged, and each of its operations is answered
          // with UNAUTHENTICATED: clients get a coded GraphQL error for the operation they sent
          // rather than a closed socket (a close event, retried or reported as a network error).
          const param = ctx.connectionParams?.apiKey;
          const caller = options.apiKeys.authenticate(typeof param === 'string' ? param : tokenFromHeaders(ctx.extra.request.headers));
          if (caller) setCaller(ctx.extra.request, caller);
        }
        const key = address(ctx);
        byAddress.set(key, (byAddress.get(key) ?? new Set()).add(ctx));
        return true;
      },
      onClose: (ctx) => {
        const key = address(ctx);
        byAddress.get(key)?.delete(ctx);
        if (byAddress.get(key)?.size === 0) byAddress.delete(key);
      },
      onSubscribe: async (ctx, _id, payload) => {
        if (draining) return [unavailable()];
        if (options.apiKeys) {
          const caller = callerOf(ctx.extra.request);
          if (!caller) return [new GraphQLError(...keyErrorArgs(keyError('UNAUTHENTICATED', 'An API key is required: connection_init { "apiKey": KEY }, or Authorization: Bearer KEY on the upgrade')))];
          const wait = options.apiKeys.take(caller);
          if (wait > 0) return [new GraphQLError(...keyErrorArgs(keyError('RATE_LIMITED', `Key "${caller.key}" is over its request rate; retry in ${wait} s`, wait)))];
        }
        if (running(ctx) > perSocket) return [tooMany(`This socket already runs ${perSocket} operations; complete one first`)];
        if (streams.total(address(ctx)) > perAddress) {
          return [tooMany(`This client already runs ${perAddress} streamed operations (WebSocket and SSE together); complete one first`)];
        }
        try {
          let query = payload.query;
          if (options.trustedDocuments) {
            const resolved = resolveDocument(options.trustedDocuments, {
              query: payload.query,
              documentId: (payload as { documentId?: unknown }).documentId,
              extensions: payload.extensions,
            });
            if (resolved instanceof GraphQLError) return [resolved];
            query = resolved;
          }
          const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
            ...ctx,
            req: ctx.extra.request,
            socket: ctx.extra.socket,
            params: { ...payload, query },
          });
          const document = parse(query);
          const errors = validate(schema, document);
          if (errors.length > 0) return errors;
          const args: ExecutionArgs = {
            schema,
            operationName: payload.operationName,
            document,
            variableValues: payload.variables,
            contextValue: await contextFactory(),
            rootValue: { execute, subscribe } satisfies EnvelopedRoot,
          };
          return args;
        } catch (err) {
          // Syntax errors and armor's token limit throw from parse().
          if (err instanceof GraphQLError) return [err];
          return [new GraphQLError('Unexpected error.', { extensions: { code: 'INTERNAL' } })];
        }
      },
    },
    wss,
  );
  // graphql-ws logs every socket 'error' as an internal error and closes 4500. The errors ws emits
  // itself (code WS_ERR_*: a message over maxPayload, a bad frame, invalid UTF-8) are the client's:
  // ws has already closed the socket with the fitting code (1009, 1002, 1007), so they are not
  // logged. Registered after useServer's listener, so this replaces the one it just added.
  wss.on('connection', (socket, req: IncomingMessage) => {
    connections.hold(peerAddress(req), (release) => socket.once('close', release));
    const theirs = socket.listeners('error');
    socket.removeAllListeners('error');
    socket.on('error', (err: Error & { code?: string }) => {
      if (typeof err.code === 'string' && err.code.startsWith('WS_ERR_')) return;
      for (const listener of theirs) (listener as (e: Error) => void).call(socket, err);
    });
  });
  const contexts = () => [...byAddress.values()].flatMap((set) => [...set]);
  return {
    wss,
    /** New sockets get 503 and new operations UNAVAILABLE; running operations go on (to end with CANCELLED). */
    startDraining(): void {
      draining = true;
    },
    /** Operations running on all sockets. */
    running(): number {
      return contexts().reduce((n, c) => n + running(c), 0);
    },
    /**
     * Backstop before the 1001 close: every operation still running gets a CANCELLED error message,
     * so no client sees its socket close without being told why its operation ended.
     */
    cancelRunning(): void {
      const payload = [{ message: 'The server is shutting down', extensions: { code: 'CANCELLED' } }];
      for (const ctx of contexts()) {
        if (ctx.extra.socket.readyState !== 1) continue;
        for (const id of Object.keys(ctx.subscriptions)) ctx.extra.socket.send(JSON.stringify({ id, type: 'error', payload }));
      }
    },
    /** Closes every socket with 1001 (going away) and the ws server. */
    async dispose(): Promise<void> {
      await disposable.dispose();
    },
  };
}

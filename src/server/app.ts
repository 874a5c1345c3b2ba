// buildApp(): node:http + graphql-yoga (HTTP, GraphQL over SSE, @defer/@stream, GraphiQL in dev),
// graphql-ws on the same path, /health and /ready[?model=id], limits, CORS, and an orderly stop().

import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import type { GraphQLArmorConfig } from '@escape.tech/graphql-armor-types';
import { useDeferStream } from '@graphql-yoga/plugin-defer-stream';
import { GraphQLError, type GraphQLSchema } from 'graphql';
import { createYoga, maskError, useReadinessCheck, type Plugin, type YogaServerOptions } from 'graphql-yoga';
import { toGraphQLError } from '../../resolvers/errors.js';
import { LensError } from '../errors.js';
import { DEFAULT_ARMOR } from './armor.js';
import { codedArmor, useErrorCodes } from './error-codes.js';
import { useListArgumentCost } from './list-cost.js';
import { withBodyLimit, type NodeHandler } from './body-limit.js';
import type { ModelRegistry } from './models.js';
import { readiness } from './readiness.js';
import type { ResultStore } from './result-store.js';
import { attachGraphQLWs } from './ws.js';
import { StreamCounts, withStreamCaps } from './stream-caps.js';
import { ConnectionCounts } from './connection-caps.js';
import { HttpDrain } from './drain.js';
import { callerOf, withApiKeys, type ApiKeys, type Caller } from './api-keys.js';
import { allowedOrigins, corsOptions, withOriginCheck } from './origin.js';
import { useCompression } from './compression.js';
import { useJsonInTurns } from './json-in-turns.js';
import { operationNames, useLensMetrics } from './metrics.js';
import { useTrustedDocuments, type TrustedDocumentsOptions } from './trusted-documents.js';
import { serveViewer } from './viewer.js';

/** The GraphQL API the server carries (resolvers/index.ts's gatewayApi() in production). */
export interface GraphQLApi {
  schema: GraphQLSchema;
  /** Built per HTTP request and per graphql-ws subscription; `signal` aborts when the client goes away. */
  context(signal?: AbortSignal, client?: string, caller?: Caller): object;
}

export interface AppOptions {
  registry: ModelRegistry;
  api: GraphQLApi;
  /** The store the api keeps results in, for its size and evictions in /metrics. */
  store?: Pick<ResultStore, 'stats'>;
  /** 0 picks a free port. Default: PORT env or 4000. */
  port?: number;
  host?: string;
  /** A request body must arrive within this (default 10 s; 408 REQUEST_TIMEOUT), headers too. */
  bodyTimeoutMs?: number;
  /** Largest accepted request body; default 64 KiB (lens inputs are small). */
  bodyLimitBytes?: number;
  /** graphql-ws operations one socket may run at once (default 8). */
  maxOperationsPerSocket?: number;
  /** Streamed operations (graphql-ws operations and SSE/multipart responses together) one client address may run at once (default 32). */
  maxOperationsPerAddress?: number;
  /** Open graphql-ws sockets and SSE (or multipart) streams together that one client address may hold (default 32). */
  maxConnectionsPerAddress?: number;
  /** Open graphql-ws sockets and SSE (or multipart) streams together in the whole server (default 1024). */
  maxConnections?: number;
  /**
   * yoga CORS options; false turns CORS headers off. Default: any origin, no credentials. An origin
   * list is also enforced: requests and WebSocket upgrades from other origins get 403.
   */
  cors?: YogaServerOptions<object, object>['cors'];
  /** Overrides the graphql-armor defaults (depth, cost, aliases, tokens, directives). */
  armor?: GraphQLArmorConfig;
  graphiql?: boolean;
  logging?: boolean | 'debug' | 'info' | 'warn' | 'error';
  /** gzip whole JSON responses when the client accepts it (default true). */
  compression?: boolean;
  /**
   * Also compress streams when the client offers it: SSE/multipart gzip flushed after every event,
   * permessage-deflate on graphql-ws (default true; docs/wire-format.md has the measurements).
   */
  streamCompression?: boolean;
  /** Persisted operations (see trusted-documents.ts); enforced on HTTP and graphql-ws alike. */
  trustedDocuments?: TrustedDocumentsOptions;
  /** Documents whose operation names label metrics (besides trusted documents); other names count as "other". */
  knownDocuments?: Iterable<string>;
  /** Prometheus metrics at GET /metrics (default true). */
  metrics?: boolean;
  /** Extra yoga plugins. */
  plugins?: Plugin[];
  /**
   * stop() waits this long (default 5 s) for in-flight HTTP, SSE and graphql-ws operations to be
   * answered (lens work ends with CANCELLED) before ending what is left.
   */
  drainMs?: number;
  /** API keys (api-keys.ts): when set, /graphql (HTTP, SSE, graphql-ws) and /metrics need a key. */
  apiKeys?: ApiKeys;
}

export interface App {
  server: Server;
  start(): Promise<{ port: number; url: string }>;
  stop(): Promise<void>;
}

/** Lens errors that slipped past a resolver keep their code; anything else becomes INTERNAL. */
function maskGatewayError(error: unknown, message: string, isDev?: boolean): Error {
  const original = error instanceof GraphQLError ? error.originalError : error;
  if (original instanceof LensError) {
    const mapped = toGraphQLError(original);
    return new GraphQLError(mapped.message, {
      nodes: error instanceof GraphQLError ? error.nodes : undefined,
      path: error instanceof GraphQLError ? error.path : undefined,
      extensions: mapped.extensions,
    });
  }
  const masked = maskError(error, message, isDev);
  if (masked instanceof GraphQLError && masked.extensions.code === 'INTERNAL_SERVER_ERROR') {
    (masked.extensions as Record<string, unknown>).code = 'INTERNAL';
  }
  return masked;
}

/** Operation names allowed as metric labels: the clients' own documents and the trusted ones. */
function knownOperations(options: AppOptions): Set<string> {
  return operationNames([...(options.knownDocuments ?? []), ...(options.trustedDocuments?.documents.values() ?? [])]);
}

function withOptionalKeys(keys: ApiKeys | undefined, path: string, next: NodeHandler): NodeHandler {
  return keys ? withApiKeys(keys, path, next) : next;
}

export function buildApp(options: AppOptions): App {
  const { registry, api } = options;
  const armor = codedArmor(DEFAULT_ARMOR, options.armor);
  const yoga = createYoga<object, object>({
    schema: api.schema,
    graphqlEndpoint: '/graphql',
    healthCheckEndpoint: '/health',
    landingPage: false,
    graphiql: options.graphiql ?? process.env.NODE_ENV !== 'production',
    cors: corsOptions(options.cors),
    logging: options.logging ?? 'warn',
    maskedErrors: { maskError: maskGatewayError },
    context: (initial) => {
      const { request, req } = initial as { request?: Request; req?: IncomingMessage };
      // HTTP and graphql-ws (ws.ts passes the upgrade request as req) alike: the peer address.
      const caller = callerOf(req);
      // With keys on, the key (not the address) is who gets a fair share of the queue.
      return api.context(request?.signal, caller?.key ?? req?.socket?.remoteAddress, caller);
    },
    plugins: [
      EnvelopArmorPlugin(armor),
      useListArgumentCost(armor.costLimit?.maxCost ?? 5000),
      useErrorCodes(),
      useDeferStream(),
      useReadinessCheck({
        endpoint: '/ready',
        check: ({ request }) => readiness(registry, request),
      }),
      ...(options.trustedDocuments ? [useTrustedDocuments(options.trustedDocuments)] : []),
      useJsonInTurns(),
      ...(options.compression === false ? [] : [useCompression({ streams: options.streamCompression !== false })]),
      ...(options.metrics === false ? [] : [useLensMetrics(registry, options.store, knownOperations(options))]),
      ...(options.plugins ?? []),
    ],
  });

  // The web viewer answers GET / and /viewer/*; everything else goes on to GraphQL.
  const bodyLimit = options.bodyLimitBytes ?? 64 * 1024;
  const origins = allowedOrigins(options.cors);
  const bodyTimeoutMs = options.bodyTimeoutMs ?? 10_000;
  const streams = new StreamCounts(options.maxOperationsPerAddress ?? 32);
  const connections = new ConnectionCounts(options.maxConnectionsPerAddress, options.maxConnections);
  const drain = new HttpDrain();
  const server = createServer(
    // Node's own limits as the backstop for what the body timer does not see (slow headers); its
    // default request timeout is 300 s, checked every 30 s.
    { requestTimeout: bodyTimeoutMs * 3, headersTimeout: bodyTimeoutMs, connectionsCheckingInterval: Math.min(1000, bodyTimeoutMs) },
    drain.handler(
      withOriginCheck(
        origins,
        serveViewer(
          withOptionalKeys(options.apiKeys, yoga.graphqlEndpoint, withStreamCaps(streams, connections, yoga.graphqlEndpoint, withBodyLimit(bodyLimit, yoga, bodyTimeoutMs))),
        ),
      ),
    ),
  );
  const ws = attachGraphQLWs(server, yoga, {
    trustedDocuments: options.trustedDocuments,
    maxPayload: bodyLimit,
    allowedOrigins: origins,
    maxOperationsPerSocket: options.maxOperationsPerSocket,
    streams,
    connections,
    apiKeys: options.apiKeys,
    compression: options.streamCompression !== false,
  });
  let stopping: Promise<void> | null = null;

  return {
    server,
    start() {
      const port = options.port ?? Number(process.env.PORT ?? 4000);
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, options.host, () => {
          server.off('error', reject);
          const addr = server.address() as AddressInfo;
          const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
          resolve({ port: addr.port, url: `http://${host === '[::]' ? 'localhost' : host}:${addr.port}/graphql` });
        });
      });
    },
    stop() {
      // Order matters: stop accepting (no new connections, requests or sockets), cancel the work so
      // every operation ends with CANCELLED, wait until each in-flight HTTP response, SSE stream and
      // graphql-ws operation has been answered, and only then close sockets (1001) and connections.
      stopping ??= (async () => {
        drain.start();
        ws.startDraining();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        registry.cancelAll();
        const drainMs = options.drainMs ?? 5000;
        const deadline = Date.now() + drainMs;
        await drain.settled(drainMs);
        while (ws.running() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        ws.cancelRunning();
        drain.finish();
        await ws.dispose();
        await yoga.dispose();
        server.closeIdleConnections();
        const timer = setTimeout(() => server.closeAllConnections(), 2000);
        await closed;
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
}

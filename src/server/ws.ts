// graphql-ws on the yoga endpoint. Every operation goes through yoga's envelop (armor, masking,
// trusted documents) and failures come back as GraphQLError[] from onSubscribe: a throw there
// would close the socket (4500) and end every other subscription on it.

import type { Server } from 'node:http';
import { GraphQLError, type ExecutionArgs } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import type { YogaServerInstance } from 'graphql-yoga';
import { resolveDocument, type TrustedDocumentsOptions } from './trusted-documents.js';

interface EnvelopedRoot {
  execute: (args: ExecutionArgs) => unknown;
  subscribe: (args: ExecutionArgs) => unknown;
}

export interface WsOptions {
  trustedDocuments?: TrustedDocumentsOptions;
  /** permessage-deflate (RFC 7692) when the client offers it; default false. */
  compression?: boolean;
}

// Each message is deflated and sync-flushed on its own (nothing waits for the next one), with the
// window kept across messages, so a LayerResult mostly costs what differs from the previous ones.
// Small messages (LensStarted, pings, errors) are not worth a deflate call.
const PER_MESSAGE_DEFLATE = {
  threshold: 1024,
  zlibDeflateOptions: { level: 6 },
  serverNoContextTakeover: false,
  clientNoContextTakeover: false,
} as const;

export function attachGraphQLWs(
  server: Server,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  yoga: YogaServerInstance<any, any>,
  options: WsOptions = {},
) {
  const wss = new WebSocketServer({
    server,
    path: yoga.graphqlEndpoint,
    perMessageDeflate: options.compression === true ? PER_MESSAGE_DEFLATE : false,
  });
  const disposable = useServer(
    {
      execute: (args) => (args.rootValue as EnvelopedRoot).execute(args) as never,
      subscribe: (args) => (args.rootValue as EnvelopedRoot).subscribe(args) as never,
      onSubscribe: async (ctx, _id, payload) => {
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
  return {
    wss,
    /** Closes every socket with 1001 (going away) and the ws server. */
    async dispose(): Promise<void> {
      await disposable.dispose();
    },
  };
}

// Trusted documents (persisted operations): clients send the sha256 id that codegen wrote to
// src/client/persisted-documents.json instead of the query text. With `allowArbitraryDocuments:
// false` nothing else runs — enforced on HTTP (useTrustedDocuments) and on graphql-ws (ws.ts calls
// resolveDocument in onSubscribe, since yoga's plugins only see HTTP requests).

import { readFileSync } from 'node:fs';
import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';

export interface TrustedDocumentsOptions {
  /** id ("sha256:<hex>") → document text. */
  documents: Map<string, string>;
  /** false: refuse any operation not sent by id (production); true: ids are a shortcut only. */
  allowArbitraryDocuments: boolean;
}

export function loadTrustedDocuments(file: string): Map<string, string> {
  return new Map(Object.entries(JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>));
}

interface PersistedQueryExtension {
  persistedQuery?: { sha256Hash?: string };
}

/** The document id a request names: `documentId`, or Apollo-style `extensions.persistedQuery`. */
function requestedId(documentId: unknown, extensions: unknown): string | null {
  if (typeof documentId === 'string' && documentId) return documentId;
  const hash = (extensions as PersistedQueryExtension | null | undefined)?.persistedQuery?.sha256Hash;
  return typeof hash === 'string' && hash ? `sha256:${hash}` : null;
}

/** The query to run, or why not. `query` is ignored when an id is given. */
export function resolveDocument(
  options: TrustedDocumentsOptions,
  request: { query?: string | null; documentId?: unknown; extensions?: unknown },
): string | GraphQLError {
  const id = requestedId(request.documentId, request.extensions);
  if (id) {
    const doc = options.documents.get(id);
    return (
      doc ??
      new GraphQLError(`Unknown document id ${id}`, {
        extensions: { code: 'PERSISTED_QUERY_NOT_FOUND', http: { status: 400 } },
      })
    );
  }
  if (!options.allowArbitraryDocuments) {
    return new GraphQLError('This server only runs trusted documents: send documentId', {
      extensions: { code: 'PERSISTED_QUERY_ONLY', http: { status: 400 } },
    });
  }
  return request.query ?? '';
}

export function useTrustedDocuments(options: TrustedDocumentsOptions): Plugin {
  return {
    onParams({ params, setParams }) {
      const raw = params as typeof params & { documentId?: unknown };
      const resolved = resolveDocument(options, raw);
      if (resolved instanceof GraphQLError) throw resolved;
      // yoga rejects unknown body keys, so `documentId` must not reach its parameter check.
      const { documentId: _id, ...rest } = raw;
      setParams({ ...rest, query: resolved });
    },
  };
}

// Every error a client can receive carries extensions.code. graphql-yoga codes its own request,
// parse and validation errors; this adds codes for graphql-armor's rejections (through armor's
// onReject callbacks), for variable coercion (graphql-js returns those from execute/subscribe
// without one), and a last pass over every result so nothing leaves uncoded.

import type { GraphQLArmorConfig } from '@escape.tech/graphql-armor-types';
import { GraphQLError, type ExecutionResult } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';

type Extensions = { code?: string; http?: { status?: number } };

/** Sets a code (and an HTTP status, when given) on an error that has none; a code once set stays. */
export function setCode(error: GraphQLError, code: string, status?: number): GraphQLError {
  const ext = error.extensions as Extensions;
  ext.code ||= code;
  if (status) {
    ext.http ||= {};
    ext.http.status ||= status;
  }
  return error;
}

const ARMOR_CODES: Record<keyof GraphQLArmorConfig, string> = {
  costLimit: 'COST_LIMIT_EXCEEDED',
  maxAliases: 'ALIAS_LIMIT_EXCEEDED',
  maxDepth: 'DEPTH_LIMIT_EXCEEDED',
  maxDirectives: 'DIRECTIVE_LIMIT_EXCEEDED',
  maxTokens: 'TOKEN_LIMIT_EXCEEDED',
  blockFieldSuggestion: 'GRAPHQL_VALIDATION_FAILED',
};

/** Armor options with an onReject that codes each protection's rejection. */
export function codedArmor(defaults: GraphQLArmorConfig, overrides: GraphQLArmorConfig = {}): GraphQLArmorConfig {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(ARMOR_CODES) as Array<keyof GraphQLArmorConfig>) {
    const merged = { ...defaults[key], ...overrides[key] } as { onReject?: unknown[] };
    if (key === 'blockFieldSuggestion') {
      out[key] = merged;
      continue;
    }
    out[key] = { ...merged, onReject: [(_ctx: unknown, err: GraphQLError) => setCode(err, ARMOR_CODES[key], 400), ...(merged.onReject ?? [])] };
  }
  return out as GraphQLArmorConfig;
}

/**
 * graphql-js reports bad variables and an unknown operation name from execute/subscribe as errors
 * without a path; errors raised by resolvers always have one (and are coded by the resolvers).
 */
function codeRequestErrors(result: unknown): void {
  const errors = (result as ExecutionResult | undefined)?.errors;
  for (const e of errors ?? []) if (e instanceof GraphQLError && !e.path) setCode(e, 'BAD_USER_INPUT');
}

function codeRemaining(result: unknown): void {
  for (const e of (result as ExecutionResult | undefined)?.errors ?? []) {
    if (e instanceof GraphQLError) setCode(e, e.path ? 'INTERNAL' : 'BAD_REQUEST');
  }
}

export function useErrorCodes(): Plugin {
  return {
    onExecute: () => ({
      onExecuteDone: ({ result }) => {
        if (!isAsyncIterable(result)) codeRequestErrors(result);
      },
    }),
    onSubscribe: () => ({
      onSubscribeResult: ({ result }) => {
        if (!isAsyncIterable(result)) codeRequestErrors(result);
      },
    }),
    onResultProcess({ result }) {
      for (const r of Array.isArray(result) ? result : [result]) if (!isAsyncIterable(r)) codeRemaining(r);
    },
  };
}

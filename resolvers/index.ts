// The GraphQL API as one value the server is given: the schema, and the per-operation context
// built over the services the caller owns (cli/serve.ts wires them; so do tests and benchmarks).

import type { GraphQLSchema } from 'graphql';
import { createContext, type GatewayContext } from './context.js';
import { schema } from './schema.js';
import { DEFAULT_LIMITS, type Caller, type GatewayLimits, type ModelSource, type ResultStore } from './services.js';

export { schema };
export type { GatewayContext } from './context.js';
export * from './services.js';

export interface GatewayApi {
  schema: GraphQLSchema;
  /** `signal` aborts when the client goes away; `client` identifies it for fair queueing. */
  context(signal?: AbortSignal, client?: string, caller?: Caller): GatewayContext;
}

export function gatewayApi(services: { registry: ModelSource; store: ResultStore; limits?: Partial<GatewayLimits> }): GatewayApi {
  const resolved = { registry: services.registry, store: services.store, limits: { ...DEFAULT_LIMITS, ...services.limits } };
  return { schema, context: (signal, client, caller) => createContext(resolved, signal, client, caller) };
}

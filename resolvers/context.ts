// What every resolver sees. Built per HTTP request, and once per subscription over graphql-ws.

import { createLoaders, type Loaders } from './loaders.js';
import { ResponseBudget } from './response-budget.js';
import type { Caller, GatewayServices } from './services.js';

export type { GatewayLimits, GatewayServices } from './services.js';
export { DEFAULT_LIMITS } from './services.js';

export interface GatewayContext extends GatewayServices {
  loaders: Loaders;
  /** Who is asking (client address, or API key name), for a fair share of each model's queue. */
  client?: string;
  /** The API key, when the server runs with keys: results it creates are its own. */
  caller?: Caller;
  /** Response size still allowed for this operation. */
  budget: ResponseBudget;
  /** Aborts when the HTTP client goes away, so its queued or running lens work is dropped. */
  signal?: AbortSignal;
}

export function createContext(services: GatewayServices, signal?: AbortSignal, client?: string, caller?: Caller): GatewayContext {
  return { ...services, loaders: createLoaders(services), budget: new ResponseBudget(services.limits.maxResponseBytes), signal, client, caller };
}

// What every resolver sees. Built per HTTP request, and once per subscription over graphql-ws.

import { createLoaders, type Loaders } from './loaders.js';
import { ResponseBudget } from './response-budget.js';
import type { GatewayServices } from './services.js';

export type { GatewayLimits, GatewayServices } from './services.js';
export { DEFAULT_LIMITS } from './services.js';

export interface GatewayContext extends GatewayServices {
  loaders: Loaders;
  /** Response size still allowed for this operation. */
  budget: ResponseBudget;
  /** Aborts when the HTTP client goes away, so its queued or running lens work is dropped. */
  signal?: AbortSignal;
}

export function createContext(services: GatewayServices, signal?: AbortSignal): GatewayContext {
  return { ...services, loaders: createLoaders(services), budget: new ResponseBudget(services.limits.maxResponseBytes), signal };
}

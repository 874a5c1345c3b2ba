// What every resolver sees. Built per HTTP request, and once per subscription over graphql-ws.

import type { ModelRegistry } from '../src/server/models.js';
import type { ResultStore } from '../src/server/result-store.js';
import { createLoaders, type Loaders } from './loaders.js';

export interface GatewayLimits {
  /** Largest top-k a client may ask for (bounds response size independently of vocab). */
  maxTopK: number;
  /** Longest prompt in characters, checked before tokenizing. */
  maxPromptChars: number;
  /** Most tokens one request may generate (LensInput.generate.maxNewTokens). */
  maxNewTokens: number;
}

export const DEFAULT_LIMITS: GatewayLimits = { maxTopK: 100, maxPromptChars: 20_000, maxNewTokens: 64 };

export interface GatewayServices {
  registry: ModelRegistry;
  store: ResultStore;
  limits: GatewayLimits;
}

export interface GatewayContext extends GatewayServices {
  loaders: Loaders;
  /** Aborts when the HTTP client goes away, so its queued or running lens work is dropped. */
  signal?: AbortSignal;
}

export function createContext(services: GatewayServices, signal?: AbortSignal): GatewayContext {
  return { ...services, loaders: createLoaders(services), signal };
}

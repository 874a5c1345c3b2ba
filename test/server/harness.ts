// Starts a real gateway on a free port and talks to it over HTTP, graphql-ws and SSE with the
// generated typed documents.

import { print, type FormattedExecutionResult } from 'graphql';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import { createClient as createSseClient, type Client as SseClient } from 'graphql-sse';
import WebSocket from 'ws';
import { afterAll, beforeAll } from 'vitest';
import { buildApp, type AppOptions } from '../../src/server/app.js';
import { ModelRegistry } from '../../src/server/models.js';
import { MemoryResultStore, type ResultStore } from '../../src/server/result-store.js';
import { gatewayApi, type GatewayLimits } from '../../resolvers/index.js';
import type { LensModel } from '../../src/lens/types.js';
import clientDocuments from '../../src/client/persisted-documents.json' with { type: 'json' };
import type { SchedulerOptions } from '../../src/server/scheduler.js';
import { openTinyGpt2 } from './models.js';

export interface Gateway {
  url: string;
  wsUrl: string;
  registry: ModelRegistry;
  stop(): Promise<void>;
}

export async function startGateway(
  models: LensModel[],
  options: Omit<AppOptions, 'registry' | 'api' | 'store'> & { scheduler?: SchedulerOptions; limits?: Partial<GatewayLimits>; store?: ResultStore } = {},
): Promise<Gateway> {
  const { scheduler, limits, store = new MemoryResultStore(), ...appOptions } = options;
  const registry = new ModelRegistry(scheduler);
  for (const m of models) registry.add(m);
  registry.markReady();
  const api = gatewayApi({ registry, store, limits });
  const app = buildApp({ logging: false, knownDocuments: Object.values(clientDocuments as Record<string, string>), ...appOptions, registry, api, store, port: 0, host: '127.0.0.1' });
  const { url } = await app.start();
  return { url, wsUrl: url.replace(/^http/, 'ws'), registry, stop: () => app.stop() };
}

export async function http<R, V>(
  url: string,
  doc: TypedDocumentNode<R, V>,
  variables?: V,
  init: { headers?: Record<string, string> } = {},
): Promise<FormattedExecutionResult<R> & { status: number }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', ...init.headers },
    body: JSON.stringify({ query: print(doc), variables }),
  });
  const body = (await res.json()) as FormattedExecutionResult<R>;
  return { ...body, status: res.status };
}

export function wsClient(url: string, extra: Partial<Parameters<typeof createWsClient>[0]> = {}): WsClient {
  return createWsClient({ url, webSocketImpl: WebSocket, retryAttempts: 0, lazy: true, ...extra });
}

export function sseClient(url: string): SseClient {
  return createSseClient({ url, retryAttempts: 0 });
}

/** Every event of a subscription, in order (errors included as results). */
export async function collect<R, V>(
  client: WsClient | SseClient,
  doc: TypedDocumentNode<R, V>,
  variables: V,
): Promise<Array<FormattedExecutionResult<R>>> {
  const out: Array<FormattedExecutionResult<R>> = [];
  const iter = client.iterate<R>({ query: print(doc), variables: variables as Record<string, unknown> });
  for await (const ev of iter) out.push(ev as FormattedExecutionResult<R>);
  return out;
}

/** Delegates to a real model and counts what it does (layers reduced, batch sizes). Not a mock. */
export interface Instrumented {
  model: LensModel;
  layersComputed: number;
  batchSizes: number[];
}

/**
 * `layerDelayMs` stretches each layer (a busy wait inside onLayer, between two ORT runs) so tests that
 * cancel "halfway" keep working however fast the CPU lens gets; the model's work itself is real.
 */
export function instrument(model: LensModel, { layerDelayMs = 0 } = {}): Instrumented {
  const counts: Instrumented = {
    layersComputed: 0,
    batchSizes: [],
    model: {
      get info() {
        return model.info;
      },
      tokenize: (text) => model.tokenize(text),
      decode: (id) => model.decode(id),
      lens: (prompt, options) => model.lens(prompt, options),
      lensNaive: (prompt, options) => model.lensNaive(prompt, options),
      close: () => model.close(),
      lensBatch: (requests) => {
        counts.batchSizes.push(requests.length);
        return model.lensBatch(
          requests.map((r) => ({
            ...r,
            options: {
              ...r.options,
              onLayer: (e) => {
                counts.layersComputed++;
                for (const until = performance.now() + layerDelayMs; performance.now() < until; );
                r.options?.onLayer?.(e);
              },
            },
          })),
        );
      },
    },
  };
  return counts;
}

/** One gateway on the tiny GPT-2 for a whole test file: started before its tests, stopped after. */
export function serveTinyGpt2(receive: (served: { gw: Gateway; model: LensModel }) => void): void {
  let served: { gw: Gateway; model: LensModel } | undefined;
  beforeAll(async () => {
    const model = await openTinyGpt2();
    served = { model, gw: await startGateway([model]) };
    receive(served);
  });
  afterAll(async () => {
    await served?.gw.stop();
    await served?.model.close();
  });
}

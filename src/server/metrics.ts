// GET /metrics: Prometheus text format. yoga's prometheus plugin covers the GraphQL side (requests,
// phases, errors, HTTP durations); the lens side (queue depth, batches, requests per model) is read
// from each model's scheduler at scrape time, so nothing is counted twice or kept in sync by hand.

import { fillLabelsFnParamsMap } from '@envelop/prometheus';
import { createHistogram, usePrometheus } from '@graphql-yoga/plugin-prometheus';
import { getOperationAST, Kind, parse, type DocumentNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { ModelRegistry } from './models.js';
import type { ResultStore } from './result-store.js';

/**
 * Label values must come from a bounded set, or every client-chosen name becomes a series kept
 * forever: operations are labelled by name only when the name is one of `known` (the project's own
 * documents and the configured trusted documents), otherwise "other"; URLs by path only.
 */
export function operationNames(documents: Iterable<string>): Set<string> {
  const names = new Set<string>();
  for (const text of documents) {
    for (const def of parse(text).definitions) if (def.kind === Kind.OPERATION_DEFINITION && def.name) names.add(def.name.value);
  }
  return names;
}

export function useLensMetrics(
  models: ModelRegistry,
  store: Pick<ResultStore, 'stats'> | undefined,
  knownOperations: ReadonlySet<string>,
  registry = new Registry(),
): Plugin {
  const bucket = (name: string | undefined) => (name && knownOperations.has(name) ? name : name ? 'other' : 'Anonymous');
  collectDefaultMetrics({ register: registry });
  registerStoreMetrics(store, registry);
  const perModel = (read: (s: ReturnType<ModelRegistry['list']>[number]) => number) =>
    function (this: Gauge | Counter) {
      this.reset();
      for (const served of models.list()) {
        const value = read(served);
        if (this instanceof Gauge) this.set({ model: served.model.info.id }, value);
        else if (value > 0) this.inc({ model: served.model.info.id }, value);
      }
    };
  new Gauge({
    name: 'lensgate_queue_depth',
    help: 'Lens requests waiting or running, per model',
    labelNames: ['model'],
    registers: [registry],
    collect: perModel((s) => s.scheduler.getStats().queued + s.scheduler.getStats().running),
  });
  new Counter({
    name: 'lensgate_lens_requests_total',
    help: 'Lens requests that reached the model (after batching), per model',
    labelNames: ['model'],
    registers: [registry],
    collect: perModel((s) => s.scheduler.getStats().requests),
  });
  new Counter({
    name: 'lensgate_lens_batches_total',
    help: 'Padded forward passes run, per model (requests_total / batches_total = mean batch size)',
    labelNames: ['model'],
    registers: [registry],
    collect: perModel((s) => s.scheduler.getStats().batches),
  });
  new Counter({
    name: 'lensgate_cache_hits_total',
    help: 'Lens requests answered from the result store without running the model (identical earlier request), per model',
    labelNames: ['model'],
    registers: [registry],
    collect: perModel((s) => s.cache.hits),
  });
  new Counter({
    name: 'lensgate_cache_misses_total',
    help: 'Lens requests looked up in the cache and computed, per model (not counted before the model content hash is known)',
    labelNames: ['model'],
    registers: [registry],
    collect: perModel((s) => s.cache.misses),
  });
  new Gauge({
    name: 'lensgate_model_info',
    help: 'Served models (value 1) with their family, layer count, device and compute type',
    labelNames: ['model', 'model_type', 'layers', 'device', 'compute_type'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { model } of models.list()) {
        const i = model.info;
        this.set({ model: i.id, model_type: i.modelType, layers: String(i.numLayers), device: i.device, compute_type: i.computeType }, 1);
      }
    },
  });
  const prometheus = usePrometheus({
    endpoint: '/metrics',
    registry,
    // Error paths carry list indices (lens.cells.3.17): unbounded.
    labels: { path: false },
    metrics: {
      // Observed inside the parse hook, before the names below are bucketed: bucket here too.
      graphql_envelop_phase_parse: createHistogram({
        registry,
        histogram: { name: 'graphql_envelop_phase_parse', help: 'Time spent on running GraphQL "parse" function', labelNames: ['operationType', 'operationName'] },
        fillLabelsFn: (params) => ({ operationName: bucket(params.operationName), operationType: params.operationType ?? 'unknown' }),
        phases: ['parse'],
      }),
      graphql_yoga_http_duration: createHistogram({
        registry,
        histogram: {
          name: 'graphql_yoga_http_duration',
          help: 'Time spent on HTTP connection',
          labelNames: ['operationName', 'operationType', 'method', 'statusCode', 'url'],
        },
        fillLabelsFn: (params, { request, response }) => ({
          method: request.method,
          statusCode: response.status,
          operationType: params.operationType ?? 'unknown',
          operationName: bucket(params.operationName),
          url: new URL(request.url).pathname,
        }),
      }),
    },
  });
  return {
    onPluginInit({ addPlugin }) {
      addPlugin(prometheus);
      // Runs after the prometheus plugin's own parse hook has recorded the labels of this operation.
      addPlugin({
        onParse: ({ context }) =>
          ({ result }) => {
            const params = fillLabelsFnParamsMap.get(context);
            if (!params || result instanceof Error) return;
            const op = getOperationAST(result as DocumentNode, (context as { params?: { operationName?: string } }).params?.operationName);
            params.operationName = bucket(op?.name?.value ?? params.operationName);
            if (op) params.operationType = op.operation;
          },
      });
    },
  };
}

/** Size of the result store and what it evicted, read from store.stats() at scrape time. */
function registerStoreMetrics(store: Pick<ResultStore, 'stats'> | undefined, registry: Registry): void {
  if (!store?.stats) return;
  const stats = () => store.stats!();
  new Gauge({ name: 'lensgate_result_store_results', help: 'Lens results kept for lensResult(id)', registers: [registry], collect() { this.set(stats().results); } });
  new Gauge({ name: 'lensgate_result_store_bytes', help: 'Bytes held by kept lens results', registers: [registry], collect() { this.set(stats().bytes); } });
  new Gauge({ name: 'lensgate_result_store_max_bytes', help: 'Byte budget of the result store', registers: [registry], collect() { this.set(stats().maxBytes); } });
  new Counter({
    name: 'lensgate_result_store_evictions_total',
    help: 'Results dropped from the store: bytes (budget), count (cap), ttl (expired), too_large (bigger than the budget, never kept)',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(stats().evictions)) this.inc({ reason }, n);
    },
  });
}

// GET /metrics: Prometheus text format. yoga's prometheus plugin covers the GraphQL side (requests,
// phases, errors, HTTP durations); the lens side (queue depth, batches, requests per model) is read
// from each model's scheduler at scrape time, so nothing is counted twice or kept in sync by hand.

import { usePrometheus } from '@graphql-yoga/plugin-prometheus';
import type { Plugin } from 'graphql-yoga';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { ModelRegistry } from './models.js';
import type { ResultStore } from './result-store.js';

export function useLensMetrics(models: ModelRegistry, store: ResultStore, registry = new Registry()): Plugin {
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
  return usePrometheus({ endpoint: '/metrics', registry });
}

/** Size of the result store and what it evicted, read from store.stats() at scrape time. */
function registerStoreMetrics(store: ResultStore, registry: Registry): void {
  if (!store.stats) return;
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

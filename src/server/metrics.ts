// GET /metrics: Prometheus text format. yoga's prometheus plugin covers the GraphQL side (requests,
// phases, errors, HTTP durations); the lens side (queue depth, batches, requests per model) is read
// from each model's scheduler at scrape time, so nothing is counted twice or kept in sync by hand.

import { usePrometheus } from '@graphql-yoga/plugin-prometheus';
import type { Plugin } from 'graphql-yoga';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { ModelRegistry } from './models.js';

export function useLensMetrics(models: ModelRegistry, registry = new Registry()): Plugin {
  collectDefaultMetrics({ register: registry });
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
  return usePrometheus({ endpoint: '/metrics', registry });
}

// GET /ready (every configured model READY) and GET /ready?model=id (that one model), for load
// balancers and orchestrators: 200 when ready, 503 while loading or after a failed load, 404 for an
// id that is not configured. The JSON body says where each model stands.

import type { ModelRegistry, ModelState } from './models.js';

function summary(s: ModelState) {
  return {
    id: s.id,
    status: s.status,
    layersBuilt: s.layersBuilt,
    layersTotal: s.layersTotal,
    bytesMapped: s.bytesMapped,
    bytesTotal: s.bytesTotal,
    error: s.error,
  };
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' } });
}

export function readiness(registry: ModelRegistry, request: Request): Response {
  const id = new URL(request.url).searchParams.get('model');
  if (id !== null) {
    const s = registry.state(id);
    if (!s) return json(404, { ready: false, model: id, reason: 'no such model is configured' });
    return json(s.status === 'READY' ? 200 : 503, { ready: s.status === 'READY', model: summary(s) });
  }
  const models = registry.all();
  if (registry.isReady) return json(200, { ready: true, models: models.map(summary) });
  const reason = models.some((s) => s.status === 'LOADING') || models.length === 0 ? 'models loading' : 'model load failed';
  return json(503, { ready: false, reason, models: models.map(summary) });
}

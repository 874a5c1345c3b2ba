// Trusted-documents mode: only operations from the generated client (by sha256 id) run, over HTTP,
// SSE and graphql-ws alike; a refused operation on a socket leaves the others running.

import { join } from 'node:path';
import { print } from 'graphql';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { LensDocument, LensLayersDocument, ModelsDocument } from '../../src/client/graphql.js';
import type { LensModel } from '../../src/lens/types.js';
import { loadTrustedDocuments } from '../../src/server/trusted-documents.js';
import { sseClient, startGateway, wsClient, type Gateway } from './harness.js';
import { openTinyGpt2 } from './models.js';

let gw: Gateway;
let model: LensModel;
const idOf = (doc: unknown) => (doc as { __meta__: { hash: string } }).__meta__.hash;

beforeAll(async () => {
  model = await openTinyGpt2();
  const documents = loadTrustedDocuments(join(import.meta.dirname, '..', '..', 'src', 'client', 'persisted-documents.json'));
  gw = await startGateway([model], { trustedDocuments: { documents, allowArbitraryDocuments: false } });
});
afterAll(async () => {
  await gw.stop();
  await model.close();
});

async function postJson(body: unknown) {
  const res = await fetch(gw.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as { data?: any; errors?: Array<{ extensions?: { code?: string } }> } };
}

test('HTTP: a document sent by id runs; by Apollo persistedQuery hash too', async () => {
  const byId = await postJson({ documentId: idOf(ModelsDocument) });
  expect(byId.body).toMatchObject({ data: { models: [{ id: 'gpt2-tiny' }] } });
  const apq = await postJson({
    extensions: { persistedQuery: { version: 1, sha256Hash: idOf(LensDocument).replace(/^sha256:/, '') } },
    variables: { input: { model: 'gpt2-tiny', prompt: 'Hi there' } },
  });
  expect(apq.body.errors).toBeUndefined();
  expect(apq.body.data.lens.layers).toEqual([0, 1, 2]);
});

test('HTTP and SSE: arbitrary text and unknown ids are refused', async () => {
  const text = await postJson({ query: print(ModelsDocument) });
  expect(text.status).toBe(400);
  expect(text.body.errors![0].extensions!.code).toBe('PERSISTED_QUERY_ONLY');
  const unknown = await postJson({ documentId: 'sha256:0000' });
  expect(unknown.status).toBe(400);
  expect(unknown.body.errors![0].extensions!.code).toBe('PERSISTED_QUERY_NOT_FOUND');
  const sse = sseClient(gw.url);
  const events: unknown[] = [];
  const outcome = await (async () => {
    for await (const e of sse.iterate({ query: print(LensLayersDocument), variables: { input: { model: 'gpt2-tiny', prompt: 'x' } } })) events.push(e);
    return 'completed';
  })().catch((e: unknown) => e);
  sse.dispose();
  // graphql-sse reports a refused request as a NetworkError carrying the HTTP response.
  expect(events).toEqual([]);
  expect((outcome as { response?: Response }).response?.status).toBe(400);
});

test('graphql-ws: by id works, text is refused, and the refusal does not disturb the socket', async () => {
  const client = wsClient(gw.wsUrl);
  const input = { model: 'gpt2-tiny', prompt: 'The quick brown fox' };
  const refused = (async () => {
    const out: unknown[] = [];
    for await (const e of client.iterate({ query: print(LensLayersDocument), variables: { input } })) out.push(e);
    return out;
  })().catch((errs: unknown) => ({ thrown: errs }));
  const types: string[] = [];
  for await (const e of client.iterate<{ lensLayers: { __typename: string } }>({
    query: '',
    variables: { input },
    extensions: { persistedQuery: { sha256Hash: idOf(LensLayersDocument).replace(/^sha256:/, '') } },
  })) {
    types.push(e.data!.lensLayers.__typename);
  }
  expect(JSON.stringify(await refused)).toContain('PERSISTED_QUERY_ONLY');
  expect(types).toEqual(['LensStarted', 'LayerResult', 'LayerResult', 'LayerResult', 'LensCompleted']);
  await client.dispose();
});

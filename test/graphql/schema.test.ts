// The printed SDL and the generated client are checked in: both must match what the code produces,
// and the names of the public contract must stay exactly as they are.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate } from '@graphql-codegen/cli';
import { buildSchema, isObjectType, isUnionType, isInputObjectType, type GraphQLNamedType } from 'graphql';
import { describe, expect, test } from 'vitest';
import { printedSchema, SCHEMA_PATH } from '../../src/cli/print-schema.js';
import codegenConfig from '../../codegen.js';
import clientDocuments from '../../src/client/persisted-documents.json' with { type: 'json' };
import { startGateway } from '../server/harness.js';

const root = join(import.meta.dirname, '..', '..');

test('schema/schema.graphql is up to date (run `npm run schema:print`)', () => {
  expect(readFileSync(SCHEMA_PATH, 'utf8')).toBe(printedSchema());
});

test('the generated client in src/client is up to date (run `npm run codegen`)', { timeout: 60_000 }, async () => {
  const cwd = process.cwd();
  process.chdir(root);
  try {
    const outputs = (await generate({ ...codegenConfig, silent: true }, false)) as Array<{ filename: string; content: string }>;
    expect(outputs.length).toBeGreaterThan(0);
    for (const o of outputs) {
      expect(readFileSync(join(root, o.filename), 'utf8'), o.filename).toBe(o.content);
    }
  } finally {
    process.chdir(cwd);
  }
});

test('every generated client document passes the limits of the running server (query depth counts fragment spreads)', async () => {
  const gw = await startGateway([]);
  try {
    for (const text of Object.values(clientDocuments as Record<string, string>)) {
      const name = /(?:query|subscription) (\w+)/.exec(text)?.[1];
      // No model is served: a document runs into MODEL_NOT_FOUND (subscriptions answer as a stream),
      // unless the server refuses it before that, which is what this looks for.
      const res = await fetch(gw.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: text }) });
      const body = await res.text();
      const refused = /GRAPHQL_VALIDATION_FAILED|GRAPHQL_PARSE_FAILED|depth limit|limit of|exceeded/i.test(body) ? body.slice(0, 300) : null;
      expect(refused, name).toBeNull();
    }
  } finally {
    await gw.stop();
  }
});

describe('public contract: the names clients rely on', () => {
  const schema = buildSchema(readFileSync(SCHEMA_PATH, 'utf8'));
  const fields = (t: GraphQLNamedType | undefined | null) => {
    if (!t || !(isObjectType(t) || isInputObjectType(t))) throw new Error(`missing type ${t}`);
    return Object.fromEntries(Object.values(t.getFields()).map((f) => [f.name, String(f.type)]));
  };

  test('Query and Subscription', () => {
    const q = schema.getQueryType()!.getFields();
    expect(String(q.models.type)).toBe('[Model!]!');
    expect(String(q.model.type)).toBe('Model');
    expect(q.model.args.map((a) => `${a.name}: ${a.type}`)).toEqual(['id: ID!']);
    expect(String(q.tokenize.type)).toBe('[Token!]!');
    expect(q.tokenize.args.map((a) => `${a.name}: ${a.type}`)).toEqual(['model: ID!', 'text: String!']);
    expect(String(q.lens.type)).toBe('LensResult!');
    expect(q.lens.args.map((a) => `${a.name}: ${a.type}`)).toEqual(['input: LensInput!']);
    expect(q.lensResult.args.map((a) => `${a.name}: ${a.type}`)).toEqual(['id: ID!']);
    const s = schema.getSubscriptionType()!.getFields();
    expect(String(s.lensLayers.type)).toBe('LensEvent!');
    const union = schema.getType('LensEvent');
    expect(isUnionType(union) && union.getTypes().map((t) => t.name)).toEqual(['LensStarted', 'LayerResult', 'PositionResult', 'LensCompleted']);
  });

  test('types and fields', () => {
    // Descriptive fields are null only for a model that failed to load before its checkpoint was read.
    expect(fields(schema.getType('Model'))).toMatchObject({
      id: 'ID!', status: 'ModelStatus!', progress: 'ModelLoadProgress!', error: 'ModelLoadError',
      modelType: 'String', numLayers: 'Int', hiddenSize: 'Int', vocabSize: 'Int', maxPositions: 'Int',
      device: 'String', dtype: 'String', parameters: 'Float', deviceNote: 'String',
    });
    expect(fields(schema.getType('ModelLoadProgress'))).toEqual({
      layersBuilt: 'Int!', layersTotal: 'Int', bytesMapped: 'Float!', bytesTotal: 'Float', fraction: 'Float', elapsedMs: 'Float!',
    });
    expect(String(schema.getSubscriptionType()!.getFields().modelStatus.type)).toBe('Model!');
    expect(fields(schema.getType('Token'))).toEqual({ position: 'Int!', id: 'Int!', text: 'String!', generated: 'Boolean!' });
    expect(fields(schema.getType('LensInput'))).toMatchObject({
      model: 'ID!', prompt: 'String!', topK: 'Int', trackAcrossLayers: 'Boolean', layers: '[Int!]', stats: 'Boolean', points: '[LensPoint!]', generate: 'GenerateInput',
    });
    const input = schema.getType('LensInput');
    if (!isInputObjectType(input)) throw new Error('LensInput');
    expect(input.getFields().topK.defaultValue).toBe(5);
    expect(input.getFields().trackAcrossLayers.defaultValue).toBe(false);
    expect(fields(schema.getType('LensResult'))).toMatchObject({
      id: 'ID!', model: 'Model!', prompt: 'Prompt!', tokens: '[Token!]!', layers: '[Int!]!', topK: 'Int!',
      topIndices: '[[[Int!]!]!]!', topProbs: '[[[Float!]!]!]!', tracked: '[TrackedPosition!]', widget: 'JSON!',
      timings: 'LensTimings!', stats: 'LensStats', generation: 'Generation',
    });
    expect(fields(schema.getType('LensResult')).cells).toBeDefined();
    expect(fields(schema.getType('TrackedPosition'))).toEqual({
      position: 'Int!', tokenIds: '[Int!]!', tokens: '[Token!]!', probs: '[[Float!]!]!',
    });
    expect(fields(schema.getType('Prompt'))).toEqual({ id: 'ID!', text: 'String!', tokens: '[Token!]!' });
    expect(fields(schema.getType('LensStarted'))).toMatchObject({ resultId: 'ID!', tokens: '[Token!]!', layers: '[Int!]!' });
    expect(fields(schema.getType('LayerResult'))).toMatchObject({
      layer: 'Int!', index: 'Int!', count: 'Int!', topIndices: '[[Int!]!]!', topProbs: '[[Float!]!]!', cells: '[LensCell!]!',
    });
    expect(fields(schema.getType('LensCompleted'))).toEqual({ result: 'LensResult!' });
    expect(String(schema.getType('WidgetFormat'))).toBe('WidgetFormat');
    expect(String(schema.getType('LensStats') && fields(schema.getType('LensStats')).klToFinal)).toBe('[[Float!]!]!');
  });
});

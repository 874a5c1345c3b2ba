// Configures the Pothos builder only; each GraphQL type lives in its own file next to its fields.

import SchemaBuilder from '@pothos/core';
import { GraphQLError, Kind, type ValueNode } from 'graphql';
import type { PackedArray } from '../src/lens/packed.js';
import type { GatewayContext } from './context.js';

function literalToJson(node: ValueNode, variables: Record<string, unknown> | null | undefined): unknown {
  switch (node.kind) {
    case Kind.STRING:
    case Kind.BOOLEAN:
      return node.value;
    case Kind.INT:
    case Kind.FLOAT:
      return Number(node.value);
    case Kind.NULL:
      return null;
    case Kind.LIST:
      return node.values.map((v) => literalToJson(v, variables));
    case Kind.OBJECT:
      return Object.fromEntries(node.fields.map((f) => [f.name.value, literalToJson(f.value, variables)]));
    case Kind.VARIABLE:
      return variables?.[node.name.value];
    default:
      throw new GraphQLError('Unsupported JSON literal');
  }
}

export const builder = new SchemaBuilder<{
  Context: GatewayContext;
  // Non-null by default: lens shapes are always complete; the few optional fields say so explicitly.
  DefaultFieldNullability: false;
  Scalars: {
    JSON: { Input: unknown; Output: unknown };
    PackedArray: { Input: never; Output: PackedArray };
    ID: { Input: string; Output: string };
  };
}>({
  defaultFieldNullability: false,
});

builder.scalarType('JSON', {
  description: 'Arbitrary JSON value (used for the logitlenskit widget payload).',
  serialize: (v) => v,
  parseValue: (v) => v,
  parseLiteral: (node, variables) => literalToJson(node, variables),
});

builder.queryType({});
builder.subscriptionType({});

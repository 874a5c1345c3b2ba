// Prices list arguments. graphql-armor's cost limit looks at the document only, so a field with a
// 5,000-element list argument (or a variable holding one) costs the same as with one element.
// graphql-query-complexity evaluates the operation with its variables: every field costs 1 plus
// its children, plus 1 per element of any list in its arguments (nested input objects included),
// and the total must stay under the same limit as armor's. Generation is priced like a list of the
// positions it adds: `generate: {maxNewTokens: n}` counts n × GENERATED_TOKEN_COST (each written
// token is one more forward pass and one more lens column over every layer), so aliasing many
// generating lens fields into one operation is refused before any of them runs.

import { createRequire } from 'node:module';
import { GraphQLError, getOperationAST, type DocumentNode, type GraphQLSchema } from 'graphql';
import type { ComplexityEstimator } from 'graphql-query-complexity';
import type { Plugin } from 'graphql-yoga';

// Its ESM build imports graphql's .mjs files, a second graphql instance next to the CommonJS one
// yoga and Pothos use ("Cannot use GraphQLObjectType from another module"); the CJS build shares it.
const { getComplexity, simpleEstimator } = createRequire(import.meta.url)('graphql-query-complexity') as typeof import('graphql-query-complexity');

/** What one generated token costs, against the cost limit (5000 by default: 10 × 64 tokens is over it). */
export const GENERATED_TOKEN_COST = 8;

function listElements(value: unknown): number {
  if (Array.isArray(value)) return value.length + value.reduce((n: number, v) => n + listElements(v), 0);
  if (value && typeof value === 'object') {
    const own = Object.entries(value).reduce((n: number, [key, v]) => {
      if (key === 'maxNewTokens' && typeof v === 'number' && Number.isFinite(v) && v > 0) return n + v * GENERATED_TOKEN_COST;
      return n + listElements(v);
    }, 0);
    return own;
  }
  return 0;
}

const listArguments: ComplexityEstimator = ({ args, childComplexity }) => {
  const elements = listElements(args);
  return elements > 0 ? 1 + childComplexity + elements : undefined;
};

export function operationCost(schema: GraphQLSchema, document: DocumentNode, variables: Record<string, unknown> | undefined, operationName?: string | null): number {
  return getComplexity({
    schema,
    query: document,
    variables: variables ?? {},
    operationName: operationName ?? undefined,
    estimators: [listArguments, simpleEstimator({ defaultComplexity: 1 })],
  });
}

export function useListArgumentCost(maxCost: number): Plugin {
  const check = (args: { schema: GraphQLSchema; document: DocumentNode; variableValues?: unknown; operationName?: string | null }) => {
    // Variable coercion errors are graphql-js's to report (BAD_USER_INPUT); cost needs valid variables.
    let cost: number;
    try {
      if (!getOperationAST(args.document, args.operationName)) return null;
      cost = operationCost(args.schema, args.document, args.variableValues as Record<string, unknown>, args.operationName);
    } catch {
      return null;
    }
    if (cost <= maxCost) return null;
    return new GraphQLError(`Query cost limit of ${maxCost} exceeded, found ${cost} (list arguments count one per element).`, {
      extensions: { code: 'COST_LIMIT_EXCEEDED', http: { status: 400 } },
    });
  };
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const error = check(args);
      if (error) setResultAndStopExecution({ errors: [error] });
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const error = check(args);
      if (error) setResultAndStopExecution({ errors: [error] });
    },
  };
}

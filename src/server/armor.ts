// Query cost limits (graphql-armor). Defaults fit every operation in schema/operations with room to
// spare, while stopping deep or alias-amplified queries before any lens work starts.

import type { GraphQLArmorConfig } from '@escape.tech/graphql-armor-types';

export const DEFAULT_ARMOR: GraphQLArmorConfig = {
  maxDepth: { n: 10 },
  maxAliases: { n: 10 },
  maxDirectives: { n: 20 },
  maxTokens: { n: 2000 },
  costLimit: { maxCost: 5000 },
  blockFieldSuggestion: { enabled: true },
};

// The layer order of src/ (docs/architecture.md): a module may import its own layer and the layers
// below it, never one above. test/architecture/layers.test.ts runs this on every `npm test`;
// `npx depcruise src resolvers` prints the same report.

/** Lowest first. `errors` is the base every layer may import; it imports nothing of ours. */
export const LAYERS = [
  ['errors', '^src/errors\\.ts$'],
  ['checkpoint', '^src/checkpoint/'],
  ['architectures', '^src/architectures/'],
  ['graph', '^src/graph/'],
  ['runtime', '^src/runtime/'],
  ['lens', '^src/lens/'],
  ['resolvers', '^resolvers/'],
  ['server', '^src/server/'],
  ['cli', '^src/cli/'],
  ['client', '^src/client/'],
  ['viewer', '^src/viewer/'],
];

const layerRules = LAYERS.slice(0, -1).map(([name, path], i) => ({
  name: `layer-${name}`,
  comment: `${name} may only import ${LAYERS.slice(0, i + 1).map(([n]) => n).join(', ')}`,
  severity: 'error',
  from: { path },
  to: { path: LAYERS.slice(i + 1).map(([, p]) => p) },
}));

export default {
  forbidden: [
    ...layerRules,
    {
      name: 'outside-layers',
      comment: 'every module of src/ and resolvers/ belongs to a layer above; add new folders to LAYERS',
      severity: 'error',
      from: { path: '^(src|resolvers)/', pathNot: LAYERS.map(([, p]) => p) },
      to: {},
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: { path: '^(src|resolvers)/' },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|test|bench|scripts)/' },
    // Type-only imports are dependencies too: they tie a lower layer to an upper one's shapes.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.json'] },
  },
};

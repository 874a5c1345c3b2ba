import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

export default defineConfig({
  resolve: {
    // One graphql copy for sources, yoga and Pothos; two copies make yoga mask our GraphQLErrors.
    // Exactly the file Node resolves for yoga/Pothos (index.js, CJS); a directory alias lets Vite
    // pick the package's `module` entry (index.mjs), which is a second copy.
    alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }],
  },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
  },
});

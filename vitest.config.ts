import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

/**
 * Files that assert the server's event-loop latency (/health p99). They run after every other file,
 * one at a time, so their numbers are the server's and not those of other test files sharing the
 * CI machine's cores. Still one `vitest run`: one report counts both groups, and a failure in either
 * fails it.
 */
export const TIMING_FILES = ['test/hardening/event-loop.test.ts', 'test/hardening/load.test.ts'];

export default defineConfig({
  resolve: {
    // One graphql copy for sources, yoga and Pothos; two copies make yoga mask our GraphQLErrors.
    // Exactly the file Node resolves for yoga/Pothos (index.js, CJS); a directory alias lets Vite
    // pick the package's `module` entry (index.mjs), which is a second copy.
    alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }],
  },
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: { name: 'suite', include: ['test/**/*.test.ts'], exclude: TIMING_FILES, fileParallelism: true, maxWorkers: 2 },
      },
      {
        extends: true,
        // groupOrder 1: starts when the suite group (order 0) has finished.
        test: { name: 'timing', include: TIMING_FILES, fileParallelism: false, maxWorkers: 1, sequence: { groupOrder: 1 } },
      },
    ],
  },
});

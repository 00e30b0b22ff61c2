import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts', 'tests/**/*.test.tsx'],
    // Every test file builds models into a temporary cache, never the user's (tests/cache/isolate-cache.ts).
    setupFiles: ['tests/cache/isolate-cache.ts'],
    // ORT sessions and model builds are CPU-heavy on a 2-core machine: keep files in parallel few.
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 300_000,
    reporters: ['default'],
  },
});

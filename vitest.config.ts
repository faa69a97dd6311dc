import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // test/isolated/ changes machine-wide state: vitest.isolated.config.ts runs it alone.
    exclude: ['test/isolated/**', '**/node_modules/**'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Suites that spawn servers and load generators share 2 cores: keep the
    // number of files running at once small.
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    reporters: ['default'],
  },
});

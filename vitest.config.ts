import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'examples/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    // Prints, at the end, which suites skipped for a missing system package (test/system.ts).
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores: one worker per core; CIFAR-loading suites are memory-heavy.
    pool: 'forks',
    maxWorkers: 2,
  },
});

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Two cores on CI: forks isolate sockets and child processes per file.
    pool: 'forks',
    reporters: ['default'],
  },
});

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // testcontainers' reaper image can't be pulled without a registry; our tests remove what they create.
    env: { TESTCONTAINERS_RYUK_DISABLED: 'true' },
    testTimeout: 60_000,
    hookTimeout: 300_000,
    // Container tests use Docker networks with fixed subnets, which may not overlap: one file at a time.
    fileParallelism: false,
  },
});

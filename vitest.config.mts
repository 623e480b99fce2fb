import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    environment: "happy-dom",
    include: ["tests/js/**/*.test.ts", "src/**/*.test.ts"],
    // Two shared CPU cores: keep the worker pool small.
    pool: "threads",
    maxWorkers: 1,
    fileParallelism: false,
  },
});

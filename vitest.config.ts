import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Tests start real servers (PostgreSQL, Caddy, nginx, S3) as native processes.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
  },
});

import { defineConfig } from "vitest/config";

// Tests import packages through the "@rkt/source" condition, so no build is needed for unit tests;
// CLI end-to-end tests spawn the built `rkt` (npm test builds first).
export default defineConfig({
  resolve: { conditions: ["@rkt/source"] },
  ssr: { resolve: { conditions: ["@rkt/source"] } },
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    reporters: ["default"],
  },
});

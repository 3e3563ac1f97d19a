/**
 * vitest configuration for the repository's TypeScript tests.
 *
 * Convex functions are tested with convex-test in the edge-runtime environment (the runtime
 * Convex functions run in). Node-side tools (e.g. the local backend under tools/) run their
 * tests, if any, in plain Node.
 */
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    passWithNoTests: true,
    projects: [
      {
        test: {
          name: "convex",
          include: ["convex/**/*.test.ts"],
          environment: "edge-runtime",
          server: { deps: { inline: ["convex-test"] } },
        },
      },
      {
        test: {
          name: "node",
          include: ["tools/**/*.test.ts"],
          environment: "node",
        },
      },
    ],
  },
});

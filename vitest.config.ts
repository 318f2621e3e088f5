// Two projects: "node" runs in Node (codec, format, conversion, kernels, client, integration);
// "workers" runs inside workerd through @cloudflare/vitest-plugin (Worker routes, Durable Objects, codec in workerd).
import { defineConfig } from "vitest/config";
import { cloudflareTest } from "@cloudflare/vitest-plugin";

export default defineConfig({
  test: {
    // After vitest's own output: which tests were skipped for a missing system tool, and the command that installs it.
    reporters: ["default", "./tests/helpers/system-tools-reporter.ts"],
    projects: [
      {
        test: {
          name: "node",
          include: ["tests/**/*.test.ts"],
          exclude: ["tests/worker/**", "tests/telemetry-worker/**", "node_modules/**"],
          environment: "node",
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        plugins: [cloudflareTest({ wrangler: { configPath: "./wrangler.jsonc" }, remoteBindings: false })],
        test: {
          name: "workers",
          include: ["tests/worker/**/*.test.ts"],
          testTimeout: 60_000,
        },
      },
      {
        // Telemetry in workerd against a test-only Worker (tests/telemetry-worker/wrangler.jsonc) that mounts it alone.
        plugins: [
          cloudflareTest({ wrangler: { configPath: "./tests/telemetry-worker/wrangler.jsonc" }, remoteBindings: false }),
        ],
        test: {
          name: "telemetry-workers",
          include: ["tests/telemetry-worker/**/*.test.ts"],
          testTimeout: 60_000,
        },
      },
    ],
  },
});

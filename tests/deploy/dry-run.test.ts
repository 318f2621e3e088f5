// `wrangler deploy --dry-run`: the edge store bundles as Cloudflare would upload it, offline, and stays under the
// Workers size limits (scripts/deploy-check.mjs). Runs in CI with the rest of `npm test`.
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { deployDryRun, LIMITS, type DeployReport } from "../../scripts/deploy-check.mjs";

describe("wrangler deploy --dry-run", () => {
  let report: DeployReport;
  afterAll(() => {
    if (report?.outdir !== undefined) rmSync(report.outdir, { recursive: true, force: true });
  });

  it("bundles the Worker with its three Durable Object classes and the codec wasm, under the size limits", () => {
    report = deployDryRun({ keep: true });
    expect(report.error).toBeUndefined();
    expect(report.ok).toBe(true);
    expect(report.gzipBytes).toBeGreaterThan(0);
    expect(report.gzipBytes).toBeLessThanOrEqual(LIMITS.gzipBytes);
    expect(report.rawBytes).toBeLessThanOrEqual(LIMITS.rawBytes);
    expect(report.durableObjects).toEqual([
      { name: "SESSIONS", className: "SessionObject" },
      { name: "CHUNKS", className: "ChunkObject" },
      { name: "METRICS", className: "MetricsObject" },
    ]);
    // The codec is imported at bundle time (workerd refuses to compile wasm from bytes at run time).
    expect(report.files.some((f) => f.name.endsWith("codec.simd.wasm"))).toBe(true);
    // Every class a binding names is exported by the entry module, or the deploy would be refused.
    const entry = readFileSync(join(report.outdir!, "index.js"), "utf8");
    const exported = /export\s*\{([^}]*)\}\s*;?\s*(\/\/.*)?\s*$/m.exec(entry.slice(-4000))?.[1] ?? "";
    for (const cls of ["SessionObject", "ChunkObject", "MetricsObject"]) expect(exported).toMatch(new RegExp(`\\b${cls}\\b`));
  });

  it("reports a bundle over the limit as not ok", () => {
    const tight = deployDryRun({ limits: { gzipBytes: 1000, rawBytes: LIMITS.rawBytes } });
    expect(tight.error).toBeUndefined();
    expect(tight.ok).toBe(false);
    expect(tight.gzipBytes).toBeGreaterThan(1000);
  });
});

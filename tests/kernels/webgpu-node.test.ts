// MLA kernels on Node WebGPU (dawn.node + Chromium's SwiftShader ICD). dawn.node reads VK_ICD_FILENAMES and loads
// libvulkan at process start, so the cases run in a child process with that environment.
import { beforeAll, describe, expect, it } from "vitest";
import { resolve } from "node:path";
import { runTsx } from "../helpers/run-tsx.ts";
import { swiftShaderEnv } from "../helpers/swiftshader-env.ts";
import { skipWithout } from "../helpers/system-tools.ts";
import { KERNEL_CASES } from "./cases.ts";
import { expectCaseResult, expectConcurrentResult, expectSessionResult } from "./expected.ts";
import type { CaseResult, ConcurrentResult, SessionResult } from "./harness.ts";

const root = resolve(import.meta.dirname, "../..");

describe.skipIf(skipWithout(import.meta.url, "swiftshader"))("MLA kernels on Node WebGPU (SwiftShader)", () => {
  // Skipped (and listed in the run's summary) only when Chromium's SwiftShader ICD is missing; CI requires it.
  type Parsed = {
    adapter: string;
    pipelines: number;
    pipelinesBeforeSession?: number;
    results: Array<CaseResult | { name: string; error: string }>;
    session?: SessionResult;
    concurrent?: ConcurrentResult;
    fatal?: string;
  };
  let parsed: Parsed = { adapter: "", pipelines: 0, results: [], fatal: "child did not run" };

  beforeAll(async () => {
    const child = await runTsx("tests/kernels/node-webgpu-runner.ts", [], {
      cwd: root,
      env: swiftShaderEnv(),
    });
    const line = child.stdout.trim().split("\n").pop() ?? "";
    try {
      parsed = JSON.parse(line) as Parsed;
    } catch {
      parsed = { adapter: "", pipelines: 0, results: [], fatal: `no JSON from the child (exit ${child.code}): ${child.stderr.slice(-2000)}` };
    }
  }, 110_000);

  it("should get a real SwiftShader adapter, not the null backend", () => {
    expect(parsed.fatal).toBeUndefined();
    expect(parsed.adapter).toMatch(/swiftshader/i);
  });

  it("should follow a session: decode steps across a chunk seal, then an appended turn", () => {
    expectSessionResult(parsed.session);
  });

  it("should give each of four concurrent steps of two sessions its own result", () => {
    expectConcurrentResult(parsed.concurrent);
  });

  for (const [i, c] of KERNEL_CASES.entries()) {
    it(`should match the f64 reference: ${c.name}`, () => {
      expect(parsed.fatal).toBeUndefined();
      expectCaseResult(c, parsed.results[i]);
    });
  }

  it("should create each pipeline once per geometry", () => {
    const geometries = new Set(KERNEL_CASES.map((c) => JSON.stringify([c.geometry, c.encoding])));
    // split + combine + dequantize per distinct layout; combine is shared by layouts with equal (n_h, D_c, spaces).
    expect(parsed.pipelines).toBeLessThanOrEqual(3 * geometries.size);
    expect(parsed.pipelines).toBeGreaterThanOrEqual(geometries.size);
    // 12 decode/append steps on an already-seen geometry compile nothing.
    expect(parsed.pipelines).toBe(parsed.pipelinesBeforeSession);
  });
});

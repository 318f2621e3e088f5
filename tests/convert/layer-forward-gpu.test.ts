// The calibration forward with its projections on WebGPU (`webgpu-f32`; dawn.node + SwiftShader in a child process):
// every layer's captured x, q, k within f32 rounding of the f64 reference on qwen25vl-mini's chat calibration, and
// `mla-edge convert --forward webgpu-f32` end to end, the forward recorded in the output's config.

import { beforeAll, describe, expect, it } from "vitest";
import { resolve } from "node:path";
import { childReport } from "../helpers/run-tsx.ts";
import { swiftShaderEnv } from "../helpers/swiftshader-env.ts";
import { skipWithout } from "../helpers/system-tools.ts";
import type { GpuForwardReport } from "./layer-forward-gpu-runner.ts";

const root = resolve(import.meta.dirname, "../..");

describe.skipIf(skipWithout(import.meta.url, "swiftshader"))("calibration forward on WebGPU (Node, SwiftShader)", () => {
  let report: GpuForwardReport | { fatal: string };

  beforeAll(async () => {
    report = await childReport<GpuForwardReport>("tests/convert/layer-forward-gpu-runner.ts", [], { cwd: root, env: swiftShaderEnv() });
  }, 300_000);

  const ok = (): GpuForwardReport => {
    expect((report as { fatal?: string }).fatal).toBeUndefined();
    return report as GpuForwardReport;
  };

  it("should capture every layer's x, q, k within 1e-5 (relative) of the f64 reference, by another path", () => {
    const r = ok();
    expect(r.adapter).toMatch(/swiftshader/i);
    expect(r.captures).toBe(2 * 2 * 3); // 2 layers × 2 sequences × {x, q, k}
    for (const e of r.relErr) expect(e).toBeLessThanOrEqual(1e-5);
    // layer 0's x is the embedding (no projection yet); every other capture went through the GPU
    expect(r.differing).toBe(r.captures - 2);
  });

  it("should convert with --forward webgpu-f32 and record it", () => {
    expect(ok().cli).toEqual({ code: 0, recorded: "webgpu-f32", stderr: "" });
  });
});

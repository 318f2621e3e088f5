// A real Qwen2.5-VL bundle with no host model: `loadBundleChatModel(url, { gpu, hostWeights: false })` streams the
// decoder weights into GPU buffers and runs the vision transformer on the GPU (dawn.node + SwiftShader, child process).
// qwen25vl-mini converted (every RoPE pair kept: an empty W_uk, which the manifest carries as a 0-row tensor) and
// packed with f16 weights and f16 vision: every reference.json case gives the reference's
// prompt length, greedy ids and top-20 logits (2e-3), the same answers as the bundle loaded with its host model; a
// session the engine cannot hold (raw storage) is a typed `bad_model` error.

import { beforeAll, describe, expect, it } from "vitest";
import { resolve } from "node:path";
import { childReport } from "../helpers/run-tsx.ts";
import { swiftShaderEnv } from "../helpers/swiftshader-env.ts";
import { skipWithout } from "../helpers/system-tools.ts";
import type { GpuOnlyReport } from "./gpu-only-bundle-runner.ts";

const root = resolve(import.meta.dirname, "../..");

describe.skipIf(skipWithout(import.meta.url, "swiftshader"))("a bundle that lives only on the GPU (Node, SwiftShader)", () => {
  let report: GpuOnlyReport | { fatal: string };

  beforeAll(async () => {
    report = await childReport<GpuOnlyReport>("tests/bundle/gpu-only-bundle-runner.ts", [], { cwd: root, env: swiftShaderEnv() });
  }, 900_000);

  const ok = (): GpuOnlyReport => {
    expect((report as { fatal?: string }).fatal).toBeUndefined();
    return report as GpuOnlyReport;
  };

  it("should hold no host weights: decoder on the engine, vision transformer on the GPU", () => {
    const r = ok();
    expect(r.adapter).toMatch(/swiftshader/i);
    expect(r).toMatchObject({ hostWeights: "null", vision: "qwen2_5_vl-webgpu", decoder: "webgpu/engine" });
    expect(r.visionCalls).toBe(2); // one image in one_image, one in two_turn
    expect(r.engineWeightBytes).toBeGreaterThan(0);
  });

  it("should answer every reference case as the reference and as the bundle with its host model", () => {
    const r = ok();
    expect(r.cases.map((c) => c.name)).toEqual(["text_only", "one_image", "two_turn"]);
    for (const c of r.cases) {
      expect(c.promptTokens, c.name).toBe(c.referenceTokens);
      expect(c.idsEqualReference, c.name).toBe(true);
      expect(c.idsEqualHostModel, c.name).toBe(true);
      expect(c.top20MaxErr, c.name).toBeLessThanOrEqual(2e-3);
      expect(c.top20VsHost, c.name).toBeLessThanOrEqual(1e-3);
    }
  });

  it("should refuse a session the engine cannot hold with bad_model (no CPU fallback without host weights)", () => {
    expect(ok().rawSession).toBe("bad_model");
  });
});

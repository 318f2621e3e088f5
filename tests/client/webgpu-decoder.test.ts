// The chat decoder on the WebGPU kernels (dawn.node + Chromium's SwiftShader ICD, in a child process because dawn.node
// reads VK_ICD_FILENAMES at start): over 50 eval cases its answers equal the CPU reference decoder's, a session restored
// from the store before every turn (packed chunks written straight into the GPU cache) answers like the uninterrupted
// one with a bit-identical cache, and logits agree with the CPU reference within 1e-4 relative.

import { beforeAll, describe, expect, it } from "vitest";
import { resolve } from "node:path";
import { childReport } from "../helpers/run-tsx.ts";
import { swiftShaderEnv } from "../helpers/swiftshader-env.ts";
import { skipWithout } from "../helpers/system-tools.ts";
import type { DecoderReport } from "./webgpu-decoder-runner.ts";

const root = resolve(import.meta.dirname, "../..");
const CASES = 50;
/** max |gpu − cpu| / max |cpu| over all logits rows: f32 attention on the GPU vs f64 on the CPU (observed ≤ 6e-7). */
const LOGITS_TOLERANCE = 1e-4;

describe.skipIf(skipWithout(import.meta.url, "swiftshader"))("chat decoder on WebGPU (Node, SwiftShader)", () => {
  // Skipped (and listed in the run's summary) only when Chromium's SwiftShader ICD is missing; CI requires it.
  let report: DecoderReport | { fatal: string };

  beforeAll(async () => {
    report = await childReport<DecoderReport>("tests/client/webgpu-decoder-runner.ts", [String(CASES)], { cwd: root, env: swiftShaderEnv() });
  }, 240_000);

  const ok = (): DecoderReport => {
    expect((report as { fatal?: string }).fatal).toBeUndefined();
    return report as DecoderReport;
  };

  it("should decode on a real SwiftShader adapter through the kernels", () => {
    const r = ok();
    expect(r.adapter).toMatch(/swiftshader/i);
    expect(r.decoder).toBe("webgpu/kernels");
  });

  it(`should give logits within ${LOGITS_TOLERANCE} (relative) of the CPU reference, prefill block and decode steps`, () => {
    const r = ok();
    expect(r.logitsRelErr.length).toBe(4);
    for (const e of r.logitsRelErr) expect(e).toBeLessThan(LOGITS_TOLERANCE);
    expect(r.logitsRows).toBeGreaterThan(100);
    expect(r.argmaxDiffs).toBe(0);
  });

  it(`should answer every turn of ${CASES} eval cases like the CPU reference decoder`, () => {
    const r = ok();
    expect(r.turns).toBe(3 * CASES);
    expect(r.cpuMismatches).toEqual([]);
    expect(r.correct / r.turns).toBeGreaterThan(0.8);
  });

  it("should answer after a restore into the GPU cache like the uninterrupted GPU session, with a bit-identical cache", () => {
    const r = ok();
    expect(r.restoreMismatches).toEqual([]);
    expect(r.cacheDiffs).toBe(0);
  });

  it("should compile the pipelines once for the model, not per session or step", () => {
    const r = ok();
    // split + combine (+ dequantize for inspecting the cache), all created before the first chat case ended
    expect(r.pipelines).toBeLessThanOrEqual(3);
    expect(r.pipelines).toBe(r.pipelinesAfterFirstCase);
  });
});

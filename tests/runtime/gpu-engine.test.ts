// The GPU engine (runtime/gpu/engine.ts) on dawn.node + SwiftShader, in a child process (dawn.node reads
// VK_ICD_FILENAMES at start): its new kernels against f64 references; logits of the whole model within 1e-5 (relative)
// of the CPU reference decoder on the same weights (f32, f16, int4 block 32 — the reference gets the weights the GPU
// reads) over a prefill block and decode steps across slot seals, greedy ids equal; no buffer created per token after
// warm-up and one submission per step (L + 2 on the step that seals a slot); chunks packed by SessionCache from the
// engine restore into a fresh engine that continues bit-identically; an engine on a packed bundle equals one on the
// same model quantized at upload; int4 vs f32 eval accuracy on a few cases.

import { beforeAll, describe, expect, it } from "vitest";
import { resolve } from "node:path";
import { childReport } from "../helpers/run-tsx.ts";
import { swiftShaderEnv } from "../helpers/swiftshader-env.ts";
import { skipWithout } from "../helpers/system-tools.ts";
import type { EngineReport } from "./gpu-engine-runner.ts";

const root = resolve(import.meta.dirname, "../..");
const EVAL_CASES = 3;
/** max |gpu − cpu| / max |cpu| of the logits: f32 GPU math vs the f64 reference on identical weights (observed ≤ 1.4e-6). */
const LOGITS_TOLERANCE = 1e-5;

describe.skipIf(skipWithout(import.meta.url, "swiftshader"))("GPU engine on WebGPU (Node, SwiftShader)", () => {
  let report: EngineReport | { fatal: string };

  beforeAll(async () => {
    report = await childReport<EngineReport>("tests/runtime/gpu-engine-runner.ts", [String(EVAL_CASES)], { cwd: root, env: swiftShaderEnv() });
  }, 1_500_000);

  const ok = (): EngineReport => {
    expect((report as { fatal?: string }).fatal).toBeUndefined();
    return report as EngineReport;
  };

  it("should run on a real SwiftShader adapter", () => {
    expect(ok().adapter).toMatch(/swiftshader/i);
  });

  it("should match the f64 references: absorbed queries and W_uv (f32, f16, int4, int8 + zero points), cache rows, strided rotary", () => {
    const k = ok().kernels;
    expect(Object.keys(k).length).toBe(10);
    for (const [name, err] of Object.entries(k)) expect(err, name).toBeLessThan(2e-6);
    expect(k["latent-rows mixed modality"]).toBe(0);
  });

  it(`should give logits within ${LOGITS_TOLERANCE} of the CPU reference decoder and the same greedy ids, per weight format`, () => {
    const l = ok().logits;
    expect(Object.keys(l)).toEqual(["f32", "f16", "int4-b32"]);
    for (const [fmt, r] of Object.entries(l)) {
      expect(r.relErr, fmt).toBeLessThan(LOGITS_TOLERANCE);
      expect(r.rows, fmt).toBeGreaterThanOrEqual(fmt === "f32" ? 20 : 10);
      expect(r.argmaxDiffs, fmt).toBe(0);
      expect(r.greedyEqual, fmt).toBe(true);
    }
  });

  it("should create no buffer per token after warm-up and submit once per decode step (slot seals: per layer)", () => {
    const a = ok().alloc;
    expect(a.createBuffers).toBe(0);
    expect(a.sealSteps).toBe(2);
    const plain = a.submissions.filter((s) => s === 1).length;
    expect(plain).toBe(a.steps - a.sealSteps);
    // 4 layers: one sync of the open slot, one per layer up to its rows, one for the rest.
    expect(a.submissions.filter((s) => s !== 1)).toEqual([6, 6]);
  });

  it("should restore from SessionCache chunks into a fresh engine that continues bit-identically", () => {
    const r = ok().restore;
    expect(r.chunks).toBeGreaterThan(1);
    expect(r.sealedChunks).toBeGreaterThan(0);
    expect(r.sealedBlocksMatch).toBe(true);
    expect(r.logitsEqual).toBe(true);
    expect(r.idsEqual).toBe(true);
  });

  it("should split a bundle's embedding / LM head past the binding limit into row ranges with bit-identical logits", () => {
    const s = ok().split;
    expect(s.embedParts).toBeGreaterThan(1);
    expect(s.headParts).toBeGreaterThan(1);
    expect(s.rows).toBe(21);
    expect(s.logitsEqual).toBe(true);
  });

  it("should run from a packed int4 bundle (MatMulNBits bytes bound as they are) exactly like the model quantized at upload", () => {
    const b = ok().bundle;
    expect(b.rows).toBe(20);
    expect(b.maxAbsDiff).toBe(0);
    expect(b.idsEqual).toBe(true);
    expect(b.bundleBytes).toBeGreaterThan(0);
  });

  it("should keep int4 (block 32) eval accuracy within one turn of f32 on the checked cases, and report memory", () => {
    const r = ok();
    expect(r.accuracy["f32"].turns).toBe(3 * EVAL_CASES);
    expect(r.accuracy["int4-b32"].correct).toBeGreaterThanOrEqual(r.accuracy["f32"].correct - 1);
    expect(r.int4Agreement.positions).toBeGreaterThan(0);
    expect(r.memory.weights).toBeGreaterThan(0);
    expect(r.memory.cache).toBeGreaterThan(0);
    expect(r.memory.total).toBe(r.memory.weights + r.memory.cache + r.memory.scratch);
  });
});

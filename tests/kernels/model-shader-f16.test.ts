// The `shader-f16` variant of the model kernels (SwiftShader has no shader-f16, so the reference cases run the f32
// variant): the source differs only in `enable f16;` and the fp16-word widening, and Tint accepts both variants on a
// device with the feature (dawn.node's null backend validates and executes nothing).
import { beforeAll, describe, expect, it } from "vitest";
import { resolve } from "node:path";
import { runTsx } from "../helpers/run-tsx.ts";
import { fp16PairWgsl } from "../../kernels/program.ts";
import { modelPrograms } from "./model-programs.ts";
import type { NullBackendReport } from "./null-backend-compile-runner.ts";

const root = resolve(import.meta.dirname, "../..");
const programs = modelPrograms();

describe("model kernels, shader-f16 variant: WGSL source", () => {
  it("should differ from the f32 variant only in `enable f16;` and how fp16 words are widened", () => {
    const widen16 = fp16PairWgsl({ f16: true });
    const widen32 = fp16PairWgsl({ f16: false });
    let readers = 0;
    for (const p of programs) {
      const src16 = p.getShaderSource({ f16: true });
      const src32 = p.getShaderSource({ f16: false });
      expect(src32).not.toMatch(/\bf16\b/);
      if (src16.includes(widen16)) readers++;
      if (src16.startsWith("enable f16;\n")) {
        expect(src16.slice("enable f16;\n".length).replace(widen16, widen32), `${p.name}[${p.cacheHint}]`).toBe(src32);
      } else {
        expect(src16, `${p.name}[${p.cacheHint}]`).toBe(src32);
      }
    }
    // GEMV (32 lanes, 1 lane) and GEMM (4×4, 8×8 blocking), each with and without bias, and the embedding of the 6
    // formats widen fp16 words (scales or f16 weights); f32 weights do not.
    expect(readers).toBe(5 * 9);
  });
});

describe("model kernels, shader-f16 variant: compiled on a device with the feature (dawn.node null backend)", () => {
  let report: NullBackendReport | { fatal: string } = { fatal: "child did not run" };

  beforeAll(async () => {
    const child = await runTsx("tests/kernels/null-backend-compile-runner.ts", ["model"], { cwd: root });
    const line = child.stdout.trim().split("\n").pop() ?? "";
    try {
      report = JSON.parse(line) as NullBackendReport | { fatal: string };
    } catch {
      report = { fatal: `no JSON from the child (exit ${child.code}): ${child.stderr.slice(-2000)}` };
    }
  }, 110_000);

  it("should compile every model program with and without shader-f16", () => {
    if ("fatal" in report) throw new Error(report.fatal);
    expect(report.adapterFeatures).toContain("shader-f16");
    expect(report.outcomes).toHaveLength(programs.length * 2);
    expect(report.outcomes.filter((o) => o.f16)).toHaveLength(programs.length);
    expect(report.outcomes.filter((o) => o.error !== undefined)).toEqual([]);
  });
});

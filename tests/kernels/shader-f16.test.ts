// The `shader-f16` variant of every kernel. SwiftShader has no shader-f16, so the f64-reference cases run only the f32
// variant; these tests show the f16 variant is the same program (only the fp16-word widening differs) and that Tint
// accepts it on a device that has the feature (dawn.node's null backend: validates, executes nothing).
import { beforeAll, describe, expect, it } from "vitest";
import { resolve } from "node:path";
import { runTsx } from "../helpers/run-tsx.ts";
import { fp16PairWgsl } from "../../kernels/program.ts";
import { caseLayouts, layoutPrograms } from "./case-programs.ts";
import type { NullBackendReport } from "./null-backend-compile-runner.ts";

const root = resolve(import.meta.dirname, "../..");

const layouts = caseLayouts();

describe("shader-f16 variant: WGSL source", () => {
  it("should differ from the f32 variant only in `enable f16;` and how fp16 words are widened", () => {
    const widen16 = fp16PairWgsl({ f16: true });
    const widen32 = fp16PairWgsl({ f16: false });
    let readersOfFp16 = 0;
    for (const layout of layouts) {
      for (const p of layoutPrograms(layout)) {
        const src16 = p.getShaderSource({ f16: true });
        const src32 = p.getShaderSource({ f16: false });
        expect(src16.startsWith("enable f16;\n"), p.name).toBe(true);
        expect(src32).not.toMatch(/\bf16\b/);
        if (src16.includes(widen16)) readersOfFp16++;
        expect(src16.slice("enable f16;\n".length).replace(widen16, widen32), `${p.name}[${p.cacheHint}]`).toBe(src32);
      }
    }
    // split and dequantize read fp16 words (scales, zeros, fp16 rope) through the native-f16 path in every layout.
    expect(readersOfFp16).toBe(2 * layouts.length);
  });
});

describe("shader-f16 variant: compiled on a device with the feature (dawn.node null backend)", () => {
  let report: NullBackendReport | { fatal: string } = { fatal: "child did not run" };

  beforeAll(async () => {
    const child = await runTsx("tests/kernels/null-backend-compile-runner.ts", [], { cwd: root });
    // Dawn prints its own validation messages to stdout; the report is the last line.
    const line = child.stdout.trim().split("\n").pop() ?? "";
    try {
      report = JSON.parse(line) as NullBackendReport | { fatal: string };
    } catch {
      report = { fatal: `no JSON from the child (exit ${child.code}): ${child.stderr.slice(-2000)}` };
    }
  }, 110_000);

  const ok = (): NullBackendReport => {
    if ("fatal" in report) throw new Error(report.fatal);
    return report;
  };

  it("should get an adapter that offers shader-f16", () => {
    expect(ok().adapterFeatures).toContain("shader-f16");
  });

  it("should compile split, combine and dequantize for every tested layout, with and without shader-f16", () => {
    const { outcomes } = ok();
    expect(outcomes).toHaveLength(layouts.length * 3 * 2);
    expect(outcomes.filter((o) => o.f16)).toHaveLength(layouts.length * 3);
    expect(outcomes.filter((o) => o.error !== undefined)).toEqual([]);
  });

  it("should reject WGSL that misuses f16 (the backend validates at all)", () => {
    const byName = new Map(ok().controls.map((c) => [c.key.split("[")[0], c.error ?? "compiled"]));
    expect(byName.get("control-no-enable")).toMatch(/PipelineError: .*'f16' type used without 'f16' extension enabled/s);
    expect(byName.get("control-no-feature")).toMatch(/PipelineError: .*extension 'f16' is not allowed/s);
    expect(byName.get("control-bad-bitcast")).toMatch(/PipelineError: .*no matching call to 'bitcast<vec3<f16>>\(u32\)'/s);
  });
});

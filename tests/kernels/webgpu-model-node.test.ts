// Model kernels (linear with fused MatMulNBits dequantization, embedding, norms, activations, rotary, sampling) on
// Node WebGPU: dawn.node + Chromium's SwiftShader ICD, in a child process (it reads VK_ICD_FILENAMES at start).
import { beforeAll, describe, expect, it } from "vitest";
import { resolve } from "node:path";
import { runTsx } from "../helpers/run-tsx.ts";
import { swiftShaderAvailable, swiftShaderEnv } from "../helpers/swiftshader-env.ts";
import { MODEL_CASES } from "./model-cases.ts";
import { expectModelCase, type ModelOutcome } from "./model-expected.ts";

const root = resolve(import.meta.dirname, "../..");

// Skipped only when Chromium's SwiftShader ICD is missing (the `chromium` apt package; CI installs it).
describe.skipIf(!swiftShaderAvailable())("model kernels on Node WebGPU (SwiftShader)", () => {
  let parsed: { adapter: string; pipelines: number; results: ModelOutcome[]; fatal?: string } = { adapter: "", pipelines: 0, results: [], fatal: "child did not run" };

  beforeAll(async () => {
    const child = await runTsx("tests/kernels/model-node-runner.ts", [], { cwd: root, env: swiftShaderEnv() });
    const line = child.stdout.trim().split("\n").pop() ?? "";
    try {
      parsed = JSON.parse(line) as typeof parsed;
    } catch {
      parsed = { adapter: "", pipelines: 0, results: [], fatal: `no JSON from the child (exit ${child.code}): ${child.stderr.slice(-2000)}` };
    }
  }, 240_000);

  it("should get a real SwiftShader adapter, not the null backend", () => {
    expect(parsed.fatal).toBeUndefined();
    expect(parsed.adapter).toMatch(/swiftshader/i);
  });

  for (const [i, c] of MODEL_CASES.entries()) {
    it(`should match the CPU reference: ${c.name}`, () => {
      expect(parsed.fatal).toBeUndefined();
      expectModelCase(c, parsed.results[i]);
    });
  }
});

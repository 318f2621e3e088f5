// fixtures/qwen25vl-mini's reference.json (a separate implementation of the Hugging Face model) through the SDK's chat
// session on the GPU engine (dawn.node + SwiftShader, child process): every case's input ids, M-RoPE positions, 12
// greedy ids (sampled on the GPU) and top-20 logits within the README's 2e-3 for `mla-edge convert`'s full-rank
// conversion on f32 engine weights; int4 block-32 engine weights answer as the CPU reference on the dequantized weights,
// and their teacher-forced top-1 agreement with f32 is reported (docs/kernels.md).

import { beforeAll, describe, expect, it } from "vitest";
import { resolve } from "node:path";
import { childReport } from "../helpers/run-tsx.ts";
import { swiftShaderEnv } from "../helpers/swiftshader-env.ts";
import { skipWithout } from "../helpers/system-tools.ts";
import type { MiniEngineReport } from "./qwen25vl-engine-runner.ts";

const root = resolve(import.meta.dirname, "../..");

describe.skipIf(skipWithout(import.meta.url, "swiftshader"))("qwen25vl-mini reference on the GPU engine (Node, SwiftShader)", () => {
  let report: MiniEngineReport | { fatal: string };

  beforeAll(async () => {
    report = await childReport<MiniEngineReport>("tests/client/qwen25vl-engine-runner.ts", [], { cwd: root, env: swiftShaderEnv() });
  }, 900_000);

  const ok = (): MiniEngineReport => {
    expect((report as { fatal?: string }).fatal).toBeUndefined();
    return report as MiniEngineReport;
  };

  it("should give every reference case's ids, positions, greedy ids and top-20 logits (2e-3) on the engine, f32 weights", () => {
    const r = ok();
    expect(r.adapter).toMatch(/swiftshader/i);
    expect(r.cases.map((c) => c.name)).toEqual(["text_only", "one_image", "two_turn"]);
    for (const c of r.cases) {
      expect(c.decoder, c.name).toBe("webgpu/engine");
      expect(c, c.name).toMatchObject({ inputIdsEqual: true, positionsEqual: true, greedyEqual: true, top20IdsEqual: true, ropeDeltaOk: true });
      expect(c.top20MaxErr, c.name).toBeLessThanOrEqual(2e-3);
    }
  });

  it("should continue a turn restored from the store into a fresh engine exactly as the uninterrupted session", () => {
    const r = ok().restore;
    expect(r.decoder).toBe("webgpu/engine");
    expect(r).toMatchObject({ idsEqual: true, topEqual: true, cacheEqual: true });
    expect(r.cachedTokens).toBe(r.turn1Tokens);
    expect(r.turn1Tokens).toBeGreaterThan(16);
  });

  it("should run int4 block-32 weights exactly as the CPU reference on the dequantized weights (top-1 vs f32 reported)", () => {
    const r = ok();
    // teacher-forced over prompt + reference greedy ids: the f32 engine picks the reference's id at every position
    expect(r.int4.positions).toBe(36);
    expect(r.int4.f32MatchesReference).toBe(r.int4.positions);
    // the int4 engine's answers are those of the CPU reference decoder on the int4-dequantized weights: what int4
    // changes is the model (random weights, 64-wide tied embedding: the agreement with f32, in docs/kernels.md, is low)
    expect(r.int4.cpuOnInt4Equal).toBe(r.int4.cases);
    expect(r.weightBytes.int4).toBeLessThan(r.weightBytes.f32 / 4);
  });
});

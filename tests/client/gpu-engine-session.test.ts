// SDK chat sessions on the GPU engine (runtime/gpu/: the whole model on WebGPU, sampling on the GPU; dawn.node +
// Chromium's SwiftShader ICD, in a child process because dawn.node reads VK_ICD_FILENAMES at start), against the CPU
// reference decoder on the same f32 weights: the same greedy answers; a session restored from the store before every
// turn (packed chunks written straight into the engine's cache) answers the same with a bit-identical cache; an aborted
// turn leaves nothing behind; truncate; seeded GPU sampling reproduces a turn; raw storage falls back with its reason.

import { beforeAll, describe, expect, it } from "vitest";
import { resolve } from "node:path";
import { childReport } from "../helpers/run-tsx.ts";
import { swiftShaderEnv } from "../helpers/swiftshader-env.ts";
import { skipWithout } from "../helpers/system-tools.ts";
import type { EngineSessionReport } from "./gpu-engine-session-runner.ts";

const root = resolve(import.meta.dirname, "../..");
const CASES = 4;

describe.skipIf(skipWithout(import.meta.url, "swiftshader"))("chat sessions on the GPU engine (Node, SwiftShader)", () => {
  let report: EngineSessionReport | { fatal: string };

  beforeAll(async () => {
    report = await childReport<EngineSessionReport>("tests/client/gpu-engine-session-runner.ts", [String(CASES)], { cwd: root, env: swiftShaderEnv() });
  }, 600_000);

  const ok = (): EngineSessionReport => {
    expect((report as { fatal?: string }).fatal).toBeUndefined();
    return report as EngineSessionReport;
  };

  it("should decode on a real SwiftShader adapter through the engine; a raw-storage session falls back and says why", () => {
    const r = ok();
    expect(r.adapter).toMatch(/swiftshader/i);
    expect(r.decoder).toBe("webgpu/engine");
    expect(r.rawDecoder).not.toBe("webgpu/engine");
    expect(r.rawFallback).toMatch(/GPU engine: the session stores raw/);
    expect(r.kvDeviceBytes).toBeGreaterThan(0);
  });

  it(`should answer every turn of ${CASES} eval cases like the CPU reference decoder`, () => {
    const r = ok();
    expect(r.turns).toBe(3 * CASES);
    expect(r.cpuMismatches).toEqual([]);
    expect(r.correct / r.turns).toBeGreaterThan(0.8);
  });

  it("should answer after a restore into the engine like the uninterrupted engine session, with a bit-identical cache", () => {
    const r = ok();
    expect(r.restoredDecoders).toEqual(["webgpu/engine"]);
    expect(r.restoreMismatches).toEqual([]);
    expect(r.cacheDiffs).toBe(0);
  });

  it("should leave nothing of an aborted turn and cut back to a turn (engine truncate across a sealed slot: bit-identical)", () => {
    const r = ok();
    expect(r.abort).toEqual({ lengthKept: true, turnsKept: true, sameAfter: true, tokensBeforeAbort: 1 });
    expect(["local", "restored"]).toContain(r.truncate.how);
    expect(r.truncate).toMatchObject({ lengthOk: true, nextPositionOk: true, sameAfter: true });
    expect(r.engineTruncate).toEqual({ logitsEqual: true, nextPositionEqual: true, sealedAfterCut: 16, belowRestoreRefused: true });
  });

  it("should sample on the GPU: a seed reproduces the turn in a fresh session, another seed changes it", () => {
    const s = ok().sampling;
    expect(s.sameSeedEqual).toBe(true);
    expect(s.otherSeedIds).not.toEqual(s.ids);
  });
});

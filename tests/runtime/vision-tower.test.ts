// The TS vision tower (from visual.safetensors) computes the same function as the fixture's vision.onnx (run by
// onnxruntime-web, wasm EP, in Node).

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import * as ort from "onnxruntime-web";
import { describe, expect, it } from "vitest";
import { openSafetensorsFile } from "../../checkpoint/io.node.ts";
import { base64ToBytes, loadVisionTower, patchesFromU8, runVisionTower } from "../../runtime/vision/toy-tower.ts";
import { FIXTURE_DIR, readEvalCases, relativeError } from "./helpers.ts";

describe("vision tower", () => {
  it("matches vision.onnx on three eval images batched", async () => {
    const st = await openSafetensorsFile(join(FIXTURE_DIR, "visual.safetensors"));
    const tower = await loadVisionTower(st);
    await st.close();
    const cases = await readEvalCases(3);
    const patches = new Float32Array(3 * 16 * 192);
    cases.forEach((c, i) => patches.set(patchesFromU8(base64ToBytes(c.patches_u8)), i * 16 * 192));

    ort.env.wasm.numThreads = 1;
    const session = await ort.InferenceSession.create(await readFile(join(FIXTURE_DIR, "vision.onnx")), { executionProviders: ["wasm"] });
    const result = await session.run({ patches: new ort.Tensor("float32", patches, [3, 16, 192]) });
    const expected = result.embeds.data as Float32Array;
    expect(result.embeds.dims).toEqual([3, 16, 128]);

    const ours = runVisionTower(tower, patches, 3);
    expect(relativeError(ours, expected)).toBeLessThan(1e-5);
    // images are processed independently: the second image alone gives the same rows
    const second = runVisionTower(tower, patches.subarray(16 * 192, 2 * 16 * 192));
    expect(relativeError(second, expected.subarray(16 * 128, 2 * 16 * 128))).toBeLessThan(1e-5);
    await session.release();
  });
});

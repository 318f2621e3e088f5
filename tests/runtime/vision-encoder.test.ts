// The vision tower under onnxruntime-web's wasm EP (Node) against the TypeScript tower on the fixture's eval images,
// image ⇄ patch conversion against the fixture's patch bytes, and the per-encoder call counter.

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import * as ort from "onnxruntime-web";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { imageToPatchBytes, OrtVisionEncoder, patchBytesToImage, RuntimeError, TypeScriptVisionEncoder } from "../../client/index.ts";
import { base64ToBytes } from "../../runtime/vision/toy-tower.ts";
import { FIXTURE_DIR, caseImage, readEvalCases, tinyFixture, type EvalCase } from "../client/fixture-model.ts";

let encoder: OrtVisionEncoder;
let cases: EvalCase[];
const GEOMETRY = { rows: 4, cols: 4, cellPixels: 8 };

beforeAll(async () => {
  ort.env.wasm.numThreads = 1;
  const bytes = new Uint8Array(await readFile(join(FIXTURE_DIR, "vision.onnx")));
  encoder = await OrtVisionEncoder.create(ort, bytes, { cells: 16, patchDim: 192, hidden: 128 }, { executionProviders: ["wasm"] });
  cases = await readEvalCases(4);
});

afterAll(async () => {
  await encoder?.dispose();
});

function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

describe("vision encoders", () => {
  it("should give the TypeScript tower's embeddings under onnxruntime-web wasm (≤ 1e-4)", async () => {
    const fx = await tinyFixture();
    const ts = new TypeScriptVisionEncoder(fx.vision);
    const patches = new Float32Array(cases.length * 16 * 192);
    cases.forEach((c, i) => base64ToBytes(c.patches_u8).forEach((v, k) => (patches[i * 3072 + k] = v / 255)));
    const a = await encoder.encode(patches, cases.length);
    const b = await ts.encode(patches, cases.length);
    expect(a.length).toBe(cases.length * 16 * 128);
    expect(relErr(a, b)).toBeLessThan(1e-4);
    expect(encoder.calls).toBe(cases.length);
    expect(ts.calls).toBe(cases.length);
    expect(encoder.kind).toBe("ort-wasm");
  });

  it("should reject input of the wrong size without counting a call", async () => {
    const before = encoder.calls;
    await expect(encoder.encode(new Float32Array(10), 1)).rejects.toBeInstanceOf(RuntimeError);
    expect(encoder.calls).toBe(before);
  });
});

describe("images", () => {
  it("should turn a 32×32 picture into the fixture's cell patches and back", () => {
    const c = cases[0];
    const patches = base64ToBytes(c.patches_u8);
    const img = caseImage(c);
    expect([img.width, img.height]).toEqual([32, 32]);
    expect(Array.from(imageToPatchBytes(img, GEOMETRY))).toEqual(Array.from(patches));
    // RGBA (canvas ImageData) gives the same patches; cell (0,1) pixel (0,0) is image pixel (0, 8)
    const rgba = new Uint8ClampedArray(32 * 32 * 4);
    for (let p = 0; p < 32 * 32; p++) for (let ch = 0; ch < 3; ch++) rgba[p * 4 + ch] = img.data[p * 3 + ch];
    expect(Array.from(imageToPatchBytes({ width: 32, height: 32, data: rgba, channels: 4 }, GEOMETRY))).toEqual(Array.from(patches));
    expect(Array.from(patches.subarray(192, 195))).toEqual(Array.from(img.data.subarray(8 * 3, 8 * 3 + 3)));
    expect(patchBytesToImage(patches, GEOMETRY).data).toEqual(img.data);
    expect(() => imageToPatchBytes({ width: 16, height: 16, data: new Uint8Array(768) }, GEOMETRY)).toThrow(/model takes 32×32/);
  });
});

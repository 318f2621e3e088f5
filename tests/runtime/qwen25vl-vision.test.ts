// The Qwen2.5-VL vision tower against fixtures/qwen25vl-mini/reference.json (an independent plain-PyTorch port of
// the HF code): window index, cu_window_seqlens, Conv3d patch embedding, merged embeddings of both images.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parseQwen25VLConfig, type Qwen25VisionConfig } from "../../checkpoint/families/qwen2_5_vl.ts";
import { openCheckpointDir } from "../../checkpoint/io.node.ts";
import {
  loadQwen25VisionWeights,
  planQwen25Vision,
  qwen25VisionForward,
  qwen25WindowIndex,
  runQwen25VisionPlan,
  VisionError,
  type VisionWeights,
} from "../../runtime/vision/qwen2_5_vl-vision.ts";
import { linear } from "../../runtime/ops.ts";
import { loadReference, maxAbsDiff, MINI_DIR, pixelValuesNoResize, refCase, type RefImage, type Reference } from "./qwen25vl-fixture.ts";

let ref: Reference;
let cfg: Qwen25VisionConfig;
let weights: VisionWeights;

beforeAll(async () => {
  ref = loadReference();
  cfg = parseQwen25VLConfig(JSON.parse(readFileSync(join(MINI_DIR, "config.json"), "utf8"))).vision;
  const ck = await openCheckpointDir(MINI_DIR);
  weights = await loadQwen25VisionWeights(ck.source, cfg);
  await ck.source.close();
});

function imageInput(img: RefImage): { pixels: Float32Array; grid: { t: number; h: number; w: number } } {
  const resized = ref.images[img.url].resized_file;
  return pixelValuesNoResize(join(MINI_DIR, resized ?? img.url));
}

function expectVision(out: Float32Array, v: RefImage["vision"]): void {
  const [rows, width] = v.shape;
  expect(out.length).toBe(rows * width);
  expect(maxAbsDiff(out.subarray(0, 16), v.first16)).toBeLessThanOrEqual(5e-5);
  expect(maxAbsDiff(out.subarray((rows - 1) * width, (rows - 1) * width + 16), v.last_row_first16)).toBeLessThanOrEqual(5e-5);
  const l2 = Array.from({ length: rows }, (_, r) => Math.hypot(...out.subarray(r * width, (r + 1) * width)));
  expect(maxAbsDiff(l2.slice(0, 8), v.row_l2_first8)).toBeLessThanOrEqual(1e-4);
  expect(maxAbsDiff(l2, v.row_l2_all)).toBeLessThanOrEqual(1e-4);
  expect(Math.abs(out.reduce((s, x) => s + x, 0) - v.sum)).toBeLessThanOrEqual(1e-2);
}

describe("Qwen2.5-VL vision tower (qwen25vl-mini)", () => {
  it("test pixel_values (no-resize / resized PNGs) match the reference statistics", () => {
    for (const name of ["one_image", "two_turn"]) {
      const img = refCase(ref, name).images[0];
      const { pixels, grid } = imageInput(img);
      expect([grid.t, grid.h, grid.w]).toEqual(img.image_grid_thw);
      expect(maxAbsDiff(pixels.subarray(0, 16), img.pixel_values.first16)).toBeLessThanOrEqual(1e-6);
      let s = 0;
      let s2 = 0;
      for (const x of pixels) {
        s += x;
        s2 += x * x;
      }
      expect(Math.abs(s - img.pixel_values.sum)).toBeLessThanOrEqual(1e-2);
      expect(Math.abs(s2 / img.pixel_values.sum_sq - 1)).toBeLessThanOrEqual(1e-6);
    }
  });

  it("get_window_index: permutation and cu_window_seqlens equal the reference", () => {
    for (const name of ["one_image", "two_turn"]) {
      const c = refCase(ref, name);
      const grids = c.images.map((i) => ({ t: i.image_grid_thw[0], h: i.image_grid_thw[1], w: i.image_grid_thw[2] }));
      const { windowIndex, windowSegments } = qwen25WindowIndex(cfg, grids);
      expect(Array.from(windowIndex)).toEqual(c.vision_window_index);
      expect(Array.from(windowSegments)).toEqual(c.vision_cu_window_seqlens);
    }
  });

  it("Conv3d patch embedding as a matmul: row 0 equals the reference", () => {
    const c = refCase(ref, "one_image");
    const { pixels } = imageInput(c.images[0]);
    const row = new Float64Array(cfg.hiddenSize);
    linear(Float64Array.from(pixels.subarray(0, 1176)), 1, 1176, weights.get("visual.patch_embed.proj.weight")!, cfg.hiddenSize, null, row);
    expect(maxAbsDiff(row.subarray(0, 16), c.vision_patch_embed_row0_first16!)).toBeLessThanOrEqual(5e-5);
  });

  it("merged embeddings of both images equal the reference (first16, last row, row L2, sum)", () => {
    for (const name of ["one_image", "two_turn"]) {
      const img = refCase(ref, name).images[0];
      const { pixels, grid } = imageInput(img);
      const out = qwen25VisionForward(cfg, weights, pixels, [grid]);
      expectVision(out, img.vision);
    }
  });

  it("two images in one request: each image's rows equal its own run", () => {
    const a = imageInput(refCase(ref, "two_turn").images[0]);
    const b = imageInput(refCase(ref, "one_image").images[0]);
    const both = new Float32Array(a.pixels.length + b.pixels.length);
    both.set(a.pixels);
    both.set(b.pixels, a.pixels.length);
    const out = qwen25VisionForward(cfg, weights, both, [a.grid, b.grid]);
    const split = (a.grid.h * a.grid.w) / 4;
    expectVision(out.subarray(0, split * 64), refCase(ref, "two_turn").images[0].vision);
    expectVision(out.subarray(split * 64), refCase(ref, "one_image").images[0].vision);
  });

  it("the plan lists window and full blocks by fullatt_block_indexes over named weights", () => {
    const plan = planQwen25Vision(cfg, [{ t: 1, h: 4, w: 18 }]);
    const attn = plan.ops.filter((o) => o.op === "attention_block");
    expect(attn.map((o) => (o.op === "attention_block" ? o.segments : ""))).toEqual(["window", "full", "window", "full"]);
    expect(plan.ops[0]).toEqual({ op: "patch_embed", weight: "visual.patch_embed.proj.weight" });
    expect(plan.tokens).toBe(18);
    expect(Array.from(plan.fullSegments)).toEqual([0, 72]);
  });

  it("bad grids and pixel counts are typed errors", () => {
    expect(() => planQwen25Vision(cfg, [{ t: 1, h: 5, w: 18 }])).toThrow(VisionError);
    expect(() => planQwen25Vision(cfg, [])).toThrow(VisionError);
    const plan = planQwen25Vision(cfg, [{ t: 1, h: 4, w: 18 }]);
    expect(() => runQwen25VisionPlan(plan, weights, new Float32Array(10))).toThrow(/pixel_values must hold 72 × 1176/);
  });
});

// The Qwen2VLImageProcessor port against fixtures/qwen25vl-mini/reference.json (computed with PIL's Resample.c and the
// transformers processor): resized uint8 sha256/sum exact, pixel_values within the README's tolerances, the resized-PNG
// path bit-identical, smart_resize's round-half-even, and typed errors.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { PNG } from "pngjs";
import { describe, expect, it } from "vitest";
import { RuntimeError } from "../../../client/runtime/errors.ts";
import { decodeImageBytes, readImageFile } from "../../../runtime/inputs/image-decode.node.ts";
import { readImageHeader } from "../../../runtime/inputs/image-header.ts";
import { QwenImageProcessor, resizeBicubicPil, roundHalfEven, smartResize } from "../../../runtime/inputs/image-processor.ts";

const DIR = "fixtures/qwen25vl-mini";
interface RefImage {
  size_wh: [number, number];
  resized_hw: [number, number];
  resized_file: string | null;
  resized_uint8_sum: number;
  resized_uint8_sha256: string;
  image_grid_thw: [number, number, number];
  pixel_values_shape: [number, number];
}
interface RefCaseImage {
  url: string;
  image_grid_thw: number[];
  num_image_tokens: number;
  pixel_values: { shape: number[]; sum: number; sum_sq: number; first16: number[] };
}
const ref = JSON.parse(readFileSync(join(DIR, "reference.json"), "utf8")) as {
  images: Record<string, RefImage>;
  cases: { name: string; images?: RefCaseImage[] }[];
};
const processor = QwenImageProcessor.fromJson(JSON.parse(readFileSync(join(DIR, "preprocessor_config.json"), "utf8")));

function sums(v: Float32Array): { sum: number; sumSq: number } {
  let sum = 0;
  let sumSq = 0;
  for (const x of v) {
    sum += x;
    sumSq += x * x;
  }
  return { sum, sumSq };
}

function u8sum(b: Uint8Array): number {
  let s = 0;
  for (const x of b) s += x;
  return s;
}

describe("smart_resize", () => {
  it("rounds half to even like Python's round()", () => {
    expect([0.5, 1.5, 2.5, 3.5, -1.5, 2.4999, 2.5001].map(roundHalfEven)).toEqual([0, 2, 2, 4, -2, 2, 3]);
    // 70/28 = 2.5 → 2 (Python), not 3; 98/28 = 3.5 → 4
    expect(smartResize(70, 98, 28, 56 * 56, 28 * 28 * 1280)).toEqual([56, 112]);
  });
  it("matches the reference sizes and the min/max pixel branches", () => {
    for (const img of Object.values(ref.images)) {
      expect(smartResize(img.size_wh[1], img.size_wh[0], 28, 3136, 12845056)).toEqual(img.resized_hw);
    }
    // worked by hand from the formula: 10×10 → beta = sqrt(3136/100) = 5.6 → ceil(56/28)·28 = 56
    expect(smartResize(10, 10, 28, 3136, 12845056)).toEqual([56, 56]);
    // 4000×3000 with max 1003520 (28·28·1280): beta = sqrt(12e6/1003520) ≈ 3.458 → floor(867.5/28)·28 = 840, floor(1156.7/28)·28 = 1148 (Python gives the same)
    expect(smartResize(3000, 4000, 28, 3136, 1003520)).toEqual([840, 1148]);
  });
  it("refuses an aspect ratio above 200 with a typed error", () => {
    expect(() => smartResize(1, 300, 28, 3136, 12845056)).toThrow(expect.objectContaining({ code: "unsupported_image" }));
  });
});

describe("image processor vs reference.json", () => {
  for (const [url, img] of Object.entries(ref.images)) {
    it(`${url}: PIL-exact resize (sha256 and sum of the uint8 HWC bytes), grid ${img.image_grid_thw.join("×")}`, async () => {
      const rgb = await readImageFile(join(DIR, url));
      expect([rgb.width, rgb.height]).toEqual(img.size_wh);
      const out = processor.process(rgb);
      expect([out.resized.height, out.resized.width]).toEqual(img.resized_hw);
      expect(u8sum(out.resized.data as Uint8Array)).toBe(img.resized_uint8_sum);
      expect(bytesToHex(sha256(out.resized.data as Uint8Array))).toBe(img.resized_uint8_sha256);
      expect(out.gridThw).toEqual(img.image_grid_thw);
      expect(out.shape).toEqual(img.pixel_values_shape);
      if (img.resized_file !== null) {
        // PIL's own output, saved by the generator: our resize equals it byte for byte
        const pil = await readImageFile(join(DIR, img.resized_file));
        expect(Buffer.compare(Buffer.from(pil.data), Buffer.from(out.resized.data))).toBe(0);
      }
    });
  }

  const caseImages = ref.cases.flatMap((c) => (c.images ?? []).map((im, i) => ({ name: `${c.name}#${i}`, im })));
  it("covers every image of every case", () => expect(caseImages.length).toBeGreaterThanOrEqual(2));
  for (const { name, im } of caseImages) {
    it(`${name} (${im.url}): pixel_values first16 / sum / sum_sq within tolerance, token count`, async () => {
      const out = processor.process(await readImageFile(join(DIR, im.url)));
      expect(out.gridThw).toEqual(im.image_grid_thw);
      expect(out.numImageTokens).toBe(im.num_image_tokens);
      expect(out.shape).toEqual(im.pixel_values.shape);
      const first16 = Array.from(out.pixelValues.subarray(0, 16));
      first16.forEach((v, i) => expect(Math.abs(v - im.pixel_values.first16[i])).toBeLessThanOrEqual(1e-6));
      const { sum, sumSq } = sums(out.pixelValues);
      expect(Math.abs(sum - im.pixel_values.sum)).toBeLessThanOrEqual(1e-2);
      expect(Math.abs(sumSq - im.pixel_values.sum_sq) / im.pixel_values.sum_sq).toBeLessThanOrEqual(1e-6);
    });
  }

  it("the resized PNG yields bit-identical pixel_values (no resize step)", async () => {
    const [url, img] = Object.entries(ref.images).find(([, v]) => v.resized_file !== null)!;
    const a = processor.process(await readImageFile(join(DIR, url)));
    const b = processor.process(await readImageFile(join(DIR, img.resized_file!)));
    expect(b.resized.data).toEqual(a.resized.data);
    expect(Buffer.compare(Buffer.from(a.pixelValues.buffer), Buffer.from(b.pixelValues.buffer))).toBe(0);
  });

  it("orders patches in 2×2 merge groups, each row (channel, frame, y, x)", () => {
    // 56×56 image whose pixel value encodes its 14-px patch: R = patch row, G = patch col, B = 7
    const w = 56;
    const data = new Uint8Array(w * w * 3);
    for (let y = 0; y < w; y++) for (let x = 0; x < w; x++) data.set([Math.floor(y / 14), Math.floor(x / 14), 7], (y * w + x) * 3);
    const p = new QwenImageProcessor({ ...processor.config, doNormalize: false, doRescale: false });
    const out = p.process({ width: w, height: w, data, channels: 3 });
    expect(out.gridThw).toEqual([1, 4, 4]);
    const rowLen = 3 * 2 * 14 * 14;
    const at = (r: number) => [out.pixelValues[r * rowLen], out.pixelValues[r * rowLen + 2 * 196], out.pixelValues[r * rowLen + 4 * 196]];
    // rows 0..3 are the top-left 2×2 group (0,0) (0,1) (1,0) (1,1); row 4 starts the group to its right
    expect([0, 1, 2, 3, 4, 5, 8].map(at)).toEqual([[0, 0, 7], [0, 1, 7], [1, 0, 7], [1, 1, 7], [0, 2, 7], [0, 3, 7], [2, 0, 7]]);
    // frame 1 duplicates frame 0
    expect(out.pixelValues.subarray(196, 392)).toEqual(out.pixelValues.subarray(0, 196));
  });
});

describe("PIL bicubic", () => {
  it("clamps the 8-bit intermediate: a hard edge overshoots and saturates at 0 and 255", () => {
    // 8×1 black|white upscaled to 16 wide: bicubic rings below 0 / above 255 next to the edge; PIL clips them
    const src = new Uint8Array(8 * 3);
    for (let x = 4; x < 8; x++) src.fill(255, x * 3, x * 3 + 3);
    const out = resizeBicubicPil(src, 8, 1, 16, 1);
    const r = Array.from({ length: 16 }, (_, i) => out[i * 3]);
    expect(r.slice(0, 6)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(r.slice(10)).toEqual([255, 255, 255, 255, 255, 255]);
    expect(r[7]).toBeGreaterThan(0);
    expect(r[8]).toBeLessThan(255);
  });
  it("leaves an unchanged size untouched", () => {
    const src = Uint8Array.from({ length: 5 * 4 * 3 }, (_, i) => (i * 37) % 256);
    expect(resizeBicubicPil(src, 5, 4, 5, 4)).toEqual(src);
  });
});

describe("decoding and typed errors", () => {
  it("drops alpha and expands grayscale like PIL's convert('RGB')", () => {
    const png = new PNG({ width: 2, height: 1 });
    png.data.set([10, 20, 30, 0, 200, 100, 50, 128]);
    const rgb = decodeImageBytes(new Uint8Array(PNG.sync.write(png)));
    expect(Array.from(rgb.data)).toEqual([10, 20, 30, 200, 100, 50]);
    const gray = new Uint8Array(PNG.sync.write(png, { colorType: 0, inputColorType: 6 }));
    const g = decodeImageBytes(gray);
    expect(g.data[0]).toBe(g.data[1]);
    expect(g.data[1]).toBe(g.data[2]);
  });
  it("reads a JPEG header and decodes a JPEG", async () => {
    const jpeg = (await import("jpeg-js")).default;
    const raw = { width: 30, height: 20, data: Buffer.alloc(30 * 20 * 4, 128) };
    const bytes = new Uint8Array(jpeg.encode(raw, 90).data);
    expect(readImageHeader(bytes)).toMatchObject({ format: "jpeg", width: 30, height: 20 });
    const img = decodeImageBytes(bytes);
    expect([img.width, img.height, img.data.length]).toEqual([30, 20, 30 * 20 * 3]);
    expect(Math.abs(img.data[0] - 128)).toBeLessThanOrEqual(2);
  });
  it("refuses non-images, truncated files and too many pixels, typed", () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(RuntimeError);
        return (e as RuntimeError).code;
      }
      return "no error";
    };
    expect(code(() => decodeImageBytes(new TextEncoder().encode("GIF89a not an image")))).toBe("unsupported_image");
    const png = new Uint8Array(readFileSync(join(DIR, "images/gradient_252x56.png")));
    expect(code(() => decodeImageBytes(png.subarray(0, 200)))).toBe("unsupported_image");
    expect(code(() => decodeImageBytes(png, { maxInputPixels: 252 * 56 - 1 }))).toBe("too_many_pixels");
    expect(decodeImageBytes(png, { maxInputPixels: 252 * 56 }).width).toBe(252);
    expect(code(() => processor.process({ width: 3, height: 2, data: new Uint8Array(5), channels: 3 }))).toBe("unsupported_image");
  });
});

describe("browser decode path (the parts Node can run)", () => {
  it("RGBA ImageData → imageDataToRgb → the same resize gives the same bytes as the Node decoder", async () => {
    const { imageDataToRgb, decodeBrowserImage } = await import("../../../runtime/inputs/image-decode.ts");
    const file = join(DIR, "images/noisy_300x150.png");
    const rgba = PNG.sync.read(readFileSync(file));
    const viaCanvasShape = imageDataToRgb({ width: rgba.width, height: rgba.height, data: new Uint8ClampedArray(rgba.data) });
    const a = processor.process(viaCanvasShape);
    const b = processor.process(await readImageFile(file));
    expect(Buffer.compare(Buffer.from(a.pixelValues.buffer), Buffer.from(b.pixelValues.buffer))).toBe(0);
    // a Blob that is no image is refused before any decoder runs (Node has Blob but no createImageBitmap)
    await expect(decodeBrowserImage(new Blob([new Uint8Array([1, 2, 3, 4])]))).rejects.toMatchObject({ code: "unsupported_image" });
    const big = new Blob([readFileSync(file)]);
    await expect(decodeBrowserImage(big, { maxInputPixels: 1000 })).rejects.toMatchObject({ code: "too_many_pixels" });
  });
});

// Qwen2VLImageProcessor (the slow, PIL-based one) in TypeScript, browser-safe: smart_resize, PIL-exact bicubic resize of
// the uint8 image, rescale, normalize, temporal duplication and the processor's patch flatten order →
// pixel_values [grid_t·grid_h·grid_w, C·T·P·P] and image_grid_thw. The Node and browser decoders both end in
// `RgbImage`, so both feed this one resize and agree bit for bit.
// Reference: fixtures/qwen25vl-mini/README.md "Image processor" (transformers image_processing_qwen2_vl.py, Pillow
// src/libImaging/Resample.c).

import { RuntimeError } from "../errors.ts";
import type { RgbImage } from "./messages.ts";

/** The fields of `preprocessor_config.json` this processor uses (Qwen2VLImageProcessor). */
export interface ImageProcessorConfig {
  readonly patchSize: number;
  readonly mergeSize: number;
  readonly temporalPatchSize: number;
  readonly minPixels: number;
  readonly maxPixels: number;
  readonly imageMean: readonly [number, number, number];
  readonly imageStd: readonly [number, number, number];
  readonly rescaleFactor: number;
  readonly doResize: boolean;
  readonly doRescale: boolean;
  readonly doNormalize: boolean;
}

/** One processed image: rows of `pixelValues` are patches in the processor's order (2×2 merge groups). */
export interface ProcessedImage {
  /** Float32 [patches × C·T·P·P], row-major; each row is (channel, frame, row, col). */
  readonly pixelValues: Float32Array;
  /** Patches (rows of pixelValues) and the row length. */
  readonly shape: readonly [number, number];
  /** [grid_t, grid_h, grid_w] in patches. */
  readonly gridThw: readonly [number, number, number];
  /** `<|image_pad|>` tokens this image takes: grid_t·grid_h·grid_w / merge². */
  readonly numImageTokens: number;
  /** The resized RGB uint8 image (HWC) the pixel values come from. */
  readonly resized: RgbImage;
}

/** Python's round() on a float: ties go to the even integer (round(2.5) = 2, round(3.5) = 4). */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * transformers' `smart_resize`: both sides multiples of `factor`, area within [minPixels, maxPixels], aspect ratio kept
 * as far as possible. Returns [height, width].
 */
export function smartResize(height: number, width: number, factor: number, minPixels: number, maxPixels: number): [number, number] {
  if (!(height > 0 && width > 0)) throw new RuntimeError("unsupported_image", `image is ${width}×${height}: both sides must be at least 1 pixel`);
  if (Math.max(height, width) / Math.min(height, width) > 200) {
    throw new RuntimeError("unsupported_image", `image is ${width}×${height}: the aspect ratio must be at most 200 (Qwen2-VL's smart_resize)`);
  }
  let hBar = roundHalfEven(height / factor) * factor;
  let wBar = roundHalfEven(width / factor) * factor;
  if (hBar * wBar > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    hBar = Math.max(factor, Math.floor(height / beta / factor) * factor);
    wBar = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (hBar * wBar < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    hBar = Math.ceil((height * beta) / factor) * factor;
    wBar = Math.ceil((width * beta) / factor) * factor;
  }
  return [hBar, wBar];
}

// ---- PIL's bicubic resize (Resample.c, 8 bits per channel) ----

const PRECISION_BITS = 32 - 8 - 2;

function bicubicFilter(xIn: number): number {
  const a = -0.5;
  const x = xIn < 0 ? -xIn : xIn;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

interface Coeffs {
  readonly ksize: number;
  /** Per output pixel: first input index and tap count. */
  readonly bounds: Int32Array;
  /** 22-bit fixed-point weights, ksize per output pixel. */
  readonly kk: Int32Array;
}

/** `precompute_coeffs` + `normalize_coeffs_8bpc` for the box [0, inSize). */
function precomputeCoeffs(inSize: number, outSize: number): Coeffs {
  const support0 = 2.0; // bicubic
  const scale = inSize / outSize;
  const filterscale = scale < 1.0 ? 1.0 : scale;
  const support = support0 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1.0 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    let ww = 0.0;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    k.fill(0);
    for (let x = 0; x < xmax; x++) {
      const w = bicubicFilter((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) if (ww !== 0.0) k[x] /= ww;
    for (let x = 0; x < ksize; x++) {
      const v = k[x];
      kk[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(v: number): number {
  if (v >= 1 << PRECISION_BITS << 8) return 255;
  if (v <= 0) return 0;
  return v >> PRECISION_BITS;
}

/** Packed RGB uint8 (HWC, 3 channels) of any RgbImage; alpha is dropped as PIL's RGBA→RGB convert does. */
export function toRgb(image: RgbImage): Uint8Array {
  const ch = image.channels ?? 3;
  const n = image.width * image.height;
  if (!Number.isInteger(image.width) || !Number.isInteger(image.height) || image.width < 1 || image.height < 1) {
    throw new RuntimeError("unsupported_image", `image size ${image.width}×${image.height} is not a positive integer size`);
  }
  if (image.data.length !== n * ch) {
    throw new RuntimeError("unsupported_image", `image data has ${image.data.length} bytes, expected ${image.width}×${image.height}×${ch}`);
  }
  if (ch === 3) return image.data instanceof Uint8Array ? image.data : new Uint8Array(image.data);
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    out[i * 3] = image.data[i * 4];
    out[i * 3 + 1] = image.data[i * 4 + 1];
    out[i * 3 + 2] = image.data[i * 4 + 2];
  }
  return out;
}

/** Where pixel k of line j is, in pixels from the start of the buffer: j·line + k·step. */
interface PassLayout {
  readonly step: number;
  readonly line: number;
}

/**
 * One pass of PIL's separable bicubic resample (ImagingResampleHorizontal/Vertical_8bpc) along one axis of an RGB
 * uint8 image: each of `lines` lines of `inLen` pixels becomes `outLen` pixels (22-bit fixed-point weights, rounding
 * offset, clipped to 0…255). `from` / `to` give the layout of the lines in the input and the output buffer, so the one
 * loop serves the horizontal and the vertical pass.
 */
function resamplePass(src: Uint8Array, inLen: number, outLen: number, lines: number, from: PassLayout, to: PassLayout): Uint8Array {
  const { ksize, bounds, kk } = precomputeCoeffs(inLen, outLen);
  const half = 1 << (PRECISION_BITS - 1);
  const out = new Uint8Array(lines * outLen * 3);
  for (let j = 0; j < lines; j++) {
    for (let i = 0; i < outLen; i++) {
      const min = bounds[i * 2];
      const count = bounds[i * 2 + 1];
      const kOff = i * ksize;
      let s0 = half;
      let s1 = half;
      let s2 = half;
      for (let k = 0; k < count; k++) {
        const w = kk[kOff + k];
        const p = (j * from.line + (k + min) * from.step) * 3;
        s0 += src[p] * w;
        s1 += src[p + 1] * w;
        s2 += src[p + 2] * w;
      }
      const o = (j * to.line + i * to.step) * 3;
      out[o] = clip8(s0);
      out[o + 1] = clip8(s1);
      out[o + 2] = clip8(s2);
    }
  }
  return out;
}

/**
 * PIL `Image.resize((outW, outH), Image.BICUBIC, reducing_gap=None)` of an RGB uint8 image, bit-exact: horizontal pass
 * first into an 8-bit intermediate, then the vertical pass; a pass is skipped when its dimension is unchanged.
 */
export function resizeBicubicPil(rgb: Uint8Array, width: number, height: number, outW: number, outH: number): Uint8Array {
  if (rgb.length !== width * height * 3) throw new RuntimeError("unsupported_image", `RGB data has ${rgb.length} bytes, expected ${width}×${height}×3`);
  if (!(outW >= 1 && outH >= 1)) throw new RuntimeError("unsupported_image", `cannot resize to ${outW}×${outH}`);
  let src = rgb;
  // horizontal pass: `height` lines of `width` pixels, adjacent samples 1 pixel apart, lines a row apart
  if (outW !== width) src = resamplePass(src, width, outW, height, { step: 1, line: width }, { step: 1, line: outW });
  // vertical pass: `outW` columns of `height` pixels, samples a row apart, columns 1 pixel apart
  if (outH !== height) src = resamplePass(src, height, outH, outW, { step: outW, line: 1 }, { step: outW, line: 1 });
  return src === rgb ? rgb.slice() : src;
}

/**
 * PIL's `ImageOps.exif_transpose` for an EXIF orientation (2…8; 1 = as stored), which transformers' `load_image`
 * applies before processing: 2 mirror, 3 rotate 180°, 4 flip, 5 transpose, 6 rotate 90° clockwise, 7 transverse,
 * 8 rotate 90° counter-clockwise.
 */
export function applyExifOrientation(image: RgbImage, orientation: number): RgbImage {
  if (orientation <= 1 || orientation > 8) return image;
  const rgb = toRgb(image);
  const W = image.width;
  const H = image.height;
  const swap = orientation >= 5;
  const ow = swap ? H : W;
  const oh = swap ? W : H;
  const out = new Uint8Array(ow * oh * 3);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let sx: number;
      let sy: number;
      switch (orientation) {
        case 2: sx = W - 1 - x; sy = y; break;
        case 3: sx = W - 1 - x; sy = H - 1 - y; break;
        case 4: sx = x; sy = H - 1 - y; break;
        case 5: sx = y; sy = x; break;
        case 6: sx = y; sy = H - 1 - x; break;
        case 7: sx = W - 1 - y; sy = H - 1 - x; break;
        default: sx = W - 1 - y; sy = x; break; // 8
      }
      const s = (sy * W + sx) * 3;
      const d = (y * ow + x) * 3;
      out[d] = rgb[s];
      out[d + 1] = rgb[s + 1];
      out[d + 2] = rgb[s + 2];
    }
  }
  return { width: ow, height: oh, data: out, channels: 3 };
}

// ---- config ----

function num(j: Record<string, unknown>, key: string, fallback?: number): number {
  const v = j[key] ?? fallback;
  if (typeof v !== "number" || !Number.isFinite(v)) throw new RuntimeError("bad_model", `preprocessor_config.json: ${key} must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function triple(j: Record<string, unknown>, key: string, fallback: readonly [number, number, number]): [number, number, number] {
  const v = j[key] ?? fallback;
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === "number" && Number.isFinite(x))) {
    throw new RuntimeError("bad_model", `preprocessor_config.json: ${key} must be three numbers`);
  }
  return [v[0] as number, v[1] as number, v[2] as number];
}

/** From `preprocessor_config.json` (Qwen2VLImageProcessor; `size.{shortest,longest}_edge` as newer files write them). */
export function parseImageProcessorConfig(json: unknown): ImageProcessorConfig {
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw new RuntimeError("bad_model", "preprocessor_config.json must be a JSON object");
  const j = json as Record<string, unknown>;
  const size = (j.size ?? {}) as Record<string, unknown>;
  const resample = j.resample ?? 3;
  if (resample !== 3) throw new RuntimeError("bad_model", `preprocessor_config.json: resample ${JSON.stringify(resample)} is not supported (3 = bicubic)`);
  const cfg: ImageProcessorConfig = {
    patchSize: num(j, "patch_size", 14),
    mergeSize: num(j, "merge_size", 2),
    temporalPatchSize: num(j, "temporal_patch_size", 2),
    minPixels: num(j, "min_pixels", typeof size.shortest_edge === "number" ? size.shortest_edge : 56 * 56),
    maxPixels: num(j, "max_pixels", typeof size.longest_edge === "number" ? size.longest_edge : 28 * 28 * 1280),
    imageMean: triple(j, "image_mean", [0.48145466, 0.4578275, 0.40821073]),
    imageStd: triple(j, "image_std", [0.26862954, 0.26130258, 0.27577711]),
    rescaleFactor: num(j, "rescale_factor", 1 / 255),
    doResize: j.do_resize !== false,
    doRescale: j.do_rescale !== false,
    doNormalize: j.do_normalize !== false,
  };
  for (const k of ["patchSize", "mergeSize", "temporalPatchSize"] as const) {
    if (!Number.isInteger(cfg[k]) || cfg[k] < 1) throw new RuntimeError("bad_model", `preprocessor_config.json: ${k} must be a positive integer`);
  }
  if (!(cfg.minPixels > 0 && cfg.maxPixels >= cfg.minPixels)) throw new RuntimeError("bad_model", "preprocessor_config.json: need 0 < min_pixels ≤ max_pixels");
  return cfg;
}

// ---- the processor ----

export class QwenImageProcessor {
  constructor(readonly config: ImageProcessorConfig) {}

  static fromJson(json: unknown): QwenImageProcessor {
    return new QwenImageProcessor(parseImageProcessorConfig(json));
  }

  /** factor = patch · merge (28 for Qwen2.5-VL). */
  get factor(): number {
    return this.config.patchSize * this.config.mergeSize;
  }

  /** [height, width] the image is resized to. */
  targetSize(height: number, width: number): [number, number] {
    const c = this.config;
    if (!c.doResize) {
      if (height % this.factor !== 0 || width % this.factor !== 0) {
        throw new RuntimeError("unsupported_image", `image is ${width}×${height}; without do_resize both sides must be multiples of ${this.factor}`);
      }
      return [height, width];
    }
    return smartResize(height, width, this.factor, c.minPixels, c.maxPixels);
  }

  /** `<|image_pad|>` count for an image of this size, without processing it. */
  imageTokens(height: number, width: number): number {
    const [h, w] = this.targetSize(height, width);
    return (h / this.config.patchSize) * (w / this.config.patchSize) / (this.config.mergeSize * this.config.mergeSize);
  }

  /** Resize (PIL-exact) only: the RGB uint8 image the pixel values are computed from. */
  resize(image: RgbImage): RgbImage {
    const rgb = toRgb(image);
    const [h, w] = this.targetSize(image.height, image.width);
    const data = h === image.height && w === image.width ? rgb : resizeBicubicPil(rgb, image.width, image.height, w, h);
    return { width: w, height: h, data, channels: 3 };
  }

  process(image: RgbImage): ProcessedImage {
    const c = this.config;
    const resized = this.resize(image);
    const P = c.patchSize;
    const M = c.mergeSize;
    const T = c.temporalPatchSize;
    const H = resized.height;
    const W = resized.width;
    const gh = H / P;
    const gw = W / P;
    if (gh % M !== 0 || gw % M !== 0) throw new RuntimeError("unsupported_image", `resized grid ${gh}×${gw} is not a multiple of merge_size ${M}`);
    const gt = 1; // one image = one frame, duplicated to temporal_patch_size
    // Per channel lookup: uint8 → normalized float32, computed as the processor does (rescale in f64 then f32,
    // normalize in f32 with f32 mean/std).
    const lut: Float32Array[] = [0, 1, 2].map((ch) => {
      const t = new Float32Array(256);
      const mean = Math.fround(c.imageMean[ch]);
      const std = Math.fround(c.imageStd[ch]);
      for (let v = 0; v < 256; v++) {
        let x = c.doRescale ? Math.fround(v * c.rescaleFactor) : v;
        if (c.doNormalize) x = Math.fround(Math.fround(x - mean) / std);
        t[v] = x;
      }
      return t;
    });
    const rowLen = 3 * T * P * P;
    const rows = gt * gh * gw;
    const out = new Float32Array(rows * rowLen);
    const data = resized.data;
    let r = 0;
    // Row order: (t, bh, bw, mh, mw); column order: (c, frame, py, px).
    for (let bh = 0; bh < gh / M; bh++) {
      for (let bw = 0; bw < gw / M; bw++) {
        for (let mh = 0; mh < M; mh++) {
          for (let mw = 0; mw < M; mw++) {
            const y0 = (bh * M + mh) * P;
            const x0 = (bw * M + mw) * P;
            let o = r * rowLen;
            for (let ch = 0; ch < 3; ch++) {
              const t = lut[ch];
              for (let f = 0; f < T; f++) {
                for (let py = 0; py < P; py++) {
                  const p = ((y0 + py) * W + x0) * 3 + ch;
                  for (let px = 0; px < P; px++) out[o++] = t[data[p + px * 3]];
                }
              }
            }
            r++;
          }
        }
      }
    }
    return {
      pixelValues: out,
      shape: [rows, rowLen],
      gridThw: [gt, gh, gw],
      numImageTokens: rows / (M * M),
      resized,
    };
  }
}

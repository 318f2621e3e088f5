// Test-side helpers for fixtures/qwen25vl-mini: reference.json types, a minimal PNG decoder (8-bit RGB/RGBA,
// non-interlaced; enough for the fixture's images) and pixel_values for images that need no resize. The product's
// image processor (runtime/inputs/image-processor.ts) is checked separately; these helpers are checked against the
// reference's pixel_values statistics in the tests that use them.

import type { InputMessage } from "../../runtime/inputs/processor.ts";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { inflateSync } from "node:zlib";

export const MINI_DIR = "fixtures/qwen25vl-mini";

export interface RefVision {
  shape: [number, number];
  first16: number[];
  last_row_first16: number[];
  row_l2_first8: number[];
  row_l2_all: number[];
  sum: number;
}

export interface RefImage {
  url: string;
  image_grid_thw: [number, number, number];
  num_image_tokens: number;
  pixel_values: { shape: [number, number]; sum: number; sum_sq: number; first16: number[] };
  vision: RefVision;
}

export interface RefCase {
  name: string;
  input_ids: number[];
  num_tokens: number;
  images: RefImage[];
  position_ids: [number[], number[], number[]];
  rope_deltas: number;
  logits_last: { top20: [number, number][]; logsumexp: number };
  greedy: { n: number; ids: number[]; top1_margins: number[]; top1_logits: number[] };
  kv_last_prompt_token: { layer: number; k: number[][]; v: number[][] }[];
  vision_window_index?: number[];
  vision_cu_window_seqlens?: number[];
  vision_patch_embed_row0_first16?: number[];
  turn1?: { input_ids_len: number; rope_deltas: number; answer_ids: number[] };
}

export interface Reference {
  images: Record<string, { resized_file: string | null; image_grid_thw: [number, number, number] }>;
  cases: RefCase[];
}

export function loadReference(): Reference {
  return JSON.parse(readFileSync(join(MINI_DIR, "reference.json"), "utf8")) as Reference;
}

export function refCase(ref: Reference, name: string): RefCase {
  const c = ref.cases.find((x) => x.name === name);
  if (c === undefined) throw new Error(`no case ${name}`);
  return c;
}

/** Decodes an 8-bit RGB or RGBA non-interlaced PNG to HWC RGB uint8. */
export function decodePngRgb(bytes: Uint8Array): { width: number; height: number; rgb: Uint8Array } {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let off = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Uint8Array[] = [];
  while (off < bytes.length) {
    const len = dv.getUint32(off);
    const type = String.fromCharCode(...bytes.subarray(off + 4, off + 8));
    const data = bytes.subarray(off + 8, off + 8 + len);
    if (type === "IHDR") {
      width = dv.getUint32(off + 8);
      height = dv.getUint32(off + 12);
      const depth = data[8];
      const color = data[9];
      if (depth !== 8 || (color !== 2 && color !== 6) || data[12] !== 0) throw new Error("test PNG decoder: 8-bit RGB(A) non-interlaced only");
      channels = color === 2 ? 3 : 4;
    } else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") break;
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? px[y * stride + x - channels] : 0;
      const b = y > 0 ? px[(y - 1) * stride + x] : 0;
      const c = x >= channels && y > 0 ? px[(y - 1) * stride + x - channels] : 0;
      let p: number;
      if (f === 0) p = 0;
      else if (f === 1) p = a;
      else if (f === 2) p = b;
      else if (f === 3) p = (a + b) >> 1;
      else {
        const pa = Math.abs(b - c);
        const pb = Math.abs(a - c);
        const pc = Math.abs(a + b - 2 * c);
        p = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      px[y * stride + x] = (src[x] + p) & 255;
    }
  }
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) for (let k = 0; k < 3; k++) rgb[i * 3 + k] = px[i * channels + k];
  return { width, height, rgb };
}

const MEAN = [0.48145466, 0.4578275, 0.40821073];
const STD = [0.26862954, 0.26130258, 0.27577711];

/** pixel_values of an image whose size is already a multiple of 28 (no resize), Qwen2VLImageProcessor order. */
export function pixelValuesNoResize(path: string): { pixels: Float32Array; grid: { t: number; h: number; w: number } } {
  const { width, height, rgb } = decodePngRgb(readFileSync(path));
  if (width % 28 !== 0 || height % 28 !== 0) throw new Error(`${path}: ${width}×${height} needs a resize`);
  const gh = height / 14;
  const gw = width / 14;
  const K = 3 * 2 * 14 * 14;
  const pixels = new Float32Array(gh * gw * K);
  const norm = (v: number, c: number) => Math.fround(Math.fround(Math.fround(v * (1 / 255)) - Math.fround(MEAN[c])) / Math.fround(STD[c]));
  let row = 0;
  for (let bh = 0; bh < gh / 2; bh++) {
    for (let bw = 0; bw < gw / 2; bw++) {
      for (let ih = 0; ih < 2; ih++) {
        for (let iw = 0; iw < 2; iw++) {
          let col = 0;
          for (let c = 0; c < 3; c++) {
            for (let t = 0; t < 2; t++) {
              for (let py = 0; py < 14; py++) {
                for (let px = 0; px < 14; px++) {
                  const y = (bh * 2 + ih) * 14 + py;
                  const x = (bw * 2 + iw) * 14 + px;
                  pixels[row * K + col++] = norm(rgb[(y * width + x) * 3 + c], c);
                }
              }
            }
          }
          row++;
        }
      }
    }
  }
  return { pixels, grid: { t: 1, h: gh, w: gw } };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** A reference case's OpenAI-style messages (what the separate implementation rendered). */
export const refMessages = (c: RefCase): InputMessage[] => (c as unknown as { messages: InputMessage[] }).messages;

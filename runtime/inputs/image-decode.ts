// Browser: Blob / ImageBitmap / ImageData / URL → RGB uint8 (HWC), through createImageBitmap and an OffscreenCanvas, with
// colour-space conversion and alpha premultiplication off so an opaque PNG reaches the resize with its stored bytes.
// The result goes through the same `QwenImageProcessor` (PIL-exact resize) as Node's pngjs/jpeg-js path. Limits: a
// pixel with alpha < 255 comes back un-premultiplied by the canvas (RGB may differ from the file by rounding), and
// JPEG is decoded by the browser's own decoder (it may differ from libjpeg/jpeg-js by a level).

import { RuntimeError } from "../../client/runtime/errors.ts";
import type { RgbImage } from "../../client/runtime/messages.ts";
import { checkPixelLimit, DEFAULT_MAX_INPUT_PIXELS, readImageHeader } from "./image-header.ts";

export type BrowserImageSource = Blob | ImageBitmap | ImageData | URL | string;

export interface BrowserDecodeOptions {
  readonly maxInputPixels?: number;
  /** For URL / string sources (default: globalThis.fetch). */
  readonly fetch?: typeof fetch;
}

/** RGBA ImageData → RGB. */
export function imageDataToRgb(data: { width: number; height: number; data: Uint8ClampedArray | Uint8Array }): RgbImage {
  const n = data.width * data.height;
  if (data.data.length !== n * 4) throw new RuntimeError("unsupported_image", `ImageData has ${data.data.length} bytes, expected ${data.width}×${data.height}×4`);
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    out[i * 3] = data.data[i * 4];
    out[i * 3 + 1] = data.data[i * 4 + 1];
    out[i * 3 + 2] = data.data[i * 4 + 2];
  }
  return { width: data.width, height: data.height, data: out, channels: 3 };
}

function bitmapToRgb(bitmap: ImageBitmap): RgbImage {
  if (typeof OffscreenCanvas === "undefined") throw new RuntimeError("unsupported_image", "decoding an ImageBitmap needs OffscreenCanvas");
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext("2d", { colorSpace: "srgb", willReadFrequently: true });
  if (ctx === null) throw new RuntimeError("unsupported_image", "no 2d context on OffscreenCanvas");
  ctx.drawImage(bitmap, 0, 0);
  return imageDataToRgb(ctx.getImageData(0, 0, bitmap.width, bitmap.height, { colorSpace: "srgb" }));
}

/** Decodes any browser image source to a 3-channel RgbImage. PNG/JPEG bytes are size-checked before decoding. */
export async function decodeBrowserImage(source: BrowserImageSource, options: BrowserDecodeOptions = {}): Promise<RgbImage> {
  const limit = options.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS;
  if (typeof ImageData !== "undefined" && source instanceof ImageData) {
    checkPixelLimit(source.width, source.height, limit);
    return imageDataToRgb(source);
  }
  if (typeof ImageBitmap !== "undefined" && source instanceof ImageBitmap) {
    checkPixelLimit(source.width, source.height, limit);
    return bitmapToRgb(source);
  }
  let blob: Blob;
  if (typeof source === "string" || source instanceof URL) {
    const f = options.fetch ?? globalThis.fetch;
    const res = await f(String(source));
    if (!res.ok) throw new RuntimeError("unsupported_image", `cannot fetch image ${String(source)}: HTTP ${res.status}`);
    blob = await res.blob();
  } else if (typeof Blob !== "undefined" && source instanceof Blob) {
    blob = source;
  } else {
    throw new RuntimeError("unsupported_image", "image source must be a Blob, ImageBitmap, ImageData or URL");
  }
  const header = readImageHeader(new Uint8Array(await blob.slice(0, 65536).arrayBuffer()));
  checkPixelLimit(header.width, header.height, limit);
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  } catch (cause) {
    throw new RuntimeError("unsupported_image", `the browser cannot decode this ${header.format.toUpperCase()} image: ${(cause as Error).message}`, { cause });
  }
  try {
    return bitmapToRgb(bitmap);
  } finally {
    bitmap.close();
  }
}

// Node: PNG and JPEG bytes or files → RGB uint8 (HWC), decoded by pngjs and jpeg-js. Converts as PIL's
// `Image.open(…).convert("RGB")` does for the common cases: palette and grayscale expand to RGB, alpha is dropped (not
// composited), 16-bit samples keep their high byte. The result feeds the same resize as the browser path.

import { readFile } from "node:fs/promises";
import jpeg from "jpeg-js";
import { PNG } from "pngjs";
import { RuntimeError } from "../../client/runtime/errors.ts";
import type { RgbImage } from "../../client/runtime/messages.ts";
import { checkPixelLimit, DEFAULT_MAX_INPUT_PIXELS, readImageHeader } from "./image-header.ts";

export interface DecodeOptions {
  /** Refuse images with more pixels than this before decoding (default: Pillow's decompression-bomb limit). */
  readonly maxInputPixels?: number;
}

function rgbaToRgb(rgba: ArrayLike<number>, n: number, shift: number): Uint8Array {
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    out[i * 3] = rgba[i * 4] >> shift;
    out[i * 3 + 1] = rgba[i * 4 + 1] >> shift;
    out[i * 3 + 2] = rgba[i * 4 + 2] >> shift;
  }
  return out;
}

/** Decodes PNG or JPEG bytes to a 3-channel RgbImage. */
export function decodeImageBytes(bytes: Uint8Array, options: DecodeOptions = {}): RgbImage {
  const header = readImageHeader(bytes);
  checkPixelLimit(header.width, header.height, options.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS);
  const n = header.width * header.height;
  try {
    if (header.format === "png") {
      const sixteen = header.bitDepth === 16;
      const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { skipRescale: sixteen });
      const data = sixteen ? new Uint16Array((png.data as unknown as Uint16Array).buffer, (png.data as unknown as Uint16Array).byteOffset, n * 4) : png.data;
      return { width: png.width, height: png.height, data: rgbaToRgb(data, n, sixteen ? 8 : 0), channels: 3 };
    }
    const maxMp = (options.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS) / 1e6;
    const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, maxResolutionInMP: maxMp, maxMemoryUsageInMB: 4096 });
    if (img.data.length !== n * 3) throw new Error(`decoded ${img.data.length} bytes for ${header.width}×${header.height}×3`);
    return { width: img.width, height: img.height, data: new Uint8Array(img.data.buffer, img.data.byteOffset, img.data.byteLength), channels: 3 };
  } catch (cause) {
    if (cause instanceof RuntimeError) throw cause;
    throw new RuntimeError("unsupported_image", `cannot decode the ${header.format.toUpperCase()} image: ${(cause as Error).message}`, { cause });
  }
}

/** Reads and decodes a PNG or JPEG file. */
export async function readImageFile(path: string, options: DecodeOptions = {}): Promise<RgbImage> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (cause) {
    throw new RuntimeError("unsupported_image", `cannot read image file ${path}: ${(cause as Error).message}`, { cause });
  }
  try {
    return decodeImageBytes(bytes, options);
  } catch (e) {
    if (e instanceof RuntimeError) throw new RuntimeError(e.code, `${path}: ${e.message}`, { cause: e });
    throw e;
  }
}

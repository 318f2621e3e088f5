// Image format sniffing and header sizes (PNG IHDR, JPEG SOFn), browser-safe: the decoders check the pixel limit here,
// before decoding anything.

import { RuntimeError } from "../../client/runtime/errors.ts";

export type ImageFormat = "png" | "jpeg";

/** Pillow's decompression-bomb limit (2 × Image.MAX_IMAGE_PIXELS): larger images are refused before decoding. */
export const DEFAULT_MAX_INPUT_PIXELS = 2 * 89_478_485;

export interface ImageHeader {
  readonly format: ImageFormat;
  readonly width: number;
  readonly height: number;
  /** Bits per sample (PNG: 1, 2, 4, 8, 16; JPEG: the SOF precision). */
  readonly bitDepth: number;
}

export function sniffImageFormat(bytes: Uint8Array): ImageFormat | null {
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47 && bytes[4] === 0x0d && bytes[5] === 0x0a && bytes[6] === 0x1a && bytes[7] === 0x0a) return "png";
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "jpeg";
  return null;
}

function u32be(b: Uint8Array, o: number): number {
  return ((b[o] << 24) >>> 0) + (b[o + 1] << 16) + (b[o + 2] << 8) + b[o + 3];
}

/** Format and size from the header; throws `unsupported_image` for anything but a readable PNG or JPEG header. */
export function readImageHeader(bytes: Uint8Array): ImageHeader {
  const format = sniffImageFormat(bytes);
  if (format === null) throw new RuntimeError("unsupported_image", "not a PNG or JPEG image (unknown signature)");
  if (format === "png") {
    // signature (8) + chunk length (4) + "IHDR" (4) + width (4) + height (4) + bit depth (1)
    if (bytes.length < 33 || String.fromCharCode(bytes[12], bytes[13], bytes[14], bytes[15]) !== "IHDR") {
      throw new RuntimeError("unsupported_image", "PNG without an IHDR chunk");
    }
    return { format, width: u32be(bytes, 16), height: u32be(bytes, 20), bitDepth: bytes[24] };
  }
  let o = 2;
  while (o + 4 <= bytes.length) {
    if (bytes[o] !== 0xff) throw new RuntimeError("unsupported_image", `JPEG: bad marker at byte ${o}`);
    const m = bytes[o + 1];
    if (m === 0xff) {
      o++;
      continue;
    }
    if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) {
      o += 2;
      continue;
    }
    const len = (bytes[o + 2] << 8) | bytes[o + 3];
    // SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC)
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
      if (o + 9 > bytes.length) break;
      return { format, bitDepth: bytes[o + 4], height: (bytes[o + 5] << 8) | bytes[o + 6], width: (bytes[o + 7] << 8) | bytes[o + 8] };
    }
    if (m === 0xda || m === 0xd9) break;
    o += 2 + len;
  }
  throw new RuntimeError("unsupported_image", "JPEG without a frame header (SOF)");
}

/** Throws `too_many_pixels` when width·height exceeds the limit, `unsupported_image` for an empty image. */
export function checkPixelLimit(width: number, height: number, maxInputPixels = DEFAULT_MAX_INPUT_PIXELS): void {
  if (!(width >= 1 && height >= 1)) throw new RuntimeError("unsupported_image", `image is ${width}×${height}: both sides must be at least 1 pixel`);
  if (width * height > maxInputPixels) {
    throw new RuntimeError("too_many_pixels", `image is ${width}×${height} = ${width * height} pixels, more than the limit of ${maxInputPixels}`);
  }
}

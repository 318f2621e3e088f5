// Image pixels ⇄ the fixture vision tower's cell patches: a rows×cols grid of cells, each cell×cell×3 (HWC) in the
// tower's input order (cells row-major), values pixel/255.

import { RuntimeError } from "../errors.ts";
import type { RgbImage } from "./messages.ts";

/** Geometry of the tower's input: grid of cells and pixels per cell side. */
export interface PatchGeometry {
  readonly rows: number;
  readonly cols: number;
  readonly cellPixels: number;
}

/** uint8 patches [cells × cell·cell·3] of an image whose size is exactly cols·cell × rows·cell. */
export function imageToPatchBytes(image: RgbImage, g: PatchGeometry): Uint8Array {
  const ch = image.channels ?? 3;
  const w = g.cols * g.cellPixels;
  const h = g.rows * g.cellPixels;
  if (image.width !== w || image.height !== h) {
    throw new RuntimeError("bad_messages", `image is ${image.width}×${image.height}, the model takes ${w}×${h} (${g.rows}×${g.cols} cells of ${g.cellPixels} px)`);
  }
  if (image.data.length !== w * h * ch) {
    throw new RuntimeError("bad_messages", `image data has ${image.data.length} bytes, expected ${w}×${h}×${ch}`);
  }
  const c = g.cellPixels;
  const out = new Uint8Array(g.rows * g.cols * c * c * 3);
  let o = 0;
  for (let r = 0; r < g.rows; r++) {
    for (let k = 0; k < g.cols; k++) {
      for (let y = 0; y < c; y++) {
        for (let x = 0; x < c; x++) {
          const p = ((r * c + y) * w + k * c + x) * ch;
          out[o++] = image.data[p];
          out[o++] = image.data[p + 1];
          out[o++] = image.data[p + 2];
        }
      }
    }
  }
  return out;
}

/** The inverse: an RGB image from uint8 cell patches (e.g. the fixture's `patches_u8`). */
export function patchBytesToImage(patches: Uint8Array, g: PatchGeometry): RgbImage {
  const c = g.cellPixels;
  const w = g.cols * c;
  const h = g.rows * c;
  if (patches.length !== w * h * 3) throw new RuntimeError("bad_messages", `patches have ${patches.length} bytes, expected ${w * h * 3}`);
  const data = new Uint8Array(w * h * 3);
  let o = 0;
  for (let r = 0; r < g.rows; r++) {
    for (let k = 0; k < g.cols; k++) {
      for (let y = 0; y < c; y++) {
        for (let x = 0; x < c; x++) {
          const p = ((r * c + y) * w + k * c + x) * 3;
          data[p] = patches[o++];
          data[p + 1] = patches[o++];
          data[p + 2] = patches[o++];
        }
      }
    }
  }
  return { width: w, height: h, data, channels: 3 };
}

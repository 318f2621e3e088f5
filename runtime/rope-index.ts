// Qwen2.5-VL position rule (get_rope_index): text advances by one on t/h/w; an image starting at s puts merged patch
// (row, col) at (s, s+row, s+col); text after the image resumes at max + 1 (docs/method.md §2.1).

import { MlaError } from "../format/errors.ts";
import { Modality } from "../format/cache-spec.ts";

/** Merged-patch grid of one image (rows × cols LLM tokens; one temporal step). */
export interface ImageGrid {
  readonly rows: number;
  readonly cols: number;
}

export class RopeIndexError extends MlaError<"grid_mismatch" | "missing_grid"> {
  override readonly name = "RopeIndexError";
  constructor(code: "grid_mismatch" | "missing_grid", message: string) {
    super(code, message);
  }
}

export interface BlockPositions {
  /** Stream-major [3 × count]: t row, then h row, then w row. */
  readonly positions: Int32Array;
  /** Running position the next text token gets. */
  readonly next: number;
  /** Number of grids consumed. */
  readonly imagesUsed: number;
}

/**
 * Positions of a block of tokens whose first text token gets `start`. Each maximal run of `imagePadId` tokens is one
 * image and consumes the next grid; its length must be rows·cols. Pass imagePadId = -1 for a text-only model.
 */
export function ropeIndexPositions(
  tokens: ArrayLike<number>,
  start: number,
  imagePadId: number,
  grids: readonly ImageGrid[],
): BlockPositions {
  const n = tokens.length;
  const pos = new Int32Array(3 * n);
  let next = start;
  let img = 0;
  let i = 0;
  while (i < n) {
    if (tokens[i] !== imagePadId) {
      pos[i] = next;
      pos[n + i] = next;
      pos[2 * n + i] = next;
      next++;
      i++;
      continue;
    }
    let end = i;
    while (end < n && tokens[end] === imagePadId) end++;
    const grid = grids[img];
    if (grid === undefined) {
      throw new RopeIndexError("missing_grid", `image ${img} (tokens ${i}..${end - 1}) has no grid`);
    }
    if (grid.rows * grid.cols !== end - i) {
      throw new RopeIndexError(
        "grid_mismatch",
        `image ${img} has ${end - i} pad tokens but its grid is ${grid.rows}×${grid.cols} = ${grid.rows * grid.cols}`,
      );
    }
    const s = next;
    for (let k = 0; k < end - i; k++) {
      const row = Math.floor(k / grid.cols);
      const col = k % grid.cols;
      pos[i + k] = s;
      pos[n + i + k] = s + row;
      pos[2 * n + i + k] = s + col;
    }
    next = s + Math.max(grid.rows, grid.cols); // max over the image (s + max(rows, cols) − 1) + 1
    img++;
    i = end;
  }
  return { positions: pos, next, imagesUsed: img };
}

/** Modality of each token by id (docs/method.md §13.6): image iff its id is image-routed. */
export function tokenModalities(tokens: ArrayLike<number>, imageRoutedIds: readonly number[]): Uint8Array {
  const m = new Uint8Array(tokens.length);
  for (let i = 0; i < tokens.length; i++) m[i] = imageRoutedIds.includes(tokens[i]) ? Modality.image : Modality.text;
  return m;
}

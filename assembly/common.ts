// API shared by both entries (index.ts scalar, index.simd.ts SIMD): scratch memory, parameter checks and the
// shape-agnostic fp16 paths. Mirrors as-sha256's common.ts; the entries only choose the kernels.
import { STATUS_INVALID_PARAMS, STATUS_INVALID_SHAPE, STATUS_OK } from "./status";

export const AXIS_TOKEN: i32 = 0;
export const AXIS_CHANNEL: i32 = 1;

// One scratch region right after the static data. The stub runtime never frees, so nothing is allocated per call:
// the host reserves the region once (and again only when a larger slab is needed) and reuses it.
const scratchBase: usize = (__heap_base + 15) & ~<usize>15;

/**
 * Ensures `bytes` of scratch memory starting at the returned pointer (16-byte aligned), growing memory when needed.
 * Returns 0 when memory cannot grow. Called from JS before laying out a slab.
 */
export function reserve(bytes: usize): usize {
  const end = scratchBase + bytes;
  const have = <usize>memory.size() << 16;
  if (end > have) {
    const pages = <i32>((end - have + 0xffff) >>> 16);
    if (memory.grow(pages) < 0) return 0;
  }
  return scratchBase;
}

/** Checks the parameters of a quantized block; the JS wrapper validates first, this guards the raw exports. */
export function checkBlock(rows: i32, cols: i32, bits: i32, g: i32, axis: i32): i32 {
  if (bits != 8 && bits != 4 && bits != 2) return STATUS_INVALID_PARAMS;
  if (axis != AXIS_TOKEN && axis != AXIS_CHANNEL) return STATUS_INVALID_PARAMS;
  if (rows <= 0 || cols <= 0 || g <= 0) return STATUS_INVALID_SHAPE;
  const extent = axis == AXIS_TOKEN ? cols : rows;
  if (g > extent || extent % g != 0) return STATUS_INVALID_SHAPE;
  if (<u64>rows * <u64>cols > 0x7fffffff) return STATUS_INVALID_SHAPE;
  return STATUS_OK;
}

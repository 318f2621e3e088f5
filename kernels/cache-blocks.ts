// Host-side checks and word packing of sealed blocks (format/codec QuantizedBlock) into the kernels' cache layout:
// codes are copied verbatim (their bytes are little-endian u32 words), scales and zeros are interleaved so one u32 holds
// (fp16 scale | fp16 zero << 16) for one group — read with unpack2x16float without shader-f16.
import type { QuantizedBlock } from "../format/codec/types.ts";
import type { CacheLayout } from "./geometry.ts";
import { KernelInputError } from "./errors.ts";

/** Checks that a latent block and a rope block of the same rows, written at `tokenStart`, match the cache encoding. */
export function validateSealedBlocks(layout: CacheLayout, tokenStart: number, latent: QuantizedBlock, rope: QuantizedBlock): number {
  const g = layout.geometry;
  if (!Number.isInteger(tokenStart) || tokenStart < 0) throw new KernelInputError(`tokenStart must be ≥ 0, got ${tokenStart}`);
  if (latent.axis !== layout.latentAxis) {
    throw new KernelInputError(`latent block is ${latent.axis}-axis; this cache stores ${layout.latentAxis}-axis groups`);
  }
  // Channel-axis groups span tokens: a block must cover whole groups and start on a group boundary.
  if (layout.latentAxis === "channel" && (tokenStart % layout.latentGroup !== 0 || latent.rows % layout.latentGroup !== 0)) {
    throw new KernelInputError(
      `channel-axis blocks must start and end on a ${layout.latentGroup}-token group boundary, got tokens [${tokenStart}, ${tokenStart + latent.rows})`,
    );
  }
  if (latent.cols !== g.latentWidth || latent.bits !== layout.encoding.latentBits || latent.group !== layout.latentGroup) {
    throw new KernelInputError(
      `latent block is ${latent.cols} cols, ${latent.bits} bits, group ${latent.group}; the cache expects ${g.latentWidth} cols, ${layout.encoding.latentBits} bits, group ${layout.latentGroup}`,
    );
  }
  if (rope.rows !== latent.rows) throw new KernelInputError(`rope block has ${rope.rows} rows, latent ${latent.rows}`);
  if (rope.cols !== layout.ropeWidth || rope.bits !== layout.ropeBits) {
    throw new KernelInputError(
      `rope block is ${rope.cols} cols at ${rope.bits} bits; the cache expects ${layout.ropeWidth} cols at ${layout.ropeBits} bits`,
    );
  }
  if (rope.bits !== 16 && g.ropeDims > 0 && (rope.axis !== "token" || rope.group !== g.ropeDims)) {
    throw new KernelInputError(`int rope keys need token-axis groups of r = ${g.ropeDims}, got ${rope.axis} / ${rope.group}`);
  }
  const latentBytes = (latent.rows * layout.latentWordsPerToken) * 4;
  const ropeBytes = (rope.rows * layout.ropeWordsPerToken) * 4;
  if (latent.codes.byteLength !== latentBytes || rope.codes.byteLength !== ropeBytes) {
    throw new KernelInputError(
      `code arrays are ${latent.codes.byteLength} / ${rope.codes.byteLength} bytes, expected ${latentBytes} / ${ropeBytes}`,
    );
  }
  if (latent.scales.length !== latent.rows * layout.latentGroupsPerToken || latent.zeros.length !== latent.scales.length) {
    throw new KernelInputError(`latent scales/zeros must have ${latent.rows * layout.latentGroupsPerToken} entries`);
  }
  if (rope.scales.length !== rope.rows * layout.ropeScaleWordsPerToken || rope.zeros.length !== rope.scales.length) {
    throw new KernelInputError(`rope scales/zeros must have ${rope.rows * layout.ropeScaleWordsPerToken} entries`);
  }
  return latent.rows;
}

/** One u32 per group: scale in the low half, zero in the high half. */
export function scaleZeroWords(block: QuantizedBlock): Uint32Array {
  const out = new Uint32Array(block.scales.length);
  for (let i = 0; i < out.length; i++) out[i] = (block.scales[i] | (block.zeros[i] << 16)) >>> 0;
  return out;
}

/** Codes as u32 words (little-endian), copied so the result is 4-byte aligned. */
export function codeWords(codes: Uint8Array): Uint32Array {
  const out = new Uint32Array(codes.byteLength / 4);
  new Uint8Array(out.buffer).set(codes);
  return out;
}

/** Checks f32 tail rows against the layout. */
export function validateTailRows(
  layout: CacheLayout,
  latent: Float32Array,
  rope: Float32Array,
  rows: number,
  firstRow: number,
  capacity: number,
): void {
  if (!Number.isInteger(rows) || !Number.isInteger(firstRow) || rows < 0 || firstRow < 0 || firstRow + rows > capacity) {
    throw new KernelInputError(`tail rows [${firstRow}, ${firstRow + rows}) must lie in the tail capacity [0, ${capacity})`);
  }
  if (latent.length !== rows * layout.geometry.latentWidth || rope.length !== rows * layout.ropeWidth) {
    throw new KernelInputError(
      `tail arrays have ${latent.length} / ${rope.length} values, expected ${rows}·${layout.geometry.latentWidth} / ${rows}·${layout.ropeWidth}`,
    );
  }
}

/** Interleaves tail rows into [latent | rope] per token, the f32 layout the kernels read. */
export function tailRows(layout: CacheLayout, latent: Float32Array, rope: Float32Array, rows: number): Float32Array {
  const dc = layout.geometry.latentWidth;
  const rw = layout.ropeWidth;
  const out = new Float32Array(rows * layout.tailStride);
  for (let t = 0; t < rows; t++) {
    out.set(latent.subarray(t * dc, (t + 1) * dc), t * layout.tailStride);
    out.set(rope.subarray(t * rw, (t + 1) * rw), t * layout.tailStride + dc);
  }
  return out;
}

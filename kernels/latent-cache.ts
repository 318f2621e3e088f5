// The contract of a latent KV cache store (GPU or CPU): fixed-capacity per-layer storage in the codec's packed layout,
// written in place at token offsets and grown geometrically only when a write passes the capacity.
import type { QuantizedBlock } from "../format/codec/types.ts";
import type { CacheLayout } from "./geometry.ts";
import { KernelInputError } from "./errors.ts";

export interface LatentCacheOptions {
  readonly layers: number;
  /** Initial token capacity (rounded up to 64). Default 1024. */
  readonly initialCapacity?: number;
  /** Rows of the unquantized f32 tail (the residual window). Default 64 = one chunk. */
  readonly tailCapacity?: number;
}

export interface LatentCache {
  readonly layout: CacheLayout;
  readonly layers: number;
  /** Tokens visible to attention (sealed + tail), as of the last commit. */
  readonly length: number;
  /** Tokens read from the packed codes; tokens [sealedLength, length) are read from the f32 tail. */
  readonly sealedLength: number;
  readonly capacity: number;
  readonly tailCapacity: number;
  /** How many times storage was re-allocated (geometric growth): stays O(log n) over a session. */
  readonly reallocations: number;
  /** Bytes the cache holds allocated now (codes and scales at capacity, f32 tails, modality bits; all layers). */
  readonly allocatedBytes: number;
  /** Writes sealed rows (token-axis codes) of one layer at [tokenStart, tokenStart + rows); grows if needed. */
  writeSealed(layer: number, tokenStart: number, latent: QuantizedBlock, rope: QuantizedBlock): void;
  /**
   * Writes f32 tail rows [firstRow, firstRow + rows) of one layer; tail row k is token `sealedLength + k` of the next
   * commit. A decode step writes just its new row (firstRow = length − sealedLength); sealing a chunk rewrites from 0.
   */
  writeTail(layer: number, latent: Float32Array, rope: Float32Array, rows: number, firstRow?: number): void;
  /** Sets per-token modality (0 text, 1 image) for [tokenStart, tokenStart + n). */
  writeModality(tokenStart: number, modality: ArrayLike<number>): void;
  /** Publishes lengths for the next attention calls. */
  commit(state: { readonly sealedLength: number; readonly length: number }): void;
  /** Releases the storage. */
  destroy(): void;
}

/** Capacity after growth: doubles from the current one until `needed` fits, in whole pages. */
export function grownCapacity(current: number, needed: number): number {
  let cap = Math.max(64, current);
  while (cap < needed) cap *= 2;
  return Math.ceil(cap / 64) * 64;
}

/** Shared checks of commit(). */
export function validateCommit(
  state: { readonly sealedLength: number; readonly length: number },
  capacity: number,
  tailCapacity: number,
): void {
  const { sealedLength, length } = state;
  if (!Number.isInteger(sealedLength) || !Number.isInteger(length) || sealedLength < 0 || length < sealedLength) {
    throw new KernelInputError(`commit needs integers 0 ≤ sealedLength ≤ length, got ${sealedLength} / ${length}`);
  }
  if (length > capacity) {
    throw new KernelInputError(
      `length ${length} is beyond the capacity ${capacity}; write sealed rows or modality for every token first (that grows the cache)`,
    );
  }
  if (length - sealedLength > tailCapacity) {
    throw new KernelInputError(`tail of ${length - sealedLength} tokens exceeds the tail capacity ${tailCapacity}; seal a chunk first`);
  }
}

/** Sets bits [tokenStart, tokenStart+n) of a bit-packed modality mirror; returns the touched word range. */
export function setModalityBits(words: Uint32Array, tokenStart: number, modality: ArrayLike<number>): [number, number] {
  for (let i = 0; i < modality.length; i++) {
    const v = modality[i];
    if (v !== 0 && v !== 1) throw new KernelInputError(`modality values are 0 (text) or 1 (image), got ${v}`);
    const t = tokenStart + i;
    if (v) words[t >> 5] |= 1 << (t & 31);
    else words[t >> 5] &= ~(1 << (t & 31));
  }
  return [tokenStart >> 5, ((tokenStart + modality.length + 31) >> 5)];
}

export function checkLayer(layer: number, layers: number): void {
  if (!Number.isInteger(layer) || layer < 0 || layer >= layers) {
    throw new KernelInputError(`layer ${layer} is out of range [0, ${layers})`);
  }
}

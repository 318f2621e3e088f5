// The contract between the decoder loop and an attention implementation (original GQA, MLA expanded, MLA absorbed).

import type { RopeTables } from "./rope.ts";

/** A block of new tokens being appended to the cache. */
export interface TokenBlock {
  /** Cache index of the block's first token (tokens already cached before it). */
  readonly start: number;
  readonly count: number;
  readonly ids: Int32Array;
  /** Stream-major [3 × count] M-RoPE positions (t, h, w rows; all equal for text). */
  readonly positions: Int32Array;
  /** Modality per token (format/cache-spec.ts `Modality`), routed by token id. */
  readonly modality: Uint8Array;
  /** cos/sin of every frequency pair for every token of the block. */
  readonly rope: RopeTables;
}

/** What calibration code sees of one layer's attention on one block. The arrays are copies the hook may keep. */
export interface AttentionCapture {
  readonly layer: number;
  readonly block: TokenBlock;
  /** [count × hidden] the attention input: hidden state after the layer's input RMSNorm. */
  readonly x: Float64Array;
  /** [count × n_h·d_h] pre-RoPE queries, bias added, original head layout; null for converted models. */
  readonly q: Float64Array | null;
  /** [count × n_kv·d_h] pre-RoPE keys, bias added; null for converted models. */
  readonly k: Float64Array | null;
}

export type AttentionHook = (capture: AttentionCapture) => void;

export interface AttentionBackend {
  /** true: `forwardLayer` returns a Promise (GPU kernels); drive the session with `appendAsync`. */
  readonly async?: boolean;
  /** Appends the block's keys/values to layer `layer`'s cache and writes the attention output (after o_proj,
   *  [count × hidden]) to `out`. Queries attend causally to the cache and to earlier tokens of the block. */
  forwardLayer(layer: number, x: Float64Array, block: TokenBlock, out: Float64Array, hook?: AttentionHook): void | Promise<void>;
  /** Drops every cached token at index ≥ length, in all layers. */
  truncate(length: number): void;
  /** Bytes the KV cache holds allocated now, all layers (what this session's cache costs the device). */
  readonly cacheBytes: number;
}

/** Growable row storage for one cache field: `length` rows of `width` f32 values. */
export class RowBuffer {
  data: Float32Array;
  constructor(
    readonly width: number,
    capacity = 64,
  ) {
    this.data = new Float32Array(Math.max(1, capacity) * width);
  }

  get capacity(): number {
    return this.width === 0 ? Infinity : this.data.length / this.width;
  }

  get bytes(): number {
    return this.data.byteLength;
  }

  /** Makes room for `rows` rows, keeping the first `keep` rows. */
  ensure(rows: number, keep: number): void {
    if (rows <= this.capacity) return;
    let cap = Math.max(1, this.capacity);
    while (cap < rows) cap *= 2;
    const next = new Float32Array(cap * this.width);
    next.set(this.data.subarray(0, keep * this.width));
    this.data = next;
  }
}

// Seals a latent cache slot by slot, as soon as a slot of C tokens is full (before any query reads it): quantizes each
// layer's rows with the session's codec exactly as format/chunk packChunk does for a sealed chunk, keeps the quantized
// blocks until their chunk is uploaded, and keeps the raw f32 rows of every slot not uploaded yet (to pack the raw tail
// chunk, and to unseal a slot when the tokens that filled it are rolled back).

import { MlaError } from "../../format/errors.ts";
import type { Codec, CodecParams, QuantizedBlock } from "../../format/codec/types.ts";

/** One layer of one sealed slot, as stored in a sealed chunk. */
export interface SealedLayer {
  readonly latent: QuantizedBlock;
  readonly rope: QuantizedBlock;
}

/** A slot of one layer that just became full and was quantized. */
export interface SealedSlot extends SealedLayer {
  readonly layer: number;
  readonly slotStart: number;
}

/** Quantizes one full slot of one layer and reads blocks back (the codec of a session). */
export interface SlotQuantizer {
  quantize(latent: Float32Array, rope: Float32Array, rows: number): SealedLayer;
  dequantize(block: QuantizedBlock): Float32Array;
}

export class SlotSealingError extends MlaError<"out_of_order" | "released" | "not_sealed"> {
  override readonly name = "SlotSealingError";
  constructor(code: "out_of_order" | "released" | "not_sealed", message: string) {
    super(code, message);
  }
}

/**
 * The quantizer of sealed chunks (format/chunk/pack.ts): latent with (bits, group, axis); rope keys fp16, or int8/int4
 * token-axis with one group per KV head (r values); an empty rope block when r = 0.
 */
export function codecSlotQuantizer(codec: Codec, params: CodecParams, dims: { readonly latentWidth: number; readonly ropeWidth: number; readonly ropeDims: number }): SlotQuantizer {
  const ropeBits = params.rope === "fp16" ? 16 : params.rope === "int8" ? 8 : 4;
  return {
    quantize(latent, rope, rows) {
      const lat = codec.quantize(latent, rows, dims.latentWidth, params.bits, params.group, params.axis);
      let rp: QuantizedBlock;
      if (dims.ropeWidth === 0) {
        rp = { rows, cols: 0, bits: ropeBits, group: 0, axis: "token", codes: new Uint8Array(0), scales: new Uint16Array(0), zeros: new Uint16Array(0) };
      } else if (params.rope === "fp16") {
        rp = codec.toFp16Block(rope, rows, dims.ropeWidth);
      } else {
        rp = codec.quantize(rope, rows, dims.ropeWidth, ropeBits as 8 | 4, dims.ropeDims, "token");
      }
      return { latent: lat, rope: rp };
    },
    dequantize(block) {
      return block.cols === 0 ? new Float32Array(0) : codec.dequantize(block);
    },
  };
}

/** Growable f32 rows of one layer, from the sealing's `base` token on. */
class RawRows {
  data: Float32Array;
  constructor(readonly width: number) {
    this.data = new Float32Array(Math.max(1, 64 * width));
  }
  ensure(rows: number): void {
    if (rows * this.width <= this.data.length) return;
    let cap = Math.max(64, this.data.length / Math.max(1, this.width));
    while (cap < rows) cap *= 2;
    const next = new Float32Array(cap * this.width);
    next.set(this.data);
    this.data = next;
  }
}

export class SlotSealing {
  /** First token whose raw rows are kept (slot-aligned): tokens below it are uploaded. */
  private base = 0;
  private readonly lengths: number[];
  /** Per layer: tokens below this (slot-aligned) are sealed. */
  private readonly sealedUpTo: number[];
  private readonly latentRows: RawRows[];
  private readonly ropeRows: RawRows[];
  /** slot → per-layer blocks (undefined until that layer sealed it). */
  private readonly sealed = new Map<number, (SealedLayer | undefined)[]>();

  /**
   * `quantizer` null: nothing is ever sealed (lossless "raw" storage); rows stay raw until released.
   */
  constructor(
    readonly layers: number,
    readonly slotTokens: number,
    readonly latentWidth: number,
    readonly ropeWidth: number,
    readonly quantizer: SlotQuantizer | null,
  ) {
    this.lengths = new Array<number>(layers).fill(0);
    this.sealedUpTo = new Array<number>(layers).fill(0);
    this.latentRows = Array.from({ length: layers }, () => new RawRows(latentWidth));
    this.ropeRows = Array.from({ length: layers }, () => new RawRows(ropeWidth));
  }

  /** First token still held raw (everything below was uploaded and released). */
  get rawBase(): number {
    return this.base;
  }

  /** Tokens written to `layer`. */
  lengthOf(layer: number): number {
    return this.lengths[layer];
  }

  /** Tokens of `layer` read through the codec (a multiple of C). */
  sealedLength(layer: number): number {
    return this.sealedUpTo[layer];
  }

  /**
   * Appends `count` raw rows to `layer` at token `start` (= the layer's length) and seals every slot they complete.
   * Returns the newly sealed slots in order: the caller writes them into its cache before any query reads them.
   */
  write(layer: number, start: number, latent: Float32Array, rope: Float32Array, count: number): SealedSlot[] {
    if (start !== this.lengths[layer]) {
      throw new SlotSealingError("out_of_order", `layer ${layer} holds ${this.lengths[layer]} tokens; a write at ${start} would leave a gap or overlap`);
    }
    const end = start + count;
    const lr = this.latentRows[layer];
    const rr = this.ropeRows[layer];
    lr.ensure(end - this.base);
    rr.ensure(end - this.base);
    lr.data.set(latent.subarray(0, count * this.latentWidth), (start - this.base) * this.latentWidth);
    rr.data.set(rope.subarray(0, count * this.ropeWidth), (start - this.base) * this.ropeWidth);
    this.lengths[layer] = end;
    const out: SealedSlot[] = [];
    if (this.quantizer === null) return out;
    const C = this.slotTokens;
    while (this.sealedUpTo[layer] + C <= end) {
      const slotStart = this.sealedUpTo[layer];
      const { latent: l, rope: r } = this.rawRows(layer, slotStart, C);
      const blocks = this.quantizer.quantize(l, r, C);
      const slot = slotStart / C;
      let entry = this.sealed.get(slot);
      if (!entry) {
        entry = new Array<SealedLayer | undefined>(this.layers).fill(undefined);
        this.sealed.set(slot, entry);
      }
      entry[layer] = blocks;
      this.sealedUpTo[layer] = slotStart + C;
      out.push({ layer, slotStart, ...blocks });
    }
    return out;
  }

  /** Copies of the raw rows [start, start + count) of `layer` (they must not be released). */
  rawRows(layer: number, start: number, count: number): { latent: Float32Array; rope: Float32Array } {
    if (start < this.base || start + count > this.lengths[layer]) {
      throw new SlotSealingError("released", `raw rows ${start}..${start + count - 1} of layer ${layer} are not held (held: ${this.base}..${this.lengths[layer] - 1})`);
    }
    const o = start - this.base;
    return {
      latent: this.latentRows[layer].data.slice(o * this.latentWidth, (o + count) * this.latentWidth),
      rope: this.ropeRows[layer].data.slice(o * this.ropeWidth, (o + count) * this.ropeWidth),
    };
  }

  /** The blocks of a sealed slot, every layer. */
  sealedSlot(slot: number): readonly SealedLayer[] {
    const entry = this.sealed.get(slot);
    if (!entry || entry.some((e) => e === undefined)) throw new SlotSealingError("not_sealed", `slot ${slot} is not sealed in every layer`);
    return entry as SealedLayer[];
  }

  /** Whether the rows a truncation to `length` needs raw are still held. */
  canTruncate(length: number): boolean {
    return Number.isInteger(length) && length >= 0 && Math.floor(length / this.slotTokens) * this.slotTokens >= this.base && this.lengths.every((n) => length <= n);
  }

  /**
   * Drops tokens ≥ length. A slot that the dropped tokens had completed becomes unsealed again: returns, per layer,
   * the first token that is raw now (slot-aligned), so the caller rewrites rows [that, length) from `rawRows`.
   */
  truncate(length: number): number {
    if (!this.canTruncate(length)) {
      throw new SlotSealingError("released", `cannot truncate to ${length}: raw rows are held from ${this.base} only`);
    }
    const keep = Math.floor(length / this.slotTokens) * this.slotTokens;
    for (let l = 0; l < this.layers; l++) {
      this.lengths[l] = length;
      this.sealedUpTo[l] = Math.min(this.sealedUpTo[l], keep);
    }
    for (const slot of [...this.sealed.keys()]) if (slot * this.slotTokens >= keep) this.sealed.delete(slot);
    return keep;
  }

  /** Forgets raw rows and blocks of the slots below `index` (uploaded). */
  release(index: number): void {
    const to = Math.floor(index / this.slotTokens) * this.slotTokens;
    if (to <= this.base) return;
    const k = to - this.base;
    for (let l = 0; l < this.layers; l++) {
      const n = this.lengths[l] - this.base;
      this.latentRows[l].data.copyWithin(0, k * this.latentWidth, n * this.latentWidth);
      this.ropeRows[l].data.copyWithin(0, k * this.ropeWidth, n * this.ropeWidth);
    }
    for (const slot of [...this.sealed.keys()]) if (slot * this.slotTokens < to) this.sealed.delete(slot);
    this.base = to;
  }

  /**
   * Starts over from a restored cache of `tokens` tokens: slots below ⌊tokens/C⌋·C are sealed and uploaded, the rest
   * (`tail` per layer: latent and rope rows of tokens [⌊tokens/C⌋·C, tokens)) is raw.
   */
  adopt(tokens: number, tail: readonly { readonly latent: Float32Array; readonly rope: Float32Array }[]): void {
    const base = Math.floor(tokens / this.slotTokens) * this.slotTokens;
    this.sealed.clear();
    this.base = base;
    for (let l = 0; l < this.layers; l++) {
      this.lengths[l] = base;
      this.sealedUpTo[l] = this.quantizer === null ? 0 : base;
      const n = tokens - base;
      if (n > 0) this.write(l, base, tail[l].latent, tail[l].rope, n);
    }
  }
}

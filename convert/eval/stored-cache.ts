// What a converted session's cache looks like after a round trip through mla-edge storage (docs/codec.md "Residual
// tail"): every full chunk of C committed tokens is sealed — packed with the codec into a real chunk and unpacked —
// while the unsealed tail stays raw float32. `sealAll` instead quantizes every token as it is written (no residual
// window), the worst case and the convention of the fixture README's reference table.

import type { CacheSpec } from "../../format/cache-spec.ts";
import { packChunk, unpackChunk } from "../../format/chunk/pack.ts";
import type { Axis, Bits, Codec, GroupSize, RopePolicy } from "../../format/codec/types.ts";
import type { MlaAttentionBackend, MlaCacheWrite } from "../../runtime/mla/attention.ts";
import { EvalError } from "./errors.ts";

export interface StoredCacheOptions {
  readonly codec: Codec;
  readonly bits: Bits;
  readonly group: GroupSize;
  readonly axis: Axis;
  readonly rope: RopePolicy;
  /** Tokens per sealed chunk (C); ignored when sealAll. */
  readonly chunkTokens: number;
  /** Quantize every token as it is written instead of only sealed chunks (token axis only). */
  readonly sealAll: boolean;
}

/** Quantize → dequantize rows of one block in place, with the same codec calls packChunk makes. */
function roundTripRows(opts: StoredCacheOptions, spec: CacheSpec, w: MlaCacheWrite): void {
  const { codec } = opts;
  const D = w.latent.length / w.count;
  codec.dequantize(codec.quantize(w.latent, w.count, D, opts.bits, opts.group, "token"), w.latent);
  const R = w.kRope.length / w.count;
  if (R === 0) return;
  const rope = opts.rope === "fp16" ? codec.toFp16Block(w.kRope, w.count, R) : codec.quantize(w.kRope, w.count, R, opts.rope === "int8" ? 8 : 4, spec.ropeDims, "token");
  codec.dequantize(rope, w.kRope);
}

/**
 * Seals a session's cache the way storage would. Create one per session; pass `onCacheWrite` to the MLA backend and
 * call `commit(backend, length)` after every append that belongs to the conversation (not after speculative decode
 * steps that the caller later truncates).
 */
export class StoredCacheSimulator {
  private sealedTokens = 0;
  /** Chunks sealed so far in this session. */
  sealedChunks = 0;

  constructor(
    private readonly spec: CacheSpec,
    private readonly opts: StoredCacheOptions,
  ) {
    if (opts.sealAll && opts.axis !== "token") {
      throw new EvalError("bad_options", "quantizing every token (no residual tail) needs the token axis: channel groups span a sealed chunk's rows");
    }
    if (!opts.sealAll && (!Number.isInteger(opts.chunkTokens) || opts.chunkTokens < 1)) {
      throw new EvalError("bad_options", `chunk tokens must be a positive integer, got ${opts.chunkTokens}`);
    }
  }

  /** The backend hook: in sealAll mode quantizes the rows just written before any query reads them. */
  readonly onCacheWrite = (w: MlaCacheWrite): void => {
    if (this.opts.sealAll) roundTripRows(this.opts, this.spec, w);
  };

  /** Seals every full chunk among the first `committed` tokens: pack with the codec, unpack, write back. */
  commit(backend: MlaAttentionBackend, committed: number): void {
    if (this.opts.sealAll) return;
    const C = this.opts.chunkTokens;
    const full = Math.floor(committed / C) * C;
    if (full <= this.sealedTokens) return;
    const snap = backend.exportCache();
    const { codec, bits, group, axis, rope } = this.opts;
    const dc = snap.layers[0].latent.length / snap.length;
    const rw = snap.layers[0].kRope.length / snap.length;
    for (let start = this.sealedTokens; start < full; start += C) {
      const bytes = packChunk(
        codec,
        this.spec,
        { sealed: true, bits, group, axis, rope },
        {
          tokenStart: start,
          modality: snap.modality.slice(start, start + C),
          positions: new Int32Array(3 * C), // positions travel in the header only; they do not change the values
          layerStart: 0,
          layers: snap.layers.map((l) => ({ latent: l.latent.slice(start * dc, (start + C) * dc), rope: l.kRope.slice(start * rw, (start + C) * rw) })),
        },
      );
      const back = unpackChunk(codec, bytes, this.spec);
      back.layers.forEach((l, i) => {
        (snap.layers[i].latent as Float32Array).set(l.latent, start * dc);
        (snap.layers[i].kRope as Float32Array).set(l.rope, start * rw);
      });
      this.sealedChunks++;
    }
    this.sealedTokens = full;
    backend.importCache(snap);
  }
}

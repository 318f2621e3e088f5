// MLA attention on the kernels of kernels/ (WebGPU, or their f32 CPU fallback): the block's latents and rope keys go
// into the kernels' fixed-capacity in-place cache — full slots as the codec's packed words (sealed as soon as they
// fill), the partial last slot as f32 tail rows — and the absorbed attention runs as one causal append dispatch per
// block and layer (decode = a block of one). Projections and W_uv stay on the host (block-projections.ts).

import { MlaError } from "../../format/errors.ts";
import type { MlaBackend } from "../../kernels/backend.ts";
import { cacheLayout, type CacheLayout, type LatentBits, type RopeEncoding } from "../../kernels/geometry.ts";
import type { LatentCache } from "../../kernels/latent-cache.ts";
import type { CodecParams, QuantizedBlock } from "../../format/codec/types.ts";
import type { AttentionBackend, AttentionHook, TokenBlock } from "../attention-backend.ts";
import { linear } from "../ops.ts";
import { absorbedQueries, headOutputs, projectBlock } from "./block-projections.ts";
import type { MlaCacheSnapshot } from "./attention.ts";
import type { SlotSealing } from "./slot-sealing.ts";
import type { MlaModelWeights } from "./weights.ts";

export class KernelAttentionError extends MlaError<"unsupported_session" | "bad_restore"> {
  override readonly name = "KernelAttentionError";
  constructor(code: "unsupported_session" | "bad_restore", message: string) {
    super(code, message);
  }
}

/** Why the kernels cannot hold this model's cache with this codec (null when they can). */
export function kernelUnsupportedReason(model: Pick<MlaModelWeights, "config" | "dKv" | "ropeDims">, codec: CodecParams, raw: boolean, chunkTokens: number): string | null {
  const D = model.dKv * model.config.numKvHeads;
  if (raw) return "lossless (raw) storage keeps every token in the f32 tail, which the kernels' cache bounds to one slot";
  if (D % 32 !== 0) return `the kernels need D_c = n_kv·d_kv to be a multiple of 32, this model's is ${D}`;
  const g = latentGroup(codec, chunkTokens);
  if (codec.axis === "channel" && (D % g !== 0 || (g & (g - 1)) !== 0)) {
    return `channel-axis groups of ${g} tokens need a power of two dividing D_c = ${D}`;
  }
  if (model.config.numHeads % model.config.numKvHeads !== 0) return "n_h must be a multiple of n_kv";
  const rw = model.config.numKvHeads * model.ropeDims;
  const bits = codec.rope === "fp16" ? 16 : codec.rope === "int8" ? 8 : 4;
  if ((rw * bits) % 32 !== 0) return `n_kv·r = ${rw} rope values at ${bits} bits are not whole u32 words per token`;
  return null;
}

/** The latent group the sealed chunks carry: channel-axis groups span tokens, so a chunk caps them at its rows. */
function latentGroup(codec: CodecParams, chunkTokens: number): number {
  return codec.axis === "channel" ? Math.min(codec.group, chunkTokens) : codec.group;
}

/** The kernels' cache layout of a model's latent cache sealed with `codec` in chunks of `chunkTokens`. */
export function kernelCacheLayout(model: Pick<MlaModelWeights, "config" | "dKv" | "ropeDims" | "latentSpaces">, codec: CodecParams, chunkTokens: number): CacheLayout {
  const c = model.config;
  return cacheLayout(
    { heads: c.numHeads, kvHeads: c.numKvHeads, ropeDims: model.ropeDims, latentWidth: model.dKv * c.numKvHeads, headDim: c.headDim, spaces: model.latentSpaces },
    { latentBits: codec.bits as LatentBits, latentGroup: latentGroup(codec, chunkTokens), latentAxis: codec.axis, rope: codec.rope as RopeEncoding },
  );
}

export interface KernelAttentionOptions {
  /** Initial token capacity of the cache (grows by doubling). Default 1024. */
  readonly initialCapacity?: number;
}

export class MlaKernelAttentionBackend implements AttentionBackend {
  readonly async = true;
  readonly cache: LatentCache;
  private readonly latentWidth: number;
  private readonly ropeWidth: number;
  private modality = new Uint8Array(64);

  constructor(
    readonly model: MlaModelWeights,
    readonly kernels: MlaBackend,
    readonly layout: CacheLayout,
    readonly sealing: SlotSealing,
    options: KernelAttentionOptions = {},
  ) {
    if (sealing.quantizer === null) throw new KernelAttentionError("unsupported_session", "the kernel cache needs a sealing codec (its f32 tail holds one slot)");
    this.latentWidth = layout.geometry.latentWidth;
    this.ropeWidth = layout.ropeWidth;
    this.cache = kernels.createCache(layout, {
      layers: model.config.numLayers,
      initialCapacity: options.initialCapacity ?? 1024,
      tailCapacity: sealing.slotTokens,
    });
  }

  get kind(): "webgpu" | "cpu" {
    return this.kernels.kind;
  }

  get length(): number {
    return this.cache.length;
  }

  get cacheBytes(): number {
    return this.cache.allocatedBytes;
  }

  async forwardLayer(layer: number, x: Float64Array, block: TokenBlock, out: Float64Array, hook?: AttentionHook): Promise<void> {
    if (hook) hook({ layer, block, x: x.slice(), q: null, k: null });
    const n = block.count;
    const start = block.start;
    const proj = projectBlock(this.model, layer, x, block);
    if (layer === 0) this.recordModality(start, block.modality);
    this.writeRows(layer, start, Float32Array.from(proj.latent), Float32Array.from(proj.kRope), n);
    const queries = absorbedQueries(this.model, layer, proj.q, n);
    const result = await this.kernels.attention(this.cache, layer, queries);
    const { numHeads: nh, headDim: dh, hiddenSize: d } = this.model.config;
    const o = new Float64Array(n * nh * dh);
    headOutputs(this.model, layer, result, o);
    linear(o, n, nh * dh, this.model.attention[layer].oProj, d, null, out);
  }

  truncate(length: number): void {
    // Layer 0 is written first: its sealing length is the furthest any layer got (a block may have failed midway).
    if (length >= this.cache.length && length >= this.sealing.lengthOf(0)) return;
    const from = this.sealing.truncate(length);
    for (let l = 0; l < this.model.config.numLayers; l++) this.writeTail(l, from, length);
    this.cache.commit({ sealedLength: from, length });
  }

  /** Restore: one sealed slot of one layer, its packed blocks written as they are (no dequantize / re-quantize). */
  loadSealed(layer: number, tokenStart: number, latent: QuantizedBlock, rope: QuantizedBlock): void {
    this.cache.writeSealed(layer, tokenStart, latent, rope);
  }

  /**
   * Restore: finishes a cache of `tokens` tokens whose sealed slots were loaded: modality of every token, the raw tail
   * rows of each layer (tokens [⌊tokens/C⌋·C, tokens)), then the lengths.
   */
  finishRestore(tokens: number, modality: Uint8Array, tail: readonly { readonly latent: Float32Array; readonly rope: Float32Array }[]): void {
    if (modality.length !== tokens) throw new KernelAttentionError("bad_restore", `${modality.length} modality values for ${tokens} tokens`);
    if (tokens > 0) this.recordModality(0, modality);
    this.sealing.adopt(tokens, tail);
    const sealed = this.sealing.sealedLength(0);
    for (let l = 0; l < this.model.config.numLayers; l++) this.writeTail(l, sealed, tokens);
    this.cache.commit({ sealedLength: sealed, length: tokens });
  }

  /** Waits until every queued write reached the device (restore timing: the GPU upload stage). */
  async flush(): Promise<void> {
    await this.kernels.flush();
  }

  /** The cache as the kernels read it (sealed slots dequantized by the dequantize kernel), every layer. */
  async exportCache(): Promise<MlaCacheSnapshot> {
    const n = this.cache.length;
    const D = this.latentWidth;
    const R = this.ropeWidth;
    const layers: { kRope: Float32Array; latent: Float32Array }[] = [];
    for (let l = 0; l < this.model.config.numLayers; l++) {
      const { latent, rope } = n > 0 ? splitRows(await this.kernels.dequantize(this.cache, l, 0, n), n, D, R) : { latent: new Float32Array(0), rope: new Float32Array(0) };
      layers.push({ kRope: rope, latent });
    }
    return { length: n, modality: this.modality.slice(0, n), layers };
  }

  destroy(): void {
    this.cache.destroy();
  }

  /** Raw rows into the sealing; newly full slots go into the cache as packed words, the partial slot as tail rows. */
  private writeRows(layer: number, start: number, latent: Float32Array, rope: Float32Array, n: number): void {
    const before = this.sealing.sealedLength(layer);
    for (const s of this.sealing.write(layer, start, latent, rope, n)) this.cache.writeSealed(layer, s.slotStart, s.latent, s.rope);
    const sealed = this.sealing.sealedLength(layer);
    const end = start + n;
    if (sealed === before) {
      // No slot sealed: only the new rows change in the tail.
      this.cache.writeTail(layer, latent, rope, n, start - sealed);
    } else {
      this.writeTail(layer, sealed, end);
    }
    this.cache.commit({ sealedLength: sealed, length: end });
  }

  /** Rewrites the tail of `layer` from the sealing's raw rows [from, to). */
  private writeTail(layer: number, from: number, to: number): void {
    if (to <= from) return;
    const raw = this.sealing.rawRows(layer, from, to - from);
    this.cache.writeTail(layer, raw.latent, raw.rope, to - from, 0);
  }

  private recordModality(start: number, modality: Uint8Array): void {
    const need = start + modality.length;
    if (need > this.modality.length) {
      const m = new Uint8Array(Math.max(need, 2 * this.modality.length));
      m.set(this.modality.subarray(0, start));
      this.modality = m;
    }
    this.modality.set(modality, start);
    // Also grows the cache's capacity when the block passes it (tail writes do not).
    this.cache.writeModality(start, modality);
  }
}

/** [n × (D + R)] cache rows (the kernels' row layout: latent | rotated k_rope) as separate latent [n × D] and rope [n × R]. */
export function splitRows(rows: Float32Array, n: number, D: number, R: number): { latent: Float32Array; rope: Float32Array } {
  const latent = new Float32Array(n * D);
  const rope = new Float32Array(n * R);
  for (let t = 0; t < n; t++) {
    latent.set(rows.subarray(t * (D + R), t * (D + R) + D), t * D);
    rope.set(rows.subarray(t * (D + R) + D, (t + 1) * (D + R)), t * R);
  }
  return { latent, rope };
}

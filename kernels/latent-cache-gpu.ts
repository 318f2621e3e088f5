// GPU latent cache: one storage buffer per layer ([latent codes | latent scale·zero | rope codes | rope scale·zero],
// see geometry.ts cacheRegions), one f32 tail buffer per layer and one bit-packed modality buffer for all layers.
// Tokens are written in place with queue.writeBuffer; capacity doubles only when a write passes it (never per step —
// per-step re-allocation is what made transformers.js decode 3× slower).
import type { QuantizedBlock } from "../format/codec/types.ts";
import { cacheRegions, type CacheLayout, type CacheRegions } from "./geometry.ts";
import { CacheCapacityError, KernelInputError } from "./errors.ts";
import type { GpuContext } from "./gpu-context.ts";
import { codeWords, scaleZeroWords, tailRows, validateSealedBlocks, validateTailRows } from "./cache-blocks.ts";
import {
  checkLayer,
  grownCapacity,
  setModalityBits,
  validateCommit,
  type LatentCache,
  type LatentCacheOptions,
} from "./latent-cache.ts";

export class LatentCacheGpu implements LatentCache {
  readonly layers: number;
  readonly tailCapacity: number;
  #capacity: number;
  #regions: CacheRegions;
  #layerBuffers: GPUBuffer[];
  readonly #tailBuffers: GPUBuffer[];
  #modalityBuffer: GPUBuffer;
  #modalityWords: Uint32Array;
  #length = 0;
  #sealedLength = 0;
  #reallocations = 0;

  constructor(
    readonly ctx: GpuContext,
    readonly layout: CacheLayout,
    options: LatentCacheOptions,
  ) {
    if (!Number.isInteger(options.layers) || options.layers < 1) throw new KernelInputError(`layers must be ≥ 1, got ${options.layers}`);
    this.layers = options.layers;
    this.tailCapacity = options.tailCapacity ?? 64;
    this.#capacity = grownCapacity(options.initialCapacity ?? 1024, 0);
    this.#checkLimits(this.#capacity);
    this.#regions = cacheRegions(layout, this.#capacity);
    this.#layerBuffers = Array.from({ length: this.layers }, (_, l) => this.#layerBuffer(l));
    this.#tailBuffers = Array.from({ length: this.layers }, (_, l) =>
      ctx.storageBuffer(`mla-cache-tail-L${l}`, Math.max(1, this.tailCapacity) * layout.tailStride * 4),
    );
    this.#modalityWords = new Uint32Array(this.#capacity / 32);
    this.#modalityBuffer = ctx.storageBuffer("mla-cache-modality", this.#modalityWords.byteLength);
  }

  get length(): number {
    return this.#length;
  }
  get sealedLength(): number {
    return this.#sealedLength;
  }
  get capacity(): number {
    return this.#capacity;
  }
  get allocatedBytes(): number {
    return [...this.#layerBuffers, ...this.#tailBuffers, this.#modalityBuffer].reduce((n, b) => n + b.size, 0);
  }

  get reallocations(): number {
    return this.#reallocations;
  }
  get regions(): CacheRegions {
    return this.#regions;
  }
  layerBuffer(layer: number): GPUBuffer {
    checkLayer(layer, this.layers);
    return this.#layerBuffers[layer];
  }
  tailBuffer(layer: number): GPUBuffer {
    checkLayer(layer, this.layers);
    return this.#tailBuffers[layer];
  }
  get modalityBuffer(): GPUBuffer {
    return this.#modalityBuffer;
  }

  writeSealed(layer: number, tokenStart: number, latent: QuantizedBlock, rope: QuantizedBlock): void {
    checkLayer(layer, this.layers);
    const rows = validateSealedBlocks(this.layout, tokenStart, latent, rope);
    this.#ensureCapacity(tokenStart + rows);
    const q = this.ctx.device.queue;
    const buf = this.#layerBuffers[layer];
    const L = this.layout;
    const r = this.#regions;
    q.writeBuffer(buf, (r.latentCodes + tokenStart * L.latentWordsPerToken) * 4, codeWords(latent.codes));
    q.writeBuffer(buf, (r.latentScales + tokenStart * L.latentGroupsPerToken) * 4, scaleZeroWords(latent));
    if (L.ropeWordsPerToken > 0) {
      q.writeBuffer(buf, (r.ropeCodes + tokenStart * L.ropeWordsPerToken) * 4, codeWords(rope.codes));
    }
    if (L.ropeScaleWordsPerToken > 0) {
      q.writeBuffer(buf, (r.ropeScales + tokenStart * L.ropeScaleWordsPerToken) * 4, scaleZeroWords(rope));
    }
  }

  writeTail(layer: number, latent: Float32Array, rope: Float32Array, rows: number, firstRow = 0): void {
    checkLayer(layer, this.layers);
    validateTailRows(this.layout, latent, rope, rows, firstRow, this.tailCapacity);
    if (rows > 0) {
      this.ctx.device.queue.writeBuffer(this.#tailBuffers[layer], firstRow * this.layout.tailStride * 4, tailRows(this.layout, latent, rope, rows));
    }
  }

  writeModality(tokenStart: number, modality: ArrayLike<number>): void {
    if (!Number.isInteger(tokenStart) || tokenStart < 0) throw new KernelInputError(`tokenStart must be ≥ 0, got ${tokenStart}`);
    this.#ensureCapacity(tokenStart + modality.length);
    const [w0, w1] = setModalityBits(this.#modalityWords, tokenStart, modality);
    if (w1 > w0) this.ctx.device.queue.writeBuffer(this.#modalityBuffer, w0 * 4, this.#modalityWords, w0, w1 - w0);
  }

  commit(state: { readonly sealedLength: number; readonly length: number }): void {
    validateCommit(state, this.#capacity, this.tailCapacity);
    this.#sealedLength = state.sealedLength;
    this.#length = state.length;
  }

  /** Frees all GPU memory of the cache. */
  destroy(): void {
    for (const b of [...this.#layerBuffers, ...this.#tailBuffers, this.#modalityBuffer]) b.destroy();
  }

  #layerBuffer(layer: number): GPUBuffer {
    return this.ctx.storageBuffer(`mla-cache-L${layer}`, this.#regions.words * 4);
  }

  #checkLimits(capacity: number): void {
    const bytes = cacheRegions(this.layout, capacity).words * 4;
    const lim = this.ctx.device.limits;
    const max = Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize);
    if (bytes > max) {
      throw new CacheCapacityError(
        `a ${capacity}-token layer buffer needs ${bytes} B, above the device's ${max} B binding limit; shorten the session or request higher limits`,
      );
    }
  }

  #ensureCapacity(tokens: number): void {
    if (tokens <= this.#capacity) return;
    const cap = grownCapacity(this.#capacity, tokens);
    this.#checkLimits(cap);
    const old = this.#regions;
    const oldCap = this.#capacity;
    this.#capacity = cap;
    this.#regions = cacheRegions(this.layout, cap);
    const r = this.#regions;
    const L = this.layout;
    const enc = this.ctx.device.createCommandEncoder({ label: "mla-cache-grow" });
    const olds = this.#layerBuffers;
    this.#layerBuffers = olds.map((src, l) => {
      const dst = this.#layerBuffer(l);
      const copy = (from: number, to: number, wordsPerToken: number): void => {
        if (wordsPerToken > 0) enc.copyBufferToBuffer(src, from * 4, dst, to * 4, oldCap * wordsPerToken * 4);
      };
      copy(old.latentCodes, r.latentCodes, L.latentWordsPerToken);
      copy(old.latentScales, r.latentScales, L.latentGroupsPerToken);
      copy(old.ropeCodes, r.ropeCodes, L.ropeWordsPerToken);
      copy(old.ropeScales, r.ropeScales, L.ropeScaleWordsPerToken);
      return dst;
    });
    const oldMod = this.#modalityBuffer;
    const words = new Uint32Array(cap / 32);
    words.set(this.#modalityWords);
    this.#modalityWords = words;
    this.#modalityBuffer = this.ctx.storageBuffer("mla-cache-modality", words.byteLength);
    enc.copyBufferToBuffer(oldMod, 0, this.#modalityBuffer, 0, oldMod.size);
    this.ctx.device.queue.submit([enc.finish()]);
    // destroy() after submit: the implementation keeps the buffers alive until the copies complete.
    for (const b of olds) b.destroy();
    oldMod.destroy();
    this.#reallocations++;
  }
}

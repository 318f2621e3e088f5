// CPU latent cache for the fallback path: the same packed words as the GPU cache (geometry.ts cacheRegions), held in
// typed arrays, so the fallback reads exactly what the GPU reads. Grows geometrically like the GPU cache.
import type { QuantizedBlock } from "../format/codec/types.ts";
import { cacheRegions, type CacheLayout, type CacheRegions } from "./geometry.ts";
import { KernelInputError } from "./errors.ts";
import { codeWords, scaleZeroWords, tailRows, validateSealedBlocks, validateTailRows } from "./cache-blocks.ts";
import { f16ToF32 } from "../format/codec/fp16.ts";
import {
  checkLayer,
  grownCapacity,
  setModalityBits,
  validateCommit,
  type LatentCache,
  type LatentCacheOptions,
} from "./latent-cache.ts";

export class LatentCacheCpu implements LatentCache {
  readonly layers: number;
  readonly tailCapacity: number;
  #capacity: number;
  #regions: CacheRegions;
  #words: Uint32Array[];
  readonly #tails: Float32Array[];
  #modality: Uint32Array;
  #length = 0;
  #sealedLength = 0;
  #reallocations = 0;

  constructor(
    readonly layout: CacheLayout,
    options: LatentCacheOptions,
  ) {
    if (!Number.isInteger(options.layers) || options.layers < 1) throw new KernelInputError(`layers must be ≥ 1, got ${options.layers}`);
    this.layers = options.layers;
    this.tailCapacity = options.tailCapacity ?? 64;
    this.#capacity = grownCapacity(options.initialCapacity ?? 1024, 0);
    this.#regions = cacheRegions(layout, this.#capacity);
    this.#words = Array.from({ length: this.layers }, () => new Uint32Array(this.#regions.words));
    this.#tails = Array.from({ length: this.layers }, () => new Float32Array(this.tailCapacity * layout.tailStride));
    this.#modality = new Uint32Array(this.#capacity / 32);
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
    return [...this.#words, ...this.#tails, this.#modality].reduce((n, a) => n + a.byteLength, 0);
  }

  get reallocations(): number {
    return this.#reallocations;
  }

  writeSealed(layer: number, tokenStart: number, latent: QuantizedBlock, rope: QuantizedBlock): void {
    checkLayer(layer, this.layers);
    validateSealedBlocks(this.layout, tokenStart, latent, rope);
    this.#ensureCapacity(tokenStart + latent.rows);
    const w = this.#words[layer];
    const r = this.#regions;
    const L = this.layout;
    w.set(codeWords(latent.codes), r.latentCodes + tokenStart * L.latentWordsPerToken);
    w.set(scaleZeroWords(latent), r.latentScales + tokenStart * L.latentGroupsPerToken);
    w.set(codeWords(rope.codes), r.ropeCodes + tokenStart * L.ropeWordsPerToken);
    w.set(scaleZeroWords(rope), r.ropeScales + tokenStart * L.ropeScaleWordsPerToken);
  }

  writeTail(layer: number, latent: Float32Array, rope: Float32Array, rows: number, firstRow = 0): void {
    checkLayer(layer, this.layers);
    validateTailRows(this.layout, latent, rope, rows, firstRow, this.tailCapacity);
    this.#tails[layer].set(tailRows(this.layout, latent, rope, rows), firstRow * this.layout.tailStride);
  }

  writeModality(tokenStart: number, modality: ArrayLike<number>): void {
    if (!Number.isInteger(tokenStart) || tokenStart < 0) throw new KernelInputError(`tokenStart must be ≥ 0, got ${tokenStart}`);
    this.#ensureCapacity(tokenStart + modality.length);
    setModalityBits(this.#modality, tokenStart, modality);
  }

  commit(state: { readonly sealedLength: number; readonly length: number }): void {
    validateCommit(state, this.#capacity, this.tailCapacity);
    this.#sealedLength = state.sealedLength;
    this.#length = state.length;
  }

  destroy(): void {
    this.#words = [];
  }

  modalityOf(tok: number): number {
    return this.layout.geometry.spaces === 2 ? (this.#modality[tok >> 5] >>> (tok & 31)) & 1 : 0;
  }

  /** Dequantizes tokens [start, start+count) of a layer into f32 rows [latent | rope] (`out` reused when given). */
  readRows(layer: number, start: number, count: number, out = new Float32Array(count * this.layout.tailStride)): Float32Array {
    checkLayer(layer, this.layers);
    const L = this.layout;
    const g = L.geometry;
    const w = this.#words[layer];
    const r = this.#regions;
    const ts = L.tailStride;
    const lb = L.encoding.latentBits;
    const lvpw = 32 / lb;
    const lmask = (1 << lb) - 1;
    const rb = L.ropeBits;
    for (let i = 0; i < count; i++) {
      const tok = start + i;
      const o = i * ts;
      if (tok >= this.#sealedLength) {
        out.set(this.#tails[layer].subarray((tok - this.#sealedLength) * ts, (tok - this.#sealedLength + 1) * ts), o);
        continue;
      }
      // Token axis: one word per g channels of this token; channel axis: one word per channel of its g-token group.
      const channelAxis = L.latentAxis === "channel";
      const szBase = r.latentScales + (channelAxis ? Math.floor(tok / L.latentGroup) * g.latentWidth : tok * L.latentGroupsPerToken);
      for (let c = 0; c < g.latentWidth; c++) {
        const sz = w[szBase + (channelAxis ? c : Math.floor(c / L.latentGroup))];
        const e = tok * g.latentWidth + c;
        const q = (w[r.latentCodes + Math.floor(e / lvpw)] >>> ((e % lvpw) * lb)) & lmask;
        out[o + c] = q * f16ToF32(sz & 0xffff) + f16ToF32(sz >>> 16);
      }
      for (let kv = 0; kv < g.kvHeads; kv++) {
        let s = 0;
        let z = 0;
        if (rb !== 16) {
          const sz = w[r.ropeScales + tok * g.kvHeads + kv];
          s = f16ToF32(sz & 0xffff);
          z = f16ToF32(sz >>> 16);
        }
        for (let k = 0; k < g.ropeDims; k++) {
          const e = tok * L.ropeWidth + kv * g.ropeDims + k;
          const vpw = 32 / rb;
          const word = w[r.ropeCodes + Math.floor(e / vpw)];
          const bits = (word >>> ((e % vpw) * rb)) & (rb === 16 ? 0xffff : (1 << rb) - 1);
          out[o + g.latentWidth + kv * g.ropeDims + k] = rb === 16 ? f16ToF32(bits) : bits * s + z;
        }
      }
    }
    return out;
  }

  #ensureCapacity(tokens: number): void {
    if (tokens <= this.#capacity) return;
    const cap = grownCapacity(this.#capacity, tokens);
    const old = this.#regions;
    const oldCap = this.#capacity;
    const r = cacheRegions(this.layout, cap);
    const L = this.layout;
    this.#words = this.#words.map((src) => {
      const dst = new Uint32Array(r.words);
      dst.set(src.subarray(old.latentCodes, old.latentCodes + oldCap * L.latentWordsPerToken), r.latentCodes);
      dst.set(src.subarray(old.latentScales, old.latentScales + oldCap * L.latentGroupsPerToken), r.latentScales);
      dst.set(src.subarray(old.ropeCodes, old.ropeCodes + oldCap * L.ropeWordsPerToken), r.ropeCodes);
      dst.set(src.subarray(old.ropeScales, old.ropeScales + oldCap * L.ropeScaleWordsPerToken), r.ropeScales);
      return dst;
    });
    const mod = new Uint32Array(cap / 32);
    mod.set(this.#modality);
    this.#modality = mod;
    this.#capacity = cap;
    this.#regions = r;
    this.#reallocations++;
  }
}

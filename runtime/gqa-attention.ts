// Original Qwen2.5-VL / Llama attention: GQA with q/k/v biases and (M-)RoPE, caching rotated K and V per KV head.
// Optionally rotates only kept pairs per (layer, KV head), which is exactly what partial RoPE does before low rank.

import type { TextModelConfig } from "../checkpoint/config.ts";
import { RowBuffer, type AttentionBackend, type AttentionHook, type TokenBlock } from "./attention-backend.ts";
import type { KeptPairs } from "./mla/kept-pairs.ts";
import { linear, softmaxInPlace } from "./ops.ts";
import { allPairs, type RopeTables } from "./rope.ts";
import type { GqaAttentionWeights, GqaModelWeights } from "./weights.ts";

/** Rotates the pairs (p, p + half) listed in `pairs` of the head vector at v[off .. off + 2·half). */
export function rotateHeadPairs(v: Float64Array, off: number, half: number, pairs: Int32Array, tables: RopeTables, token: number): void {
  const base = token * tables.half;
  for (let j = 0; j < pairs.length; j++) {
    const p = pairs[j];
    const c = tables.cos[base + p];
    const s = tables.sin[base + p];
    const a = v[off + p];
    const b = v[off + p + half];
    v[off + p] = a * c - b * s;
    v[off + p + half] = b * c + a * s;
  }
}

export interface GqaBackendOptions {
  /** Rotate only these pairs per (layer, KV head); the rest act as NoPE. Default: every pair (the original model). */
  readonly rotatedPairs?: KeptPairs;
}

export class GqaAttentionBackend implements AttentionBackend {
  private readonly cfg: TextModelConfig;
  private readonly layers: readonly GqaAttentionWeights[];
  private readonly k: RowBuffer[] = [];
  private readonly v: RowBuffer[] = [];
  private readonly lengths: number[] = [];
  private readonly rotated: Int32Array[][];
  private scores = new Float64Array(256);

  constructor(model: GqaModelWeights, options: GqaBackendOptions = {}) {
    this.cfg = model.config;
    this.layers = model.attention;
    const kvDim = this.cfg.numKvHeads * this.cfg.headDim;
    const half = this.cfg.headDim / 2;
    const full = allPairs(half);
    this.rotated = [];
    for (let l = 0; l < this.cfg.numLayers; l++) {
      this.k.push(new RowBuffer(kvDim));
      this.v.push(new RowBuffer(kvDim));
      this.lengths.push(0);
      const heads: Int32Array[] = [];
      for (let g = 0; g < this.cfg.numKvHeads; g++) heads.push(options.rotatedPairs ? Int32Array.from(options.rotatedPairs[l][g]) : full);
      this.rotated.push(heads);
    }
  }

  truncate(length: number): void {
    for (let l = 0; l < this.lengths.length; l++) this.lengths[l] = Math.min(this.lengths[l], length);
  }

  get cacheBytes(): number {
    return [...this.k, ...this.v].reduce((n, b) => n + b.bytes, 0);
  }

  /** Rotated keys of layer `layer` ([length × n_kv·d_h], a view). */
  keys(layer: number): Float32Array {
    return this.k[layer].data.subarray(0, this.lengths[layer] * this.k[layer].width);
  }

  values(layer: number): Float32Array {
    return this.v[layer].data.subarray(0, this.lengths[layer] * this.v[layer].width);
  }

  forwardLayer(layer: number, x: Float64Array, block: TokenBlock, out: Float64Array, hook?: AttentionHook): void {
    const { hiddenSize: d, numHeads: nh, numKvHeads: nkv, headDim: dh } = this.cfg;
    const w = this.layers[layer];
    const n = block.count;
    const half = dh / 2;
    const qDim = nh * dh;
    const kvDim = nkv * dh;
    const q = new Float64Array(n * qDim);
    const k = new Float64Array(n * kvDim);
    const v = new Float64Array(n * kvDim);
    linear(x, n, d, w.qProj, qDim, w.qBias, q);
    linear(x, n, d, w.kProj, kvDim, w.kBias, k);
    linear(x, n, d, w.vProj, kvDim, w.vBias, v);
    if (hook) hook({ layer, block, x: x.slice(), q: q.slice(), k: k.slice() });

    const group = nh / nkv;
    const pairs = this.rotated[layer];
    for (let t = 0; t < n; t++) {
      for (let h = 0; h < nh; h++) rotateHeadPairs(q, t * qDim + h * dh, half, pairs[Math.floor(h / group)], block.rope, t);
      for (let g = 0; g < nkv; g++) rotateHeadPairs(k, t * kvDim + g * dh, half, pairs[g], block.rope, t);
    }

    const start = this.lengths[layer];
    const kc = this.k[layer];
    const vc = this.v[layer];
    kc.ensure(start + n, start);
    vc.ensure(start + n, start);
    kc.data.set(k, start * kvDim);
    vc.data.set(v, start * kvDim);
    this.lengths[layer] = start + n;

    const K = kc.data;
    const V = vc.data;
    if (this.scores.length < start + n) this.scores = new Float64Array(2 * (start + n));
    const s = this.scores;
    const scale = 1 / Math.sqrt(dh);
    const o = new Float64Array(n * qDim);
    for (let t = 0; t < n; t++) {
      const len = start + t + 1;
      for (let h = 0; h < nh; h++) {
        const g = Math.floor(h / group);
        const qo = t * qDim + h * dh;
        for (let j = 0; j < len; j++) {
          const ko = j * kvDim + g * dh;
          let dot = 0;
          for (let e = 0; e < dh; e++) dot += q[qo + e] * K[ko + e];
          s[j] = dot * scale;
        }
        softmaxInPlace(s, len);
        for (let j = 0; j < len; j++) {
          const p = s[j];
          const vo = j * kvDim + g * dh;
          for (let e = 0; e < dh; e++) o[qo + e] += p * V[vo + e];
        }
      }
    }
    linear(o, n, qDim, w.oProj, d, null, out);
  }
}

// Streaming pair scores of one layer (2-norm, mkl): fed one calibration sequence's capture at a time, so conversion
// never holds every sequence's activations. The arithmetic and its order are those of meanPairNorms + twoNormScores
// and attentionKlScores for that layer, so the scores are bit-identical to the whole-set functions.

import type { TextModelConfig } from "../../checkpoint/config.ts";
import type { RopeTables } from "../../runtime/rope.ts";
import { accumulatePairKl } from "./attention-kl.ts";
import { RopeSelectionError } from "./errors.ts";

/** One sequence's capture of the layer being scored. */
export interface LayerQk {
  readonly length: number;
  /** [T × n_h·d_h] pre-RoPE queries (bias added). */
  readonly q: Float64Array;
  /** [T × n_kv·d_h] pre-RoPE keys. */
  readonly k: Float64Array;
  readonly rope: RopeTables;
}

export class LayerPairScorer {
  private readonly nh: number;
  private readonly nkv: number;
  private readonly dh: number;
  private readonly half: number;
  /** 2-norm: mean pair norms of q (n_h × half) and k (n_kv × half). */
  private readonly qn: Float64Array;
  private readonly kn: Float64Array;
  /** mkl: Σ KL per (KV head, pair) and the query count per KV head. */
  private readonly acc: Float64Array[];
  private readonly queries: number[];
  private added = 0;

  constructor(
    readonly strategy: "2-norm" | "mkl",
    config: TextModelConfig,
    /** Number of sequences that will be added (2-norm weights each sequence by 1/count). */
    private readonly sequences: number,
  ) {
    this.nh = config.numHeads;
    this.nkv = config.numKvHeads;
    this.dh = config.headDim;
    this.half = this.dh / 2;
    this.qn = new Float64Array(this.nh * this.half);
    this.kn = new Float64Array(this.nkv * this.half);
    this.acc = Array.from({ length: this.nkv }, () => new Float64Array(this.half));
    this.queries = new Array<number>(this.nkv).fill(0);
  }

  add(c: LayerQk): void {
    const { nh, nkv, dh, half } = this;
    this.added++;
    if (this.strategy === "2-norm") {
      const w = 1 / this.sequences;
      const accumulate = (src: Float64Array, heads: number, out: Float64Array) => {
        const T = c.length;
        for (let t = 0; t < T; t++) {
          for (let h = 0; h < heads; h++) {
            const o = t * heads * dh + h * dh;
            for (let i = 0; i < half; i++) out[h * half + i] += (w / T) * Math.hypot(src[o + i], src[o + i + half]);
          }
        }
      };
      accumulate(c.q, nh, this.qn);
      accumulate(c.k, nkv, this.kn);
      return;
    }
    const group = nh / nkv;
    for (let g = 0; g < nkv; g++) {
      for (let h = g * group; h < (g + 1) * group; h++) {
        this.queries[g] += accumulatePairKl(
          { q: c.q, qStride: nh * dh, qOffset: h * dh, k: c.k, kStride: nkv * dh, kOffset: g * dh, length: c.length, headDim: dh },
          c.rope,
          this.acc[g],
        );
      }
    }
  }

  /** Scores [n_kv × half] of this layer. */
  scores(): Float64Array {
    const { nh, nkv, half } = this;
    if (this.added === 0) throw new RopeSelectionError("needs_calibration", `the ${this.strategy} strategy ranks pairs on calibration data; none was given`);
    const values = new Float64Array(nkv * half);
    if (this.strategy === "2-norm") {
      const group = nh / nkv;
      for (let h = 0; h < nh; h++) {
        const g = Math.floor(h / group);
        for (let i = 0; i < half; i++) values[g * half + i] += this.qn[h * half + i] * this.kn[g * half + i];
      }
      return values;
    }
    for (let g = 0; g < nkv; g++) for (let i = 0; i < half; i++) values[g * half + i] = this.acc[g][i] / this.queries[g];
    return values;
  }
}

// Shared by the GPU engine's tests (dawn.node runner, Chromium): the weights the GPU reads, as host f32/f64.

import { dequantizeWeightsRef } from "../../kernels/matmul-nbits.ref.ts";
import type { LinearWeights } from "../../kernels/matmul-nbits.ts";
import { linearWeights, type EngineWeightFormat } from "../../runtime/gpu/engine-weights.ts";
import type { MlaModelWeights } from "../../runtime/mla/weights.ts";

/** Row-major f64 values of a weight in any layout (f16 widened, MatMulNBits dequantized by the f64 reference). */
export function dense(w: LinearWeights): Float64Array {
  return dequantizeWeightsRef(w);
}

/** The model with every linear weight replaced by what the GPU reads (f16 rounding or int dequantization). */
export function roundModel(w: MlaModelWeights, fmt: EngineWeightFormat): MlaModelWeights {
  if (fmt === "f32") return w;
  const c = w.config;
  // (an empty weight — e.g. W_uk when every rope pair is kept — stays as it is)
  const f = (data: Float32Array, n: number, k: number) => (n === 0 || k === 0 ? data : Float32Array.from(dense(linearWeights(data, n, k, fmt))));
  const d = c.hiddenSize;
  const D = w.dKv * c.numKvHeads;
  return {
    ...w,
    shell: {
      ...w.shell,
      embedTokens: f(w.shell.embedTokens, c.vocabSize, d),
      lmHead: f(w.shell.lmHead, c.vocabSize, d),
      layers: w.shell.layers.map((s) => ({ ...s, gate: f(s.gate, c.intermediateSize, d), up: f(s.up, c.intermediateSize, d), down: f(s.down, d, c.intermediateSize) })),
    },
    attention: w.attention.map((a) => ({
      ...a,
      qProj: f(a.qProj, c.numHeads * c.headDim, d),
      kRProj: f(a.kRProj, c.numKvHeads * w.ropeDims, d),
      oProj: f(a.oProj, d, c.numHeads * c.headDim),
      spaces: a.spaces.map((s) => ({
        ...s,
        downKv: f(s.downKv, D, d),
        upK: f(s.upK, c.numKvHeads * (c.headDim - w.ropeDims), D),
        upV: f(s.upV, c.numKvHeads * c.headDim, D),
      })),
    })),
  };
}


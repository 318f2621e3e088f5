// The model-kernel programs in every weight format the case table uses (shader-f16 source check and null-backend
// compile): GEMV and GEMM with and without bias, embedding gather, RMSNorm, SwiGLU, residual add, rotary, sampling.
import { createEmbeddingProgram } from "../../kernels/embedding.ts";
import { createGemmProgram, createGemvProgram, type WeightFormat } from "../../kernels/matmul-nbits.ts";
import { createGatherRowsProgram, createGeluProgram, createResidualAddProgram, createRmsNormProgram, createSwigluProgram } from "../../kernels/norm-act.ts";
import { createVisionAttentionProgram } from "../../kernels/vision-attention.ts";
import type { KernelProgram } from "../../kernels/program.ts";
import { createRotaryProgram } from "../../kernels/rotary.ts";
import { createSamplingProgram } from "../../kernels/sampling.ts";

export const MODEL_WEIGHT_FORMATS: readonly WeightFormat[] = [
  { kind: "nbits", bits: 4, block: 32, zeroPoints: false },
  { kind: "nbits", bits: 4, block: 64, zeroPoints: true },
  { kind: "nbits", bits: 8, block: 128, zeroPoints: true },
  { kind: "nbits", bits: 8, block: 32, zeroPoints: false },
  { kind: "f16" },
  { kind: "f32" },
];

export function modelPrograms(): KernelProgram[] {
  const out: KernelProgram[] = [];
  for (const f of MODEL_WEIGHT_FORMATS) {
    for (const bias of [false, true]) out.push(createGemvProgram(f, bias), createGemvProgram(f, bias, 1), createGemmProgram(f, bias, 4), createGemmProgram(f, bias, 8));
    out.push(createEmbeddingProgram(f));
  }
  out.push(createRmsNormProgram(), createSwigluProgram(), createResidualAddProgram(), createRotaryProgram(), createSamplingProgram());
  out.push(createGeluProgram(), createGatherRowsProgram(), createVisionAttentionProgram(16), createVisionAttentionProgram(80));
  return out;
}

// The fixture's toy vision tower (fixtures/tiny-qwen-vl/README.md): patch Linear + pos_embed, one pre-norm transformer
// block (LayerNorm, 4-head self-attention with PyTorch packed in_proj, exact-GELU MLP), merger (LayerNorm, Linear),
// plus cell_embed. Input [16 × 192] cell patches in [0, 1]; output the 16 embeddings that replace the image-pad tokens.

import { MlaError } from "../../format/errors.ts";
import type { TensorSource } from "../../checkpoint/tensor-source.ts";
import { geluInPlace, layerNorm, linear, softmaxInPlace } from "../ops.ts";

export class VisionTowerError extends MlaError<"bad_input"> {
  override readonly name = "VisionTowerError";
  constructor(code: "bad_input", message: string) {
    super(code, message);
  }
}

export interface VisionTowerWeights {
  readonly cells: number;
  readonly patchDim: number;
  readonly width: number;
  readonly mlpWidth: number;
  readonly outDim: number;
  readonly heads: number;
  readonly layerNormEps: number;
  readonly patchEmbed: Float32Array;
  readonly patchEmbedBias: Float32Array;
  readonly posEmbed: Float32Array;
  readonly norm1: Float32Array;
  readonly norm1Bias: Float32Array;
  readonly inProj: Float32Array;
  readonly inProjBias: Float32Array;
  readonly outProj: Float32Array;
  readonly outProjBias: Float32Array;
  readonly norm2: Float32Array;
  readonly norm2Bias: Float32Array;
  readonly mlp0: Float32Array;
  readonly mlp0Bias: Float32Array;
  readonly mlp2: Float32Array;
  readonly mlp2Bias: Float32Array;
  readonly mergerNorm: Float32Array;
  readonly mergerNormBias: Float32Array;
  readonly merger: Float32Array;
  readonly mergerBias: Float32Array;
  readonly cellEmbed: Float32Array;
}

/** Reads `visual.*` tensors; shapes follow from `visual.patch_embed.weight` and `visual.merger.1.weight`. */
export async function loadVisionTower(src: TensorSource, options: { heads?: number; layerNormEps?: number } = {}): Promise<VisionTowerWeights> {
  const p = "visual.";
  const [width, patchDim] = src.info(`${p}patch_embed.weight`).shape;
  const [mlpWidth] = src.info(`${p}mlp.0.weight`).shape;
  const [outDim] = src.info(`${p}merger.1.weight`).shape;
  const [cells] = src.info(`${p}pos_embed`).shape;
  const f = (n: string, shape: number[]) => src.readFloat32(p + n, shape);
  return {
    cells,
    patchDim,
    width,
    mlpWidth,
    outDim,
    heads: options.heads ?? 4,
    layerNormEps: options.layerNormEps ?? 1e-5,
    patchEmbed: await f("patch_embed.weight", [width, patchDim]),
    patchEmbedBias: await f("patch_embed.bias", [width]),
    posEmbed: await f("pos_embed", [cells, width]),
    norm1: await f("norm1.weight", [width]),
    norm1Bias: await f("norm1.bias", [width]),
    inProj: await f("attn.in_proj_weight", [3 * width, width]),
    inProjBias: await f("attn.in_proj_bias", [3 * width]),
    outProj: await f("attn.out_proj.weight", [width, width]),
    outProjBias: await f("attn.out_proj.bias", [width]),
    norm2: await f("norm2.weight", [width]),
    norm2Bias: await f("norm2.bias", [width]),
    mlp0: await f("mlp.0.weight", [mlpWidth, width]),
    mlp0Bias: await f("mlp.0.bias", [mlpWidth]),
    mlp2: await f("mlp.2.weight", [width, mlpWidth]),
    mlp2Bias: await f("mlp.2.bias", [width]),
    mergerNorm: await f("merger.0.weight", [width]),
    mergerNormBias: await f("merger.0.bias", [width]),
    merger: await f("merger.1.weight", [outDim, width]),
    mergerBias: await f("merger.1.bias", [outDim]),
    cellEmbed: await f("cell_embed", [cells, outDim]),
  };
}

/** Embeddings of `images` images: patches [images × cells × patchDim] → [images × cells × outDim] (f32). */
export function runVisionTower(w: VisionTowerWeights, patches: Float32Array, images = 1): Float32Array {
  const { cells: n, patchDim, width: e, mlpWidth, outDim, heads } = w;
  if (patches.length !== images * n * patchDim) {
    throw new VisionTowerError("bad_input", `vision tower expects ${images} × ${n} × ${patchDim} patch values, got ${patches.length}`);
  }
  const out = new Float32Array(images * n * outDim);
  const x = new Float64Array(n * e);
  const xn = new Float64Array(n * e);
  const qkv = new Float64Array(n * 3 * e);
  const att = new Float64Array(n * e);
  const tmp = new Float64Array(n * e);
  const mlp = new Float64Array(n * mlpWidth);
  const merged = new Float64Array(n * outDim);
  const s = new Float64Array(n);
  const hd = e / heads;
  const scale = 1 / Math.sqrt(hd);
  for (let img = 0; img < images; img++) {
    const p = Float64Array.from(patches.subarray(img * n * patchDim, (img + 1) * n * patchDim));
    linear(p, n, patchDim, w.patchEmbed, e, w.patchEmbedBias, x);
    for (let i = 0; i < n * e; i++) x[i] += w.posEmbed[i];

    layerNorm(x, n, e, w.norm1, w.norm1Bias, w.layerNormEps, xn);
    linear(xn, n, e, w.inProj, 3 * e, w.inProjBias, qkv);
    att.fill(0);
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          let dot = 0;
          for (let k = 0; k < hd; k++) dot += qkv[i * 3 * e + h * hd + k] * qkv[j * 3 * e + e + h * hd + k];
          s[j] = dot * scale;
        }
        softmaxInPlace(s, n);
        for (let j = 0; j < n; j++) {
          for (let k = 0; k < hd; k++) att[i * e + h * hd + k] += s[j] * qkv[j * 3 * e + 2 * e + h * hd + k];
        }
      }
    }
    linear(att, n, e, w.outProj, e, w.outProjBias, tmp);
    for (let i = 0; i < n * e; i++) x[i] += tmp[i];

    layerNorm(x, n, e, w.norm2, w.norm2Bias, w.layerNormEps, xn);
    linear(xn, n, e, w.mlp0, mlpWidth, w.mlp0Bias, mlp);
    geluInPlace(mlp, n * mlpWidth);
    linear(mlp, n, mlpWidth, w.mlp2, e, w.mlp2Bias, tmp);
    for (let i = 0; i < n * e; i++) x[i] += tmp[i];

    layerNorm(x, n, e, w.mergerNorm, w.mergerNormBias, w.layerNormEps, xn);
    linear(xn, n, e, w.merger, outDim, w.mergerBias, merged);
    const o = img * n * outDim;
    for (let i = 0; i < n * outDim; i++) out[o + i] = merged[i] + w.cellEmbed[i];
  }
  return out;
}

/** Fixture pixels (uint8 = pixel × 255, [cells × 192] per image) to the tower's [0, 1] float input. */
export function patchesFromU8(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = bytes[i] / 255;
  return out;
}

/** Decodes base64 (the fixture's `patches_u8`) without Node's Buffer, so the client can use it too. */
export function base64ToBytes(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

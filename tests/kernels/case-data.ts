// Builds the stored cache of a KernelCase: random latents/rope keys/queries from its seed, sealed 64-token chunks
// quantized per docs/codec.md, the f32 tail, and the dense dequantized cache the f64 reference reads.
import { cacheLayout, PAGE_TOKENS, type CacheLayout } from "../../kernels/geometry.ts";
import type { QuantizedBlock } from "../../format/codec/types.ts";
import type { DenseCache } from "../../kernels/mla-attention.ref.ts";
import { dequantizeBlockRef } from "../../kernels/mla-dequantize.ref.ts";
import type { MlaQueries } from "../../kernels/types.ts";
import type { KernelCase, ModalityPattern } from "./cases.ts";
import { fp16Block, quantizeBlock } from "./pack.ts";
import { mulberry32 } from "../helpers/mulberry32.ts";

export interface SealedChunk {
  readonly start: number;
  readonly latent: QuantizedBlock;
  readonly rope: QuantizedBlock;
}

export interface CaseData {
  readonly layout: CacheLayout;
  readonly chunks: SealedChunk[];
  readonly sealedLength: number;
  readonly tailLatent: Float32Array;
  readonly tailRope: Float32Array;
  readonly tailRows: number;
  /** Unquantized inputs [L][D_c] and [L][n_kv·r] (what the tail holds before a chunk seals). */
  readonly rawLatent: Float32Array;
  readonly rawRope: Float32Array;
  readonly modality: Uint8Array;
  readonly dense: DenseCache & { latent: Float64Array; rope: Float64Array };
  readonly queries: MlaQueries;
}

/** mulberry32 + Box–Muller: deterministic normals in every runtime. */
export function normalSource(seed: number): () => number {
  const uniform = mulberry32(seed);
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

export function modalityPattern(pattern: ModalityPattern, length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  const rnd = normalSource(seed ^ 0x5bd1e995);
  if (pattern === "image") out.fill(1);
  else if (pattern === "interleaved") for (let j = 0; j < length; j++) out[j] = rnd() > 0 ? 1 : 0;
  else if (pattern === "spans") {
    // Text, an image span not aligned to pages, text again — the usual chat layout.
    const a = Math.floor(length * 0.15);
    const b = Math.floor(length * 0.7);
    for (let j = a; j < b; j++) out[j] = 1;
  }
  return out;
}

export function buildCaseData(c: KernelCase): CaseData {
  const layout = cacheLayout(c.geometry, c.encoding);
  const g = c.geometry;
  const rnd = normalSource(c.seed);
  const L = c.length;
  const dc = g.latentWidth;
  const rw = layout.ropeWidth;
  const latent = new Float32Array(L * dc);
  const rope = new Float32Array(L * rw);
  // A few outlier channels, as latents from weight SVD carry (docs/method.md §9.3).
  const channelScale = Float32Array.from({ length: dc }, (_, i) => (i % 17 === 3 ? 4 : 1));
  for (let j = 0; j < L; j++) for (let i = 0; i < dc; i++) latent[j * dc + i] = rnd() * channelScale[i];
  for (let e = 0; e < L * rw; e++) rope[e] = 2 * rnd();
  const modality = modalityPattern(c.modality, L, c.seed);

  const sealedLength = Math.floor(L / PAGE_TOKENS) * PAGE_TOKENS;
  const denseLatent = new Float64Array(L * dc);
  const denseRope = new Float64Array(L * rw);
  const chunks: SealedChunk[] = [];
  for (let start = 0; start < sealedLength; start += PAGE_TOKENS) {
    const lat = latent.subarray(start * dc, (start + PAGE_TOKENS) * dc);
    const rp = rope.subarray(start * rw, (start + PAGE_TOKENS) * rw);
    const latBlock = quantizeBlock(lat, PAGE_TOKENS, dc, c.encoding.latentBits, c.encoding.latentGroup, c.encoding.latentAxis ?? "token");
    const ropeBlock: QuantizedBlock =
      rw === 0
        ? { ...fp16Block(rp, PAGE_TOKENS, 0), bits: layout.ropeBits }
        : c.encoding.rope === "fp16"
        ? fp16Block(rp, PAGE_TOKENS, rw)
        : quantizeBlock(rp, PAGE_TOKENS, rw, c.encoding.rope === "int8" ? 8 : 4, Math.max(1, g.ropeDims), "token");
    chunks.push({ start, latent: latBlock, rope: ropeBlock });
    denseLatent.set(dequantizeBlockRef(latBlock), start * dc);
    if (rw > 0) denseRope.set(dequantizeBlockRef(ropeBlock), start * rw);
  }
  const tailRows = L - sealedLength;
  const tailLatent = latent.slice(sealedLength * dc);
  const tailRope = rope.slice(sealedLength * rw);
  denseLatent.set(tailLatent, sealedLength * dc);
  denseRope.set(tailRope, sealedLength * rw);

  const n = c.queryCount;
  // Scores of a few units: q̃ ~ N(0, (2·√d_h)²/D_c).
  // queryScale / keyBiasShift push the scores beyond f32 exp's range (cases.ts).
  const k = c.queryScale ?? 1;
  const shift = c.keyBiasShift ?? 0;
  const qs = (k * 2 * Math.sqrt(g.headDim)) / Math.sqrt(dc);
  const queries: MlaQueries = {
    queryCount: n,
    qRope: Float32Array.from({ length: n * g.heads * g.ropeDims }, () => k * rnd()),
    qLatent: Array.from({ length: g.spaces }, () => Float32Array.from({ length: n * g.heads * dc }, () => qs * rnd())),
    keyBias: Array.from({ length: g.spaces }, () => Float32Array.from({ length: n * g.heads }, () => 3 * k * rnd() + shift)),
  };
  return {
    layout,
    chunks,
    sealedLength,
    tailLatent,
    tailRope,
    tailRows,
    rawLatent: latent,
    rawRope: rope,
    modality,
    dense: { length: L, latent: denseLatent, rope: denseRope, modality },
    queries,
  };
}

/** max |a − b| / max |ref| (max |a| when the reference is all zeros, so a wrong non-zero still fails). */
export function relativeError(actual: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (actual.length !== ref.length) return Infinity;
  let diff = 0;
  let scale = 0;
  let amax = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(actual[i] - ref[i]);
    if (!(d <= diff)) diff = Number.isNaN(d) ? Infinity : d;
    scale = Math.max(scale, Math.abs(ref[i]));
    amax = Math.max(amax, Math.abs(actual[i]));
  }
  if (scale === 0) return amax === 0 && diff === 0 ? 0 : Infinity;
  return diff / scale;
}

// Case table of the model kernels (linear GEMV/GEMM with fused MatMulNBits dequantization, embedding gather, RMSNorm,
// SwiGLU, residual add, rotary, LM head + sampling): the same table runs on dawn.node and in Chromium
// (model-harness.ts), and each result is compared with its f64/f32 CPU reference against the tolerance here.
import type { NBits, NBitsBlock } from "../../kernels/matmul-nbits.ts";

export type WeightCase = { kind: "nbits"; bits: NBits; block: NBitsBlock; zeroPoints: boolean } | { kind: "f32" } | { kind: "f16" };

export type ModelCase =
  | { op: "linear"; name: string; m: number; n: number; k: number; w: WeightCase; bias: boolean; kernel: "gemv" | "gemm"; seed: number; tol: number; xScale?: number; splitBytes?: number; launch?: "gpu" | "cpu" }
  | { op: "embedding"; name: string; vocab: number; hidden: number; tokens: number; w: WeightCase; seed: number; tol: number; splitBytes?: number }
  /** One row per entry of `rowScales` (values uniform in ±scale; 0 = a zero row). */
  | { op: "rmsnorm"; name: string; dim: number; rowScales: number[]; eps: number; seed: number; tol: number }
  | { op: "swiglu"; name: string; rows: number; width: number; fused: boolean; scale: number; seed: number; tol: number }
  | { op: "add"; name: string; count: number; seed: number; tol: number }
  | {
      op: "rotary";
      name: string;
      kind: "1d" | "mrope" | "vision";
      headDim: number;
      heads: number;
      headStride: number;
      offset: number;
      /** Kept pairs per KV group (all pairs when absent). */
      pairs?: number[][];
      section?: [number, number, number];
      tokens: number;
      maxPosition: number;
      seed: number;
      tol: number;
    }
  /**
   * `draws` sampled ids (steps 0..draws−1) vs sampleRef; tol is the number of mismatches allowed among draws whose
   * reference margin exceeds 1e-5 (draws closer to a float boundary are reported, not compared; all of them so close
   * counts as a mismatch). `ties` copies the
   * largest logit to that many other ids; `banned` bans that many ids, the largest logit first.
   */
  | {
      op: "sample";
      name: string;
      vocab: number;
      scale: number;
      /** Added to every logit (a large offset: exp overflows without the max subtraction). */
      offset?: number;
      temperature: number;
      topK: number;
      topP: number;
      ties?: number;
      banned?: number;
      draws: number;
      seed: number;
      tol: number;
    }
  /** Vision segment attention: `fused` reads q/k/v from one [rows, 3·H·D] buffer, else three buffers with padded rows. */
  | { op: "vision_attention"; name: string; heads: number; headDim: number; cu: number[]; fused: boolean; scale: number; seed: number; tol: number }
  | { op: "gelu"; name: string; count: number; scale: number; seed: number; tol: number }
  /** Gathers `index` rows (an index ≥ srcRows writes zeros). */
  | { op: "gather_rows"; name: string; srcRows: number; width: number; index: number[]; seed: number; tol: number }
  /** LM head: hidden [K] → int4 GEMV logits [vocab] → sampling, one submission, 4 bytes read back. */
  | { op: "lmhead"; name: string; vocab: number; hidden: number; temperature: number; topK: number; topP: number; draws: number; seed: number; tol: number; splitBytes?: number };

const BASE_CASES: readonly ModelCase[] = [
  { op: "linear", name: "gemv int4 b32 sym, N 37 K 100 (partial block, N % 8 ≠ 0)", m: 1, n: 37, k: 100, w: { kind: "nbits", bits: 4, block: 32, zeroPoints: false }, bias: false, kernel: "gemv", seed: 1, tol: 5e-6 },
  { op: "linear", name: "gemv int4 b64 zp (5 blocks: odd zero-point nibble), bias, N 64 K 320", m: 1, n: 64, k: 320, w: { kind: "nbits", bits: 4, block: 64, zeroPoints: true }, bias: true, kernel: "gemv", seed: 2, tol: 5e-6 },
  { op: "linear", name: "gemv int4 b128 zp, M 3, N 19 K 200", m: 3, n: 19, k: 200, w: { kind: "nbits", bits: 4, block: 128, zeroPoints: true }, bias: false, kernel: "gemv", seed: 3, tol: 5e-6 },
  { op: "linear", name: "gemv int8 b32 zp, N 29 K 300", m: 1, n: 29, k: 300, w: { kind: "nbits", bits: 8, block: 32, zeroPoints: true }, bias: false, kernel: "gemv", seed: 4, tol: 5e-6 },
  { op: "linear", name: "gemv int8 b128 sym, bias, N 40 K 257", m: 1, n: 40, k: 257, w: { kind: "nbits", bits: 8, block: 128, zeroPoints: false }, bias: true, kernel: "gemv", seed: 5, tol: 5e-6 },
  { op: "linear", name: "gemv f32 weights, N 33 K 70", m: 1, n: 33, k: 70, w: { kind: "f32" }, bias: true, kernel: "gemv", seed: 6, tol: 5e-6 },
  { op: "linear", name: "gemv f16 weights, odd K, N 21 K 99", m: 1, n: 21, k: 99, w: { kind: "f16" }, bias: false, kernel: "gemv", seed: 7, tol: 5e-6 },
  { op: "linear", name: "gemv int4 b32, x ×1e4 (large magnitudes)", m: 1, n: 24, k: 192, w: { kind: "nbits", bits: 4, block: 32, zeroPoints: true }, bias: false, kernel: "gemv", seed: 8, tol: 5e-6, xScale: 1e4 },
  { op: "linear", name: "gemm int4 b32 zp, M 45 N 70 K 200 (no dim a tile multiple)", m: 45, n: 70, k: 200, w: { kind: "nbits", bits: 4, block: 32, zeroPoints: true }, bias: false, kernel: "gemm", seed: 9, tol: 5e-6 },
  { op: "linear", name: "gemm int4 b128 sym, bias, M 33 N 65 K 300", m: 33, n: 65, k: 300, w: { kind: "nbits", bits: 4, block: 128, zeroPoints: false }, bias: true, kernel: "gemm", seed: 10, tol: 5e-6 },
  { op: "linear", name: "gemm int8 b64 zp, M 17 N 40 K 130", m: 17, n: 40, k: 130, w: { kind: "nbits", bits: 8, block: 64, zeroPoints: true }, bias: false, kernel: "gemm", seed: 11, tol: 5e-6 },
  { op: "linear", name: "gemm f16 weights, bias, M 37 N 30 K 45", m: 37, n: 30, k: 45, w: { kind: "f16" }, bias: true, kernel: "gemm", seed: 12, tol: 5e-6 },
  { op: "linear", name: "gemm f32 weights, M 64 N 64 K 64", m: 64, n: 64, k: 64, w: { kind: "f32" }, bias: false, kernel: "gemm", seed: 13, tol: 5e-6 },
  { op: "linear", name: "gemv int4 b32 zp, bias, split in 3 row ranges (binding limit 700 B), N 40 K 96", m: 1, n: 40, k: 96, w: { kind: "nbits", bits: 4, block: 32, zeroPoints: true }, bias: true, kernel: "gemv", seed: 34, tol: 5e-6, splitBytes: 700 },
  { op: "linear", name: "gemm f16, bias, split in 4 row ranges (binding limit 2 KiB), M 35 N 50 K 70", m: 35, n: 50, k: 70, w: { kind: "f16" }, bias: true, kernel: "gemm", seed: 35, tol: 5e-6, splitBytes: 2048 },
  { op: "embedding", name: "embedding int4 b32 zp, vocab 50 hidden 72", vocab: 50, hidden: 72, tokens: 9, w: { kind: "nbits", bits: 4, block: 32, zeroPoints: true }, seed: 14, tol: 1e-6 },
  { op: "embedding", name: "embedding int8 b64 sym, vocab 33 hidden 100", vocab: 33, hidden: 100, tokens: 5, w: { kind: "nbits", bits: 8, block: 64, zeroPoints: false }, seed: 15, tol: 1e-6 },
  { op: "embedding", name: "embedding f16, vocab 20 hidden 31", vocab: 20, hidden: 31, tokens: 4, w: { kind: "f16" }, seed: 16, tol: 1e-6 },
  { op: "embedding", name: "embedding int4 b32 zp, split in row ranges (binding limit 400 B), vocab 50 hidden 72, ids across the parts", vocab: 50, hidden: 72, tokens: 12, w: { kind: "nbits", bits: 4, block: 32, zeroPoints: true }, seed: 39, tol: 1e-6, splitBytes: 400 },
  { op: "rmsnorm", name: "rmsnorm dim 2048, rows ×1, ×1e4, ×1e20 (x² overflows f32), ×1e-3, a zero row", dim: 2048, rowScales: [1, 1e4, 1e20, 1e-3, 0], eps: 1e-6, seed: 17, tol: 5e-6 },
  { op: "rmsnorm", name: "rmsnorm dim 100 (not a multiple of 256), 7 rows, eps 1e-5", dim: 100, rowScales: [1, 2, 3, 0.5, 1e4, 1, 1], eps: 1e-5, seed: 18, tol: 5e-6 },
  { op: "swiglu", name: "swiglu separate gate/up, 3 × 300", rows: 3, width: 300, fused: false, scale: 4, seed: 19, tol: 2e-6 },
  { op: "swiglu", name: "swiglu fused [gate | up] rows, ×100 (e^(−g) overflows f32)", rows: 5, width: 77, fused: true, scale: 100, seed: 20, tol: 2e-6 },
  { op: "add", name: "residual add 1000", count: 1000, seed: 21, tol: 0 },
  { op: "rotary", name: "rotary 1-D full head 64, 4 heads, positions to 60000", kind: "1d", headDim: 64, heads: 4, headStride: 64, offset: 0, tokens: 9, maxPosition: 60000, seed: 22, tol: 2e-6 },
  {
    op: "rotary",
    name: "rotary M-RoPE (section 4/6/6) on MLA kept pairs per KV group, slice at offset 8 of a 20-wide head",
    kind: "mrope",
    headDim: 32,
    heads: 4,
    headStride: 20,
    offset: 8,
    pairs: [[0, 5, 12], [2, 7, 15]],
    section: [4, 6, 6],
    tokens: 11,
    maxPosition: 5000,
    seed: 23,
    tol: 2e-6,
  },
  { op: "rotary", name: "rotary vision 2-D (rows, columns), head 16", kind: "vision", headDim: 16, heads: 3, headStride: 16, offset: 0, tokens: 12, maxPosition: 64, seed: 24, tol: 2e-6 },
  { op: "sample", name: "greedy, ties at the max and the max banned → lowest allowed tie", vocab: 1000, scale: 5, temperature: 0, topK: 0, topP: 1, ties: 4, banned: 3, draws: 1, seed: 25, tol: 0 },
  { op: "sample", name: "temperature 0.7, top-k 40, logits ±3 ×30 (e^90/0.7 overflows f32)", vocab: 5000, scale: 90, temperature: 0.7, topK: 40, topP: 1, draws: 8, seed: 26, tol: 0 },
  { op: "sample", name: "temperature 1, top-p 0.9", vocab: 3000, scale: 3, temperature: 1, topK: 0, topP: 0.9, draws: 8, seed: 27, tol: 0 },
  { op: "sample", name: "temperature 0.8, top-k 50 + top-p 0.95, logits 1e4 ± 4 (far beyond exp's range), banned ids", vocab: 2000, scale: 4, offset: 1e4, temperature: 0.8, topK: 50, topP: 0.95, banned: 10, draws: 8, seed: 28, tol: 0 },
  { op: "sample", name: "temperature 1.2 only (no top-k/p), V 777", vocab: 777, scale: 2, temperature: 1.2, topK: 0, topP: 1, draws: 16, seed: 29, tol: 0 },
  { op: "sample", name: "top-k beyond the allowed count keeps all", vocab: 100, scale: 1, temperature: 1, topK: 200, topP: 1, banned: 5, draws: 8, seed: 30, tol: 0 },
  { op: "sample", name: "Qwen vocabulary 151936, logits ±3 ×30, top-p 0.9", vocab: 151936, scale: 90, temperature: 1, topK: 0, topP: 0.9, draws: 1, seed: 31, tol: 0 },
  { op: "lmhead", name: "LM head int4 b32 hidden 256 → vocab 3000, greedy", vocab: 3000, hidden: 256, temperature: 0, topK: 0, topP: 1, draws: 1, seed: 32, tol: 0 },
  { op: "lmhead", name: "LM head int4 b32 hidden 256 → vocab 3000, temperature 0.8 top-k 20", vocab: 3000, hidden: 256, temperature: 0.8, topK: 20, topP: 1, draws: 6, seed: 33, tol: 0 },
  { op: "lmhead", name: "LM head int4 b32 split in 3 row ranges → temperature 4, top-p 0.8", vocab: 3000, hidden: 256, temperature: 4, topK: 0, topP: 0.8, draws: 4, seed: 36, tol: 0, splitBytes: 160_000 },
  { op: "vision_attention", name: "vision attention fused qkv, 3 heads × 16, segments 5/15/17 (no multiple of 64)", heads: 3, headDim: 16, cu: [0, 5, 20, 37], fused: true, scale: 1, seed: 37, tol: 5e-6 },
  { op: "vision_attention", name: "vision attention head 80 (2 per thread), segments 64/85/1 (a segment over two 64-key chunks)", heads: 2, headDim: 80, cu: [0, 64, 149, 150], fused: false, scale: 1, seed: 38, tol: 5e-6 },
  { op: "vision_attention", name: "vision attention full segment of 300 rows, head 72, scores ×40 (online-softmax rescaling; scores ≈ 100 carry f32 rounding ≈ 6e-6)", heads: 1, headDim: 72, cu: [0, 300], fused: false, scale: 40, seed: 39, tol: 2e-5 },
  { op: "gelu", name: "gelu (erf) 1000 values in ±12 (erfc underflow tails)", count: 1000, scale: 12, seed: 40, tol: 2e-6 },
  { op: "gather_rows", name: "gather rows: permutation of 9 rows × 37, plus an out-of-range index → zeros", srcRows: 9, width: 37, index: [3, 8, 0, 1, 7, 2, 6, 5, 4, 9], seed: 41, tol: 0 },
  // Long rows: 32 GEMV lanes per row with the GPU launch shapes, 4 with the CPU ones; a 3-tile GEMM.
  { op: "linear", name: "gemv int4 b32 zp, bias, N 70 K 2112 (long rows)", m: 1, n: 70, k: 2112, w: { kind: "nbits", bits: 4, block: 32, zeroPoints: true }, bias: true, kernel: "gemv", seed: 36, tol: 5e-6 },
  { op: "linear", name: "gemv f16, N 45 K 1030 (long rows, odd words)", m: 1, n: 45, k: 1030, w: { kind: "f16" }, bias: false, kernel: "gemv", seed: 37, tol: 5e-6 },
  { op: "linear", name: "gemm int4 b32, bias, M 130 N 140 K 96 (3 × 3 tiles, partial)", m: 130, n: 140, k: 96, w: { kind: "nbits", bits: 4, block: 32, zeroPoints: false }, bias: true, kernel: "gemm", seed: 38, tol: 5e-6 },
];

/**
 * Every case as the adapter picks its launch shapes, and every linear case again under the other shapes forced (GEMV
 * lanes per row, GEMM 4×4 or 8×8 blocking): SwiftShader picks the CPU shapes, so the GPU ones are checked there too.
 */
export const MODEL_CASES: readonly ModelCase[] = [
  ...BASE_CASES,
  ...BASE_CASES.flatMap((c): ModelCase[] =>
    c.op === "linear" ? (["gpu", "cpu"] as const).map((launch) => ({ ...c, name: `${c.name} [${launch} launch shapes]`, launch })) : [],
  ),
];

// Kernel test cases as data: the same list feeds the f64 reference, the CPU fallback, Node WebGPU (dawn.node +
// SwiftShader) and Chromium runs. Sizes stay modest because SwiftShader is slow.
import type { CacheEncoding, MlaGeometry } from "../../kernels/geometry.ts";

export type ModalityPattern = "text" | "image" | "interleaved" | "spans";

export interface KernelCase {
  readonly name: string;
  readonly geometry: MlaGeometry;
  readonly encoding: CacheEncoding;
  /** Tokens in the cache (sealed chunks of 64 + f32 tail). */
  readonly length: number;
  /** 1 = decode; > 1 = append of a causal block (the last `queryCount` tokens). */
  readonly queryCount: number;
  readonly modality: ModalityPattern;
  readonly seed: number;
  /** Small initial capacity forces in-place geometric growth while chunks are written. */
  readonly initialCapacity?: number;
  /**
   * Multiplies q_rope and q̃ (default 1): at 30× the scores reach several hundred, beyond f32 `exp`'s range (≈ 88.7),
   * so an online softmax that skips the running-max subtraction returns Infinity/NaN (issue 21).
   */
  readonly queryScale?: number;
  /** Added to every key bias β (default 0); −2000 puts every score near −180, where f32 `exp` underflows to 0. */
  readonly keyBiasShift?: number;
}

/** Qwen2.5-VL-7B attention: 28 heads, 4 KV heads, r = 32 per KV head, d_h = 128; D_c = 4·d_kv. */
export function qwenGeometry(latentWidth: 128 | 256 | 512): MlaGeometry {
  return { heads: 28, kvHeads: 4, ropeDims: 32, latentWidth, headDim: 128, spaces: 2 };
}

const int4: CacheEncoding = { latentBits: 4, latentGroup: 64, rope: "int8" };

/** Deterministic "random" geometries within the kernels' constraints (D_c multiple of 32, n_kv | n_h). */
function randomGeometry(seed: number): { geometry: MlaGeometry; encoding: CacheEncoding } {
  let s = seed >>> 0;
  const next = (n: number): number => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0;
    return s % n;
  };
  const kvHeads = [1, 2, 3, 4][next(4)];
  const heads = kvHeads * [1, 2, 3, 5][next(4)];
  const latentWidth = 32 * (1 + next(6));
  const ropeDims = [0, 8, 16][next(3)];
  const bits = ([8, 4, 2] as const)[next(3)];
  const rope = (["fp16", "int8", "int4"] as const)[next(3)];
  // Groups must tile D_c (docs/codec.md: the extent is a multiple of the effective group).
  const groups = [32, 64, 128].filter((gr) => latentWidth % Math.min(gr, latentWidth) === 0);
  const latentGroup = groups[next(groups.length)];
  const headDim = [64, 128][next(2)];
  const spaces = next(2) === 0 ? 1 : 2;
  return {
    geometry: { heads, kvHeads, ropeDims, latentWidth, headDim, spaces },
    encoding: { latentBits: bits, latentGroup, rope },
  };
}

export const KERNEL_CASES: readonly KernelCase[] = [
  { name: "qwen dc128 int4/int8 L=1 text", geometry: qwenGeometry(128), encoding: int4, length: 1, queryCount: 1, modality: "text", seed: 1 },
  { name: "qwen dc128 int4/int8 L=63 spans", geometry: qwenGeometry(128), encoding: int4, length: 63, queryCount: 1, modality: "spans", seed: 2 },
  { name: "qwen dc256 int4/int8 L=65 interleaved", geometry: qwenGeometry(256), encoding: int4, length: 65, queryCount: 1, modality: "interleaved", seed: 3 },
  { name: "qwen dc256 int4/int8 L=200 spans", geometry: qwenGeometry(256), encoding: int4, length: 200, queryCount: 1, modality: "spans", seed: 4, initialCapacity: 64 },
  { name: "qwen dc512 int8 g128 fp16-rope L=777 spans", geometry: qwenGeometry(512), encoding: { latentBits: 8, latentGroup: 128, rope: "fp16" }, length: 777, queryCount: 1, modality: "spans", seed: 5, initialCapacity: 128 },
  { name: "qwen dc256 int2 g32 int4-rope L=128 image only", geometry: qwenGeometry(256), encoding: { latentBits: 2, latentGroup: 32, rope: "int4" }, length: 128, queryCount: 1, modality: "image", seed: 6 },
  { name: "qwen dc256 append 37 @ L=300", geometry: qwenGeometry(256), encoding: int4, length: 300, queryCount: 37, modality: "spans", seed: 7 },
  { name: "single space n_h=4 n_kv=4 dc64 int8 append 70 @ L=150", geometry: { heads: 4, kvHeads: 4, ropeDims: 8, latentWidth: 64, headDim: 64, spaces: 1 }, encoding: { latentBits: 8, latentGroup: 64, rope: "fp16" }, length: 150, queryCount: 70, modality: "text", seed: 8 },
  // Channel-axis (KIVI-style) latent groups: one scale per channel per g tokens.
  { name: "qwen dc256 int4 channel-axis g64 L=200 spans", geometry: qwenGeometry(256), encoding: { ...int4, latentAxis: "channel" }, length: 200, queryCount: 1, modality: "spans", seed: 9, initialCapacity: 64 },
  { name: "qwen dc128 int2 channel-axis g32 fp16-rope append 20 @ L=150", geometry: qwenGeometry(128), encoding: { latentBits: 2, latentGroup: 32, latentAxis: "channel", rope: "fp16" }, length: 150, queryCount: 20, modality: "interleaved", seed: 10 },
  // Large magnitudes (issue 21): attention sinks and large activations give logits far beyond f32 exp's range; only
  // the max subtraction of the online softmax keeps them finite. Same layouts as above, so no new pipelines.
  { name: "qwen dc256 int4/int8 30× queries L=200 spans", geometry: qwenGeometry(256), encoding: int4, length: 200, queryCount: 1, modality: "spans", seed: 14, queryScale: 30 },
  { name: "qwen dc128 int4/int8 30× queries append 9 @ L=130 interleaved", geometry: qwenGeometry(128), encoding: int4, length: 130, queryCount: 9, modality: "interleaved", seed: 15, queryScale: 30 },
  { name: "qwen dc256 int4/int8 key bias −2000 append 5 @ L=140 spans", geometry: qwenGeometry(256), encoding: int4, length: 140, queryCount: 5, modality: "spans", seed: 16, keyBiasShift: -2000 },
  ...[11, 12, 13].map((seed, i): KernelCase => ({
    name: `random geometry #${seed}`,
    ...randomGeometry(seed),
    length: [97, 130, 257][i],
    queryCount: [1, 5, 1][i],
    modality: (["interleaved", "spans", "text"] as const)[i],
    seed,
  })),
];

/** Session scenario (prompt in the tail → decode steps across a seal → a 37-token turn) in the Qwen bench geometry. */
export const SESSION_CASE: KernelCase = {
  name: "session: decode steps 60→70 across a seal, then a 37-token turn",
  geometry: qwenGeometry(256),
  encoding: int4,
  length: 107,
  queryCount: 37,
  modality: "spans",
  seed: 21,
};

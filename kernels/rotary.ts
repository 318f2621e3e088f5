// Rotary embedding in place on the GPU (1-D, M-RoPE with kept-pair masks, vision 2-D): tables and reference in
// rotary.ref.ts. One thread per (token, head, sub-pair).
//
// Angle precision: the CPU splits f_i = inv_freq_i / 2π (turns per position) into f_hi + f_mid (8 significant bits
// each) + f_lo, so pos·f_hi and pos·f_mid are exact in f32 for |pos| < 2^16 and so are their fract(); the angle is
// 2π·fract(Σ fract(pos·f_part)), ≈ 1e-7 rad at any position < 65536 instead of the ≈ pos·6e-8 rad of a plain f32
// pos·inv_freq; cos/sin come from a quadrant reduction and Taylor polynomials (cosSinTurns), not the driver's.
import { KernelInputError } from "./errors.ts";
import type { GpuContext } from "./gpu-context.ts";
import { normalizeDispatch, uniformLayout, type KernelProgram } from "./program.ts";
import { uploadBuffer, type KernelCall } from "./dispatch.ts";
import type { RotaryLayout, RotaryTables } from "./rotary.ref.ts";

export const ROTARY_WORKGROUP = 64;

export const rotaryUniforms = uniformLayout([
  ["tokens", "u32"],
  ["heads", "u32"],
  ["headStride", "u32"],
  ["offset", "u32"],
  ["k", "u32"],
  ["headsPerGroup", "u32"],
  ["gridX", "u32"],
  /** Values between consecutive tokens' rows (heads·headStride for a packed x). */
  ["tokenStride", "u32"],
  /** Value index of token 0's row in x. */
  ["xOffset", "u32"],
] as const);

/** Bindings: 1 x (read_write), 2 pairs u32 [groups, k], 3 positions i32 [streams, tokens], 4 freq u32 [half, 4]. */
export function createRotaryProgram(): KernelProgram {
  return {
    name: "rotary",
    cacheHint: `wg${ROTARY_WORKGROUP}`,
    workgroupSize: ROTARY_WORKGROUP,
    getShaderSource: () => `
${rotaryUniforms.wgsl}
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> pairs: array<u32>;
@group(0) @binding(3) var<storage, read> positions: array<i32>;
@group(0) @binding(4) var<storage, read> freq: array<vec4<u32>>;
const TWO_PI: f32 = 6.283185307179586;

/** (cos, sin) of 2π·t for t in [0, 1): quadrant q = round(4t), r = 2π(t − q/4) in [−π/4, π/4], Taylor to r⁹/r¹⁰
 * (truncation < 2e-9), so the result does not depend on the driver's sin/cos (SwiftShader's are ≈ 1e-4 off). */
fn cosSinTurns(t: f32) -> vec2<f32> {
  let qf = round(t * 4.0);
  let r = (t - qf * 0.25) * TWO_PI;
  let r2 = r * r;
  let s = r * (1.0 - r2 / 6.0 * (1.0 - r2 / 20.0 * (1.0 - r2 / 42.0 * (1.0 - r2 / 72.0))));
  let c = 1.0 - r2 / 2.0 * (1.0 - r2 / 12.0 * (1.0 - r2 / 30.0 * (1.0 - r2 / 56.0 * (1.0 - r2 / 90.0))));
  switch (u32(qf) & 3u) {
    case 0u: { return vec2<f32>(c, s); }
    case 1u: { return vec2<f32>(-s, c); }
    case 2u: { return vec2<f32>(-c, -s); }
    default: { return vec2<f32>(s, -c); }
  }
}

@compute @workgroup_size(${ROTARY_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let idx = (wid.y * P.gridX + wid.x) * ${ROTARY_WORKGROUP}u + t;
  if (idx >= P.tokens * P.heads * P.k) { return; }
  let j = idx % P.k;
  let h = (idx / P.k) % P.heads;
  let tok = idx / (P.k * P.heads);
  let p = pairs[(h / P.headsPerGroup) * P.k + j];
  let f = freq[p];
  let pos = f32(positions[f.w * P.tokens + tok]);
  let turns = fract(fract(pos * bitcast<f32>(f.x)) + fract(pos * bitcast<f32>(f.y)) + fract(pos * bitcast<f32>(f.z)));
  let cs = cosSinTurns(turns);
  let c = cs.x;
  let s = cs.y;
  let base = P.xOffset + tok * P.tokenStride + h * P.headStride + P.offset;
  let a = x[base + j];
  let b = x[base + j + P.k];
  x[base + j] = a * c - b * s;
  x[base + j + P.k] = b * c + a * s;
}
`,
  };
}

/** The freq table: per pair (f_hi, f_mid, f_lo bits, stream) with f = inv_freq/2π split as described above. */
export function rotaryFreqWords(tables: RotaryTables): Uint32Array {
  const words = new Uint32Array(tables.half * 4);
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (let i = 0; i < tables.half; i++) {
    let rest = tables.invFreq[i] / (2 * Math.PI);
    for (let part = 0; part < 3; part++) {
      f32[0] = rest;
      if (part < 2) u32[0] &= 0xffff0000; // 8 significant bits: pos·part is exact in f32 for |pos| < 2^16
      words[i * 4 + part] = u32[0];
      rest -= f32[0];
    }
    words[i * 4 + 3] = tables.streams[i];
  }
  return words;
}

/** GPU-resident tables of one rotary kind (freq words) and one pair selection (pairs of every group, flattened). */
export interface GpuRotary {
  readonly freq: GPUBuffer;
  readonly pairs: GPUBuffer;
  readonly k: number;
  readonly groups: number;
  readonly streamCount: number;
  destroy(): void;
}

export function uploadRotary(ctx: GpuContext, tables: RotaryTables, pairs: readonly (readonly number[])[]): GpuRotary {
  const k = pairs[0]?.length ?? 0;
  if (pairs.length < 1 || k < 1) throw new KernelInputError("rotary needs at least one group with at least one pair");
  for (const g of pairs) {
    if (g.length !== k) throw new KernelInputError(`every group must keep the same number of pairs (${k}), got ${g.length}`);
    for (const p of g) if (!Number.isInteger(p) || p < 0 || p >= tables.half) throw new KernelInputError(`pair ${p} is outside [0, ${tables.half})`);
  }
  const freq = uploadBuffer(ctx, "rotary-freq", rotaryFreqWords(tables));
  const pb = uploadBuffer(ctx, "rotary-pairs", Uint32Array.from(pairs.flat()));
  return { freq, pairs: pb, k, groups: pairs.length, streamCount: tables.streamCount, destroy: () => (freq.destroy(), pb.destroy()) };
}

/** Where the rows sit when x is not a packed [tokens, heads, headStride] array (e.g. the q slice of a wider row). */
export interface RotaryRows {
  /** Values between consecutive tokens (default heads·headStride). */
  readonly tokenStride?: number;
  /** Value index of token 0's row (default 0). */
  readonly xOffset?: number;
}

/**
 * Rotates x [tokens, heads, headStride] in place at `offset` (slice of 2k values per head); with `rows`, token t's heads
 * start at xOffset + t·tokenStride.
 */
export function rotaryCall(ctx: GpuContext, r: GpuRotary, x: GPUBuffer, positions: GPUBuffer, l: Omit<RotaryLayout, "pairs"> & RotaryRows): KernelCall {
  const tokenStride = l.tokenStride ?? l.heads * l.headStride;
  const xOffset = l.xOffset ?? 0;
  if (!Number.isInteger(tokenStride) || tokenStride < l.heads * l.headStride) throw new KernelInputError(`token stride ${tokenStride} is shorter than ${l.heads} heads × ${l.headStride}`);
  if (l.heads % r.groups !== 0) throw new KernelInputError(`${l.heads} heads do not split into ${r.groups} pair groups`);
  if (l.offset + 2 * r.k > l.headStride) throw new KernelInputError(`slice [${l.offset}, ${l.offset + 2 * r.k}) passes the head stride ${l.headStride}`);
  if (x.size < (xOffset + (l.tokens - 1) * tokenStride + l.heads * l.headStride) * 4) throw new KernelInputError(`x is smaller than [${l.tokens}, ${l.heads}, ${l.headStride}] f32 at stride ${tokenStride} from ${xOffset}`);
  if (positions.size < r.streamCount * l.tokens * 4) throw new KernelInputError(`positions hold fewer than ${r.streamCount} × ${l.tokens} values`);
  const [gx, gy] = normalizeDispatch(Math.ceil((l.tokens * l.heads * r.k) / ROTARY_WORKGROUP), ctx.device.limits.maxComputeWorkgroupsPerDimension);
  return {
    program: createRotaryProgram(),
    uniforms: rotaryUniforms.pack({ tokens: l.tokens, heads: l.heads, headStride: l.headStride, offset: l.offset, k: r.k, headsPerGroup: l.heads / r.groups, gridX: gx, tokenStride, xOffset }),
    buffers: [x, r.pairs, positions, r.freq],
    grid: [gx, gy, 1],
  };
}

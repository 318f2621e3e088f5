// WGSL that reads the stored cache layout (docs/codec.md, either latent axis): packed latent codes, fp16 scale|zero words,
// rope keys (fp16 pairs or int8/int4 codes with a per-KV-head scale|zero), the bit-packed modality and the f32 tail.
//
// u32 word w of the latent codes holds elements e = w·(32/b) … w·(32/b)+32/b−1 of the row-major [token][D_c] index,
// element e at bits b·(e mod 32/b) — the little-endian reading of the codec's byte layout:
//
//   int4, word = bytes [e0e1][e2e3][e4e5][e6e7]   ->   bits 0-3 e0 | 4-7 e1 | 8-11 e2 | ... | 28-31 e7
//
// Tokens j < P.sealedLen read codes; tokens ≥ P.sealedLen read the tail: f32 rows [latent D_c | rope n_kv·r].
import type { CacheLayout } from "./geometry.ts";
import { fp16PairWgsl, type ShaderFeatures } from "./program.ts";

/** Uniform fields the cache readers use (must exist in the program's Params). */
export const CACHE_UNIFORMS = [
  ["sealedLen", "u32"],
  ["latCodesOff", "u32"],
  ["latSzOff", "u32"],
  ["ropeCodesOff", "u32"],
  ["ropeSzOff", "u32"],
] as const;

export interface CacheBindings {
  readonly cache: number;
  readonly tail: number;
  /** Omit for kernels that never read the modality (an unused binding would be dropped from the auto layout). */
  readonly modality?: number;
}

const MODALITY_FN = `
/** Latent space of a token: its modality bit when there are two spaces, else 0. */
fn modalityOf(tok: u32) -> u32 {
  if (SPACES == 1u) { return 0u; }
  return (modality[tok >> 5u] >> (tok & 31u)) & 1u;
}
`;

/** Cache constants, bindings and reader functions `latentAt`, `ropeAt`, `modalityOf`, `latentScaleZero`. */
export function cacheReaderWgsl(layout: CacheLayout, b: CacheBindings, features: ShaderFeatures): string {
  const g = layout.geometry;
  const lb = layout.encoding.latentBits;
  const rb = layout.ropeBits;
  const ropeFn =
    g.ropeDims === 0
      ? "fn ropeAt(tok: u32, kv: u32, k: u32) -> f32 { return 0.0; }"
      : rb === 16
        ? `fn ropeAt(tok: u32, kv: u32, k: u32) -> f32 {
  if (tok < P.sealedLen) {
    let e = tok * RW + kv * R + k;
    return fp16Pair(cache[P.ropeCodesOff + (e >> 1u)])[e & 1u];
  }
  return tail[(tok - P.sealedLen) * TS + DC + kv * R + k];
}`
        : `fn ropeAt(tok: u32, kv: u32, k: u32) -> f32 {
  if (tok < P.sealedLen) {
    let e = tok * RW + kv * R + k;
    let q = (cache[P.ropeCodesOff + e / RVPW] >> ((e % RVPW) * RBITS)) & RMASK;
    let sz = fp16Pair(cache[P.ropeSzOff + tok * NKV + kv]);
    return f32(q) * sz.x + sz.y;
  }
  return tail[(tok - P.sealedLen) * TS + DC + kv * R + k];
}`;
  return `
const DC: u32 = ${g.latentWidth}u;
const NKV: u32 = ${g.kvHeads}u;
const R: u32 = ${g.ropeDims}u;
const RW: u32 = ${layout.ropeWidth}u;
const TS: u32 = ${layout.tailStride}u;
const LBITS: u32 = ${lb}u;
const LVPW: u32 = ${32 / lb}u;
const LMASK: u32 = ${(1 << lb) - 1}u;
const LG: u32 = ${layout.latentGroup}u;
const LGPT: u32 = ${layout.latentGroupsPerToken}u;
const LWPT: u32 = ${layout.latentWordsPerToken}u;
const RBITS: u32 = ${rb === 16 ? 16 : rb}u;
const RVPW: u32 = ${32 / rb}u;
const RMASK: u32 = ${rb === 16 ? 0xffff : (1 << rb) - 1}u;
const SPACES: u32 = ${g.spaces}u;

@group(0) @binding(${b.cache}) var<storage, read> cache: array<u32>;
@group(0) @binding(${b.tail}) var<storage, read> tail: array<f32>;
${b.modality === undefined ? "" : `@group(0) @binding(${b.modality}) var<storage, read> modality: array<u32>;`}

${fp16PairWgsl(features)}
/** (scale, zero) of the latent group holding channel c of a sealed token. */
fn latentScaleZero(tok: u32, c: u32) -> vec2<f32> {
  ${layout.latentAxis === "token" ? "return fp16Pair(cache[P.latSzOff + tok * LGPT + c / LG]);" : "return fp16Pair(cache[P.latSzOff + (tok / LG) * DC + c]);"}
}

fn latentAt(tok: u32, c: u32) -> f32 {
  if (tok < P.sealedLen) {
    let e = tok * DC + c;
    let q = (cache[P.latCodesOff + e / LVPW] >> ((e % LVPW) * LBITS)) & LMASK;
    let sz = latentScaleZero(tok, c);
    return f32(q) * sz.x + sz.y;
  }
  return tail[(tok - P.sealedLen) * TS + c];
}

${ropeFn}
${b.modality === undefined ? "" : MODALITY_FN}`;
}

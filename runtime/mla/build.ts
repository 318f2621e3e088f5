// Builds the MLA form of a layer from the original GQA weights (docs/method.md §4): q_proj row permutation, k_r_proj from
// the kept k_proj rows, and [W_k,nope; W_v] handed to a low-rank factoriser (joint / split / MD-SVD plug in here).

import { MlaError } from "../../format/errors.ts";
import { Modality } from "../../format/cache-spec.ts";
import type { TextModelConfig } from "../../checkpoint/config.ts";
import type { GqaAttentionWeights, GqaModelWeights } from "../weights.ts";
import { keyRowSelection, queryRowPermutation, validateKeptPairs, type KeptPairs } from "./kept-pairs.ts";
import type { LatentProjection, MlaAttentionWeights, MlaConversionInfo, MlaModelWeights } from "./weights.ts";

export class MlaBuildError extends MlaError<"bad_factorisation" | "inconsistent_rank"> {
  override readonly name = "MlaBuildError";
  constructor(code: "bad_factorisation" | "inconsistent_rank", message: string) {
    super(code, message);
  }
}

/** What a factoriser gets for one layer: the NoPE key and value projections to squeeze through a latent. */
export interface KvFactorInput {
  readonly layer: number;
  readonly config: TextModelConfig;
  readonly keptPairs: readonly Int32Array[];
  readonly hidden: number;
  /** d_c = d_h − r: NoPE dims per KV head. */
  readonly nopeDims: number;
  /** [n_kv·d_c × hidden]: rows of k_proj outside the kept pairs, head-major, ascending within a head. */
  readonly wKNope: Float32Array;
  readonly bKNope: Float32Array | null;
  /** [n_kv·d_h × hidden] */
  readonly wV: Float32Array;
  readonly bV: Float32Array | null;
}

/** A factorisation's projections for one latent space; biases default to the original b_k,nope / b_v. */
export interface FactorProjection {
  readonly downKv: Float32Array | Float64Array;
  readonly upK: Float32Array | Float64Array;
  readonly upV: Float32Array | Float64Array;
  readonly upKBias?: Float32Array | Float64Array | null;
  readonly upVBias?: Float32Array | Float64Array | null;
}

/** One space (shared by both modalities) or both, keyed by modality. */
export type KvFactorisation = { readonly shared: FactorProjection } | { readonly text: FactorProjection; readonly image: FactorProjection };

export type KvFactoriser = (input: KvFactorInput) => KvFactorisation;

/**
 * The exact factorisation: down = [W_k,nope; W_v] (D_c = n_kv·(d_c + d_h)), up_k = [I 0], up_v = [0 I]. With every
 * pair kept it reproduces the original model; with partial RoPE it reproduces "partial RoPE only".
 */
export function fullRankFactoriser(latentSpaces: 1 | 2 = 2): KvFactoriser {
  return (inp) => {
    const kRows = inp.wKNope.length / inp.hidden;
    const vRows = inp.wV.length / inp.hidden;
    const dc = kRows + vRows;
    const down = new Float32Array(dc * inp.hidden);
    down.set(inp.wKNope, 0);
    down.set(inp.wV, inp.wKNope.length);
    const upK = new Float32Array(kRows * dc);
    for (let i = 0; i < kRows; i++) upK[i * dc + i] = 1;
    const upV = new Float32Array(vRows * dc);
    for (let i = 0; i < vRows; i++) upV[i * dc + kRows + i] = 1;
    const p: FactorProjection = { downKv: down, upK, upV };
    return latentSpaces === 1 ? { shared: p } : { text: p, image: p };
  };
}

function gatherRows(w: Float32Array, cols: number, rows: Int32Array): Float32Array {
  const out = new Float32Array(rows.length * cols);
  for (let i = 0; i < rows.length; i++) out.set(w.subarray(rows[i] * cols, (rows[i] + 1) * cols), i * cols);
  return out;
}

function gather(b: Float32Array | null, idx: Int32Array): Float32Array | null {
  if (b === null) return null;
  const out = new Float32Array(idx.length);
  for (let i = 0; i < idx.length; i++) out[i] = b[idx[i]];
  return out;
}

const f32 = (a: Float32Array | Float64Array): Float32Array => (a instanceof Float32Array ? a : Float32Array.from(a));

function toProjection(p: FactorProjection, inp: KvFactorInput, kvHeads: number, headDim: number, label: string): LatentProjection {
  const d = inp.hidden;
  if (p.downKv.length % d !== 0) throw new MlaBuildError("bad_factorisation", `${label}: down_kv has ${p.downKv.length} values, not a multiple of hidden ${d}`);
  const dc = p.downKv.length / d;
  const kRows = kvHeads * inp.nopeDims;
  const vRows = kvHeads * headDim;
  if (p.upK.length !== kRows * dc || p.upV.length !== vRows * dc) {
    throw new MlaBuildError("bad_factorisation", `${label}: up_k must be [${kRows} × ${dc}] and up_v [${vRows} × ${dc}]`);
  }
  const kb = p.upKBias === undefined ? inp.bKNope : p.upKBias;
  const vb = p.upVBias === undefined ? inp.bV : p.upVBias;
  if ((kb !== null && kb.length !== kRows) || (vb !== null && vb.length !== vRows)) {
    throw new MlaBuildError("bad_factorisation", `${label}: bias sizes must be ${kRows} (up_k) and ${vRows} (up_v)`);
  }
  return {
    downKv: f32(p.downKv),
    upK: f32(p.upK),
    upKBias: kb === null ? null : f32(kb),
    upV: f32(p.upV),
    upVBias: vb === null ? null : f32(vb),
  };
}

/** Converts one layer. `keptPairs[g]` lists the kept pairs of KV head g (ascending). */
export function buildMlaAttention(
  orig: GqaAttentionWeights,
  config: TextModelConfig,
  layer: number,
  keptPairs: readonly (readonly number[])[],
  factorise: KvFactoriser,
): MlaAttentionWeights {
  const { hiddenSize: d, numHeads: nh, numKvHeads: nkv, headDim: dh } = config;
  validateKeptPairs([keptPairs as number[][]], 1, nkv, dh);
  const r = 2 * keptPairs[0].length;
  const perm = queryRowPermutation(keptPairs, nh, dh);
  const { rope, nope } = keyRowSelection(keptPairs, dh);
  const pairs = keptPairs.map((p) => Int32Array.from(p));
  const input: KvFactorInput = {
    layer,
    config,
    keptPairs: pairs,
    hidden: d,
    nopeDims: dh - r,
    wKNope: gatherRows(orig.kProj, d, nope),
    bKNope: gather(orig.kBias, nope),
    wV: orig.vProj,
    bV: orig.vBias,
  };
  const f = factorise(input);
  const spaces =
    "shared" in f
      ? [toProjection(f.shared, input, nkv, dh, `layer ${layer} kv_proj`)]
      : [Modality.text, Modality.image].map((m) =>
          toProjection(m === Modality.image ? f.image : f.text, input, nkv, dh, `layer ${layer} kv_proj_${m === Modality.image ? "img" : "text"}`),
        );
  const dc0 = spaces[0].downKv.length / d;
  if (spaces.some((s) => s.downKv.length / d !== dc0)) {
    throw new MlaBuildError("inconsistent_rank", `layer ${layer}: image and text latents must have the same width`);
  }
  return {
    keptPairs: pairs,
    qProj: gatherRows(orig.qProj, d, perm),
    qBias: gather(orig.qBias, perm),
    kRProj: gatherRows(orig.kProj, d, rope),
    kRBias: gather(orig.kBias, rope),
    spaces,
    oProj: orig.oProj,
  };
}

/** Converts every layer of a loaded model. D_c must be the same multiple of n_kv in every layer. */
export function buildMlaModel(orig: GqaModelWeights, keptPairs: KeptPairs, factorise: KvFactoriser, conversion: MlaConversionInfo): MlaModelWeights {
  const c = orig.config;
  const pairsPerHead = validateKeptPairs(keptPairs, c.numLayers, c.numKvHeads, c.headDim);
  const attention = orig.attention.map((a, l) => buildMlaAttention(a, c, l, keptPairs[l], factorise));
  return assembleMlaModel(c, orig.shell, attention, 2 * pairsPerHead, conversion);
}

/** Checks per-layer consistency and derives d_kv and the number of latent spaces. */
export function assembleMlaModel(
  config: TextModelConfig,
  shell: GqaModelWeights["shell"],
  attention: readonly MlaAttentionWeights[],
  ropeDims: number,
  conversion: MlaConversionInfo,
): MlaModelWeights {
  const d = config.hiddenSize;
  const latent = attention[0].spaces[0].downKv.length / d;
  const spaces = attention[0].spaces.length;
  attention.forEach((a, l) => {
    if (a.spaces.length !== spaces || a.spaces.some((s) => s.downKv.length / d !== latent)) {
      throw new MlaBuildError("inconsistent_rank", `layer ${l}: latent width or space count differs from layer 0 (${latent}, ${spaces})`);
    }
  });
  if (latent % config.numKvHeads !== 0) {
    throw new MlaBuildError("inconsistent_rank", `latent width ${latent} is not a multiple of n_kv = ${config.numKvHeads}`);
  }
  return {
    config,
    shell,
    attention,
    ropeDims,
    dKv: latent / config.numKvHeads,
    latentSpaces: spaces as 1 | 2,
    conversion,
  };
}

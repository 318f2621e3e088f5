// The released MHA2MLA-VLM stage-2 checkpoints (`cnxup/*-MLA-stage2-*`, method.md §10) as published: config.json's
// `mha2mla` dict names a PyTorch rank file (`qk_tensor_path`, uint8 [layers, n_kv, head_dim], both halves equal, each
// half a permutation of 0 … head_dim/2 − 1) from which the kept RoPE pairs are derived (pair i kept when its rank
// < rope_dim/2, `select_mkl_frequency`). The tensors themselves (permuted q_proj rows, k_r_proj, kv_proj_{img,text}
// down/up) already carry the repo's MLA tensor names (docs/checkpoint.md §3); only the kept pairs live outside.
// Browser-safe: the caller supplies a reader for paths relative to the checkpoint folder.

import { parseModelConfig } from "../config.ts";
import { CheckpointError } from "../errors.ts";
import { parseMlaConfig } from "../mla-config.ts";
import { readPthTensor, type PthTensor } from "../pth.ts";
import type { TensorNaming } from "./llama.ts";

/**
 * Per-layer tensor names of the MLA layout (docs/method.md §10.4): the released names (permuted q_proj, k_r_proj,
 * kv_proj_{text,img} down/up), our single-space kv_proj, plus our in-checkpoint kept rope pairs.
 */
export function mlaLayerTensorNames(n: TensorNaming, i: number) {
  const a = `${n.layer(i)}self_attn.`;
  const space = (s: string) => ({
    down: `${a}${s}.down_kv.weight`,
    upK: `${a}${s}.up_k.weight`,
    upKBias: `${a}${s}.up_k.bias`,
    upV: `${a}${s}.up_v.weight`,
    upVBias: `${a}${s}.up_v.bias`,
  });
  return {
    qWeight: `${a}q_proj.weight`,
    qBias: `${a}q_proj.bias`,
    kRWeight: `${a}k_r_proj.weight`,
    kRBias: `${a}k_r_proj.bias`,
    oWeight: `${a}o_proj.weight`,
    /** int32 [n_kv, r/2]: kept frequency pairs per KV head, ascending. Ours; absent from released checkpoints. */
    ropePairs: `${a}rope_pairs`,
    text: space("kv_proj_text"),
    image: space("kv_proj_img"),
    /** Single latent space (no modality split). */
    shared: space("kv_proj"),
  } as const;
}

/**
 * The release's kept-pair rule (`select_mkl_frequency`, docs/method.md §3.3), the one place it is written: pair i of
 * one KV head is kept when its rank `ranks[base + i]` is below ropeDims/2. Returns the kept pair indices ascending.
 */
export function keptPairsOfRanks(ranks: ArrayLike<number>, base: number, half: number, ropeDims: number): number[] {
  const kept: number[] = [];
  for (let i = 0; i < half; i++) if (ranks[base + i] < ropeDims / 2) kept.push(i);
  return kept;
}

/** The kept pairs of a released checkpoint, from its rank file. */
export interface ReleasedRanks {
  /** The path that was read (relative to the checkpoint folder, as resolved). */
  readonly path: string;
  /** The rank tensor as stored, C order ([L × n_kv × d_h] or [L × n_kv × d_h/2]). */
  readonly ranks: Uint8Array;
  readonly shape: readonly number[];
  /** [layer][kv head] → kept pair indices ascending (r/2 of them). */
  readonly keptPairs: number[][][];
}

/** Reads a file named relative to the checkpoint folder; null when there is no such file. */
export type CheckpointFileReader = (relativePath: string) => Promise<Uint8Array | null>;

/**
 * True when `rawConfig` is a released MHA2MLA layout: a `mha2mla` dict and no `mla_edge` dict saying the kept pairs
 * are stored as `rope_pairs` tensors (mla-edge's own layout, which needs no rank file).
 */
export function isReleasedMha2mla(rawConfig: unknown): boolean {
  const top = rawConfig as Record<string, unknown> | null;
  if (top === null || typeof top !== "object" || top.mha2mla === undefined || top.mha2mla === null) return false;
  const edge = top.mla_edge as Record<string, unknown> | undefined | null;
  return !(edge !== undefined && edge !== null && edge.rope_pairs === "in_checkpoint");
}

/** `mha2mla.qk_tensor_path`, or null when the config names none. */
export function releasedRankPath(rawConfig: unknown): string | null {
  const m = (rawConfig as { mha2mla?: { qk_tensor_path?: unknown } } | null)?.mha2mla;
  const p = m?.qk_tensor_path;
  return typeof p === "string" && p.length > 0 ? p : null;
}

/**
 * Where to look for the rank file, in order. The release resolves `qk_tensor_path` from the working directory of the
 * training run (e.g. `mkl/qwen2_5_vl/qwen2_5_vl-ranks.pth`); a published folder carries it beside config.json either
 * under that relative path or by its file name alone.
 */
export function rankFileCandidates(qkTensorPath: string): string[] {
  const clean = qkTensorPath.replace(/\\/g, "/").replace(/^\.\//, "");
  const base = clean.slice(clean.lastIndexOf("/") + 1);
  return [...new Set([clean, base])];
}

/**
 * Checks a rank tensor against the model (layers, n_kv, head_dim, rope_dim) and derives the kept pairs. Every failure
 * is `rank_file_mismatch` naming `label` (the file): another model's rank file, a non-permutation, a wrong dtype.
 */
export function keptPairsFromRankTensor(
  t: PthTensor,
  geometry: { layers: number; kvHeads: number; headDim: number; ropeDims: number },
  label: string,
): ReleasedRanks {
  const { layers: L, kvHeads: H, headDim: dh, ropeDims: r } = geometry;
  const half = dh / 2;
  const mismatch = (why: string): CheckpointError => new CheckpointError("rank_file_mismatch", `${label}: ${why}`);
  if (t.data instanceof BigInt64Array || t.dtype.startsWith("float") || t.dtype === "bfloat16" || t.dtype === "bool") {
    throw mismatch(`rank tensor has dtype ${t.dtype}; the release stores integer ranks (uint8)`);
  }
  const width = t.shape[2];
  if (t.shape.length !== 3 || t.shape[0] !== L || t.shape[1] !== H || (width !== dh && width !== half)) {
    throw mismatch(`rank tensor has shape [${t.shape.join(", ")}]; this model needs [${L}, ${H}, ${dh}] (layers, KV heads, head_dim) — a rank file of another model?`);
  }
  if (r % 2 !== 0 || r > dh) throw mismatch(`rope_dim_for_mla ${r} does not fit head_dim ${dh}`);
  const data = t.data as ArrayLike<number>;
  const ranks = new Uint8Array(data.length);
  const keptPairs: number[][][] = [];
  for (let l = 0; l < L; l++) {
    const layer: number[][] = [];
    for (let g = 0; g < H; g++) {
      const base = (l * H + g) * width;
      const seen = new Uint8Array(half);
      for (let i = 0; i < half; i++) {
        const v = data[base + i];
        if (!Number.isInteger(v) || v < 0 || v >= half || seen[v]) throw mismatch(`layer ${l} KV head ${g}: ranks are not a permutation of 0…${half - 1}`);
        seen[v] = 1;
        if (width === dh && data[base + half + i] !== v) throw mismatch(`layer ${l} KV head ${g}: the two halves of the rank row differ at dim ${i}`);
      }
      for (let i = 0; i < width; i++) ranks[base + i] = data[base + i];
      layer.push(keptPairsOfRanks(data, base, half, r));
    }
    keptPairs.push(layer);
  }
  return { path: label, ranks, shape: [...t.shape], keptPairs };
}

/** The kept pairs from a rank file's bytes (`label`: its path, for messages), checked against config.json. */
export function releasedRanksFromBytes(rawConfig: unknown, bytes: Uint8Array, label: string): ReleasedRanks {
  const config = parseModelConfig(rawConfig);
  const info = parseMlaConfig(rawConfig);
  const t = readPthTensor(bytes, label);
  return keptPairsFromRankTensor(t, { layers: config.numLayers, kvHeads: config.numKvHeads, headDim: config.headDim, ropeDims: info.ropeDims }, label);
}

/**
 * The kept pairs of a released checkpoint: resolves `qk_tensor_path` relative to the checkpoint folder through `read`,
 * reads the `.pth` (checkpoint/pth.ts: no pickle is executed) and checks it against config.json.
 * Errors: `bad_layout` (no qk_tensor_path), `io` (no file at any candidate path), `rank_file_mismatch`, and the
 * reader's PthError for a malformed or hostile archive.
 */
export async function resolveReleasedRanks(rawConfig: unknown, read: CheckpointFileReader, folderLabel = "checkpoint"): Promise<ReleasedRanks> {
  parseMlaConfig(rawConfig);
  const path = releasedRankPath(rawConfig);
  if (path === null) {
    throw new CheckpointError("bad_layout", `${folderLabel}: released MHA2MLA layout (no rope_pairs) but config.json's mha2mla.qk_tensor_path names no rank file`);
  }
  const tried = rankFileCandidates(path);
  for (const rel of tried) {
    const bytes = await read(rel);
    if (bytes === null) continue;
    return releasedRanksFromBytes(rawConfig, bytes, `${folderLabel}/${rel}`);
  }
  throw new CheckpointError("io", `${folderLabel}: rank file of mha2mla.qk_tensor_path "${path}" not found (looked for ${tried.map((t) => `${folderLabel}/${t}`).join(", ")})`);
}

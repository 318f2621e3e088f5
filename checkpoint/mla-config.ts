// The `mha2mla` dict of a converted checkpoint's config.json (docs/method.md §10.2), plus mla-edge's own `mla_edge` dict
// that records where the kept RoPE pairs live (in the checkpoint, not in a side rank file).

import { CheckpointError } from "./errors.ts";

/** Fields of the released `mha2mla` dict that loading needs (the rest is carried through untouched). */
export interface MlaConfigInfo {
  /** r: rope dims kept per KV head (`rope_dim_for_mla`). */
  readonly ropeDims: number;
  /** d_kv: latent width per KV head (`low_rank`). */
  readonly dKv: number;
  readonly partialRopeVersion: string;
  readonly svdInitMethod: string;
  /** From `mla_edge.latent_spaces`; null for a released checkpoint (decided by which kv_proj tensors exist). */
  readonly latentSpaces: 1 | 2 | null;
  /** True when the kept pairs are stored as `self_attn.rope_pairs` tensors (our layout). */
  readonly ropePairsInCheckpoint: boolean;
}

export const MLA_EDGE_LAYOUT_VERSION = 1;

/** A converted model's config.json: the base config with `mha2mla` and `mla_edge` dicts added (existing ones replaced). */
export function mlaConfigJson(
  base: Readonly<Record<string, unknown>>,
  info: { ropeDims: number; dKv: number; partialRopeVersion: string; svdInitMethod: string; latentSpaces: 1 | 2 },
): Record<string, unknown> {
  return {
    ...base,
    mha2mla: {
      partial_rope_version: info.partialRopeVersion,
      rope_dim_for_mla: info.ropeDims,
      uniform_start_point: 0,
      qk_tensor_path: null,
      svd_init_method: info.svdInitMethod,
      low_rank: info.dKv,
      is_gqa2mha2mla: false,
    },
    mla_edge: {
      layout_version: MLA_EDGE_LAYOUT_VERSION,
      rope_pairs: "in_checkpoint",
      latent_spaces: info.latentSpaces,
    },
  };
}

/** Reads the `mha2mla` dict (and `mla_edge` when present). */
export function parseMlaConfig(raw: unknown, label = "config.json"): MlaConfigInfo {
  const top = raw as Record<string, unknown> | null;
  const m = top?.mha2mla as Record<string, unknown> | undefined;
  if (m === undefined || m === null || typeof m !== "object") {
    throw new CheckpointError("bad_layout", `${label}: no mha2mla dict; this is not an MLA-converted checkpoint`);
  }
  const ropeDims = m.rope_dim_for_mla;
  const dKv = m.low_rank;
  if (!Number.isSafeInteger(ropeDims) || (ropeDims as number) < 0 || (ropeDims as number) % 2 !== 0) {
    throw new CheckpointError("bad_layout", `${label}: mha2mla.rope_dim_for_mla must be an even integer, got ${JSON.stringify(ropeDims)}`);
  }
  if (!Number.isSafeInteger(dKv) || (dKv as number) < 1) {
    throw new CheckpointError("bad_layout", `${label}: mha2mla.low_rank must be a positive integer (stage-1 checkpoints have no latent), got ${JSON.stringify(dKv)}`);
  }
  const edge = top?.mla_edge as Record<string, unknown> | undefined;
  let latentSpaces: 1 | 2 | null = null;
  let inCheckpoint = false;
  if (edge !== undefined && edge !== null) {
    if (edge.layout_version !== MLA_EDGE_LAYOUT_VERSION) {
      throw new CheckpointError("bad_layout", `${label}: mla_edge.layout_version ${JSON.stringify(edge.layout_version)} is not ${MLA_EDGE_LAYOUT_VERSION}`);
    }
    if (edge.latent_spaces !== 1 && edge.latent_spaces !== 2) {
      throw new CheckpointError("bad_layout", `${label}: mla_edge.latent_spaces must be 1 or 2`);
    }
    latentSpaces = edge.latent_spaces;
    inCheckpoint = edge.rope_pairs === "in_checkpoint";
  }
  return {
    ropeDims: ropeDims as number,
    dKv: dKv as number,
    partialRopeVersion: String(m.partial_rope_version ?? "unknown"),
    svdInitMethod: String(m.svd_init_method ?? "unknown"),
    latentSpaces,
    ropePairsInCheckpoint: inCheckpoint,
  };
}

// Loads a model folder for evaluation: an original HF checkpoint (GQA) or an mla-edge MLA checkpoint (config.json has
// a `mha2mla` dict), plus the fixture-style vision tower (`visual.safetensors`) and word tokenizer (`tokenizer.json`).

import { readFile, stat } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { isReleasedMha2mla, releasedRanksFromBytes, resolveReleasedRanks, type ReleasedRanks } from "../../checkpoint/families/mha2mla_released.ts";
import { CheckpointError } from "../../checkpoint/errors.ts";
import type { TensorSource } from "../../checkpoint/tensor-source.ts";
import type { TextModelConfig } from "../../checkpoint/config.ts";
import { openCheckpointDir, openSafetensorsFile } from "../../checkpoint/io.node.ts";
import { loadMlaModel } from "../../runtime/mla/checkpoint.ts";
import type { MlaModelWeights } from "../../runtime/mla/weights.ts";
import type { ImageGrid } from "../../runtime/rope-index.ts";
import { WordTokenizer } from "../../runtime/inputs/tokenizer.ts";
import { loadVisionTower, type VisionTowerWeights } from "../../runtime/vision/toy-tower.ts";
import { loadGqaModel, type GqaModelWeights } from "../../runtime/weights.ts";
import { EvalError } from "./errors.ts";

/** The decoder of a loaded folder: the original GQA model or its MLA conversion. */
export type LoadedDecoder = { readonly kind: "original"; readonly model: GqaModelWeights } | { readonly kind: "mla"; readonly model: MlaModelWeights };

export interface LoadedVlm {
  readonly dir: string;
  readonly config: TextModelConfig;
  readonly rawConfig: Record<string, unknown>;
  readonly decoder: LoadedDecoder;
  readonly vision: VisionTowerWeights;
  readonly tokenizer: WordTokenizer;
  readonly imageGrid: ImageGrid;
}

export const VISION_FILE = "visual.safetensors";
export const TOKENIZER_FILE = "tokenizer.json";

async function requireFile(dir: string, name: string, why: string): Promise<string> {
  const p = join(dir, name);
  const ok = await stat(p).then((s) => s.isFile(), () => false);
  if (!ok) throw new EvalError("bad_model_dir", `${dir} has no ${name} (${why})`);
  return p;
}

/** Vision tower, tokenizer and image grid of a fixture-style folder (shared by the original and converted forms). */
export async function loadVisionSide(dir: string, rawConfig: Record<string, unknown>): Promise<Pick<LoadedVlm, "vision" | "tokenizer" | "imageGrid">> {
  const visPath = await requireFile(dir, VISION_FILE, "the vision tower that embeds the images");
  const tokPath = await requireFile(dir, TOKENIZER_FILE, "the word-level tokenizer");
  const vis = await openSafetensorsFile(visPath);
  try {
    const vision = await loadVisionTower(vis);
    const tokenizer = WordTokenizer.fromJson(JSON.parse(await readFile(tokPath, "utf8")));
    const vc = rawConfig.vision_config as { patch_cells?: [number, number] } | undefined;
    const [rows, cols] = vc?.patch_cells ?? [4, 4];
    return { vision, tokenizer, imageGrid: { rows, cols } };
  } finally {
    await vis.close();
  }
}

export async function readRankFile(path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (cause) {
    throw new CheckpointError("io", `cannot read the rank file ${path}: ${(cause as Error).message}`, { cause });
  }
}

/** A file relative to a checkpoint folder (absolute paths as they are), or null when there is none. */
export function dirFileReader(dir: string): (relativePath: string) => Promise<Uint8Array | null> {
  return async (rel) => {
    const p = isAbsolute(rel) ? rel : join(dir, rel);
    const ok = await stat(p).then((s) => s.isFile(), () => false);
    return ok ? new Uint8Array(await readFile(p)) : null;
  };
}

/**
 * The rank file of a released MHA2MLA checkpoint (config `mha2mla.qk_tensor_path`, resolved relative to `dir`), or
 * null for mla-edge's own layout, whose kept pairs are `rope_pairs` tensors inside the checkpoint.
 */
export async function releasedRanksOf(dir: string, rawConfig: unknown, source: TensorSource): Promise<ReleasedRanks | null> {
  if (!isReleasedMha2mla(rawConfig) || source.names().some((n) => n.endsWith("self_attn.rope_pairs"))) return null;
  return resolveReleasedRanks(rawConfig, dirFileReader(dir), dir);
}

export interface LoadVlmOptions {
  /**
   * A released checkpoint's `.pth` rank file, instead of `mha2mla.qk_tensor_path` resolved in `dir` (for a folder
   * downloaded without it). On mla-edge's own layout it must agree with the `rope_pairs` tensors.
   */
  readonly rankFile?: string;
}

/** Opens `dir` as an original or an MLA checkpoint (ours, or a released one with its rank file), by its config.json. */
export async function loadVlmDir(dir: string, options: LoadVlmOptions = {}): Promise<LoadedVlm> {
  const ckpt = await openCheckpointDir(dir);
  try {
    const isMla = ckpt.rawConfig.mha2mla !== undefined && ckpt.rawConfig.mha2mla !== null;
    if (options.rankFile !== undefined && !isMla) throw new EvalError("bad_options", `a rank file applies to an MLA checkpoint; ${dir} holds the original model`);
    let decoder: LoadedDecoder;
    if (isMla) {
      const released =
        options.rankFile === undefined
          ? await releasedRanksOf(dir, ckpt.rawConfig, ckpt.source)
          : releasedRanksFromBytes(ckpt.rawConfig, await readRankFile(options.rankFile), options.rankFile);
      decoder = { kind: "mla", model: await loadMlaModel(ckpt.source, ckpt.rawConfig, released === null ? {} : { ranks: released.ranks }) };
    } else decoder = { kind: "original", model: await loadGqaModel(ckpt.source, ckpt.config) };
    return { dir, config: ckpt.config, rawConfig: ckpt.rawConfig, decoder, ...(await loadVisionSide(dir, ckpt.rawConfig)) };
  } finally {
    await ckpt.source.close();
  }
}

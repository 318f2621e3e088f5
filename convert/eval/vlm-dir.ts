// Loads a model folder for evaluation: an original HF checkpoint (GQA) or an mla-edge MLA checkpoint (config.json has
// a `mha2mla` dict), plus the fixture-style vision tower (`visual.safetensors`) and word tokenizer (`tokenizer.json`).

import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
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

/** Opens `dir` as an original or an MLA checkpoint, decided by the `mha2mla` dict in its config.json. */
export async function loadVlmDir(dir: string): Promise<LoadedVlm> {
  const ckpt = await openCheckpointDir(dir);
  try {
    const isMla = ckpt.rawConfig.mha2mla !== undefined && ckpt.rawConfig.mha2mla !== null;
    const decoder: LoadedDecoder = isMla
      ? { kind: "mla", model: await loadMlaModel(ckpt.source, ckpt.rawConfig) }
      : { kind: "original", model: await loadGqaModel(ckpt.source, ckpt.config) };
    return { dir, config: ckpt.config, rawConfig: ckpt.rawConfig, decoder, ...(await loadVisionSide(dir, ckpt.rawConfig)) };
  } finally {
    await ckpt.source.close();
  }
}

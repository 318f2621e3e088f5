// Loader for the tiny-qwen-vl fixture folder (Node): decoder, vision tower, tokenizer and the sequence format.

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { openSafetensorsFile, readModelConfig } from "../checkpoint/io.node.ts";
import type { TextModelConfig } from "../checkpoint/config.ts";
import { WordTokenizer } from "./inputs/tokenizer.ts";
import { loadVisionTower, type VisionTowerWeights } from "./vision/toy-tower.ts";
import { loadGqaModel, type GqaModelWeights } from "./weights.ts";
import type { ImageGrid } from "./rope-index.ts";

export interface TinyFixture {
  readonly config: TextModelConfig;
  readonly rawConfig: Record<string, unknown>;
  readonly model: GqaModelWeights;
  readonly vision: VisionTowerWeights;
  readonly tokenizer: WordTokenizer;
  /** 4×4: the fixture's 16 image tokens per image. */
  readonly imageGrid: ImageGrid;
}

export async function loadTinyFixture(dir: string): Promise<TinyFixture> {
  const { config, raw } = await readModelConfig(join(dir, "config.json"));
  const lm = await openSafetensorsFile(join(dir, "model.safetensors"));
  const vis = await openSafetensorsFile(join(dir, "visual.safetensors"));
  try {
    const model = await loadGqaModel(lm, config);
    const vision = await loadVisionTower(vis);
    const tokenizer = WordTokenizer.fromJson(JSON.parse(await readFile(join(dir, "tokenizer.json"), "utf8")));
    const vc = raw.vision_config as { patch_cells?: [number, number] } | undefined;
    const [rows, cols] = vc?.patch_cells ?? [4, 4];
    return { config, rawConfig: raw, model, vision, tokenizer, imageGrid: { rows, cols } };
  } finally {
    await lm.close();
    await vis.close();
  }
}

/** `<bos> <|vision_start|> <|image_pad|>×cells <|vision_end|>`: the prefix of every fixture sequence. */
export function imagePrefixTokens(tok: WordTokenizer, cells: number): number[] {
  return [tok.id("<bos>"), tok.id("<|vision_start|>"), ...new Array<number>(cells).fill(tok.id("<|image_pad|>")), tok.id("<|vision_end|>")];
}

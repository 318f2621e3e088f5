// A Qwen2.5-VL model on the CPU reference path: the family's config, the GQA decoder (or, via the caller, an MLA
// one) and the vision tower, loaded tensor by tensor from any lazy TensorSource (a sharded bf16 checkpoint keeps only
// headers and file handles open until a tensor is read). A chat turn appends token ids with the turn's images: the
// tower embeds the images, M-RoPE positions follow get_rope_index from the session's next position (its rope delta),
// so any number of images per turn and any number of turns give the positions of the whole conversation run at once.

import { parseQwen25VLConfig, qwen25DecoderNaming, qwen25VisionPrefix, type Qwen25VLConfig } from "../checkpoint/families/qwen2_5_vl.ts";
import type { TensorSource } from "../checkpoint/tensor-source.ts";
import { createGqaSession, createMlaSession } from "./create-session.ts";
import type { AttentionBackend } from "./attention-backend.ts";
import { loadMlaModel } from "./mla/checkpoint.ts";
import type { MlaReadPath } from "./mla/attention.ts";
import type { MlaModelWeights } from "./mla/weights.ts";
import type { AppendOptions, DecoderSession } from "./decoder-session.ts";
import type { ImageGrid } from "./rope-index.ts";
import { loadGqaModel, type GqaModelWeights } from "./weights.ts";
import { loadQwen25VisionWeights, qwen25VisionForward, type VisionGrid, type VisionWeights } from "./vision/qwen2_5_vl-vision.ts";
import { MlaError } from "../format/errors.ts";

export class Qwen25VLError extends MlaError<"bad_image" | "image_count"> {
  override readonly name = "Qwen25VLError";
  constructor(
    code: "bad_image" | "image_count",
    message: string,
  ) {
    super(code, message);
  }
}

/** One preprocessed image: pixel_values [patches × 3·T·P·P] and its image_grid_thw. */
export interface VisionInput {
  readonly pixelValues: Float32Array;
  readonly grid: VisionGrid;
}

/** The decoder of a loaded model: the original GQA one or its MLA conversion (config.json has `mha2mla`). */
export type Qwen25VLDecoder = { readonly kind: "original"; readonly model: GqaModelWeights } | { readonly kind: "mla"; readonly model: MlaModelWeights };

export interface Qwen25VLModel {
  readonly config: Qwen25VLConfig;
  readonly decoder: Qwen25VLDecoder;
  readonly vision: VisionWeights;
  readonly visionPrefix: string;
}

/**
 * Reads the decoder and the vision tower from `source` (config.json's object as `rawConfig`), tensor by tensor. An MLA
 * checkpoint (config.json with `mha2mla`: mla-edge's layout, or a released one with `options.ranks` from its rank file)
 * loads its converted decoder; the tower is the same.
 */
export async function loadQwen25VL(source: TensorSource, rawConfig: unknown, label = "config.json", options: { readonly ranks?: ArrayLike<number> } = {}): Promise<Qwen25VLModel> {
  const config = parseQwen25VLConfig(rawConfig, label);
  const names = source.names();
  const naming = qwen25DecoderNaming(names);
  const isMla = (rawConfig as Record<string, unknown>).mha2mla != null;
  // a released MHA2MLA checkpoint's kept pairs come from its rank file (`options.ranks`), mla-edge's are in the weights
  const decoder: Qwen25VLDecoder = isMla
    ? { kind: "mla", model: await loadMlaModel(source, rawConfig, { naming, ...(options.ranks !== undefined ? { ranks: options.ranks } : {}) }) }
    : { kind: "original", model: await loadGqaModel(source, config.text, naming) };
  const visionPrefix = qwen25VisionPrefix(names);
  const vision = await loadQwen25VisionWeights(source, config.vision, visionPrefix);
  return { config, decoder, vision, visionPrefix };
}

/** Merged embeddings of a turn's images ([tokens × hidden], prompt order) from one tower run over all of them. */
export function embedImages(model: Pick<Qwen25VLModel, "config" | "vision" | "visionPrefix">, images: readonly VisionInput[]): Float32Array {
  if (images.length === 0) return new Float32Array(0);
  const total = images.reduce((s, i) => s + i.pixelValues.length, 0);
  const pixels = new Float32Array(total);
  let o = 0;
  for (const i of images) {
    pixels.set(i.pixelValues, o);
    o += i.pixelValues.length;
  }
  return qwen25VisionForward(model.config.vision, model.vision, pixels, images.map((i) => i.grid), model.visionPrefix);
}

/** The decoder's merged-token grid of an image (get_rope_index's llm_grid_h × llm_grid_w; one temporal step). */
export function llmGrid(grid: VisionGrid, spatialMergeSize: number): ImageGrid {
  if (grid.t !== 1) throw new Qwen25VLError("bad_image", `an image has grid_t 1, got ${grid.t} (video input is not supported)`);
  return { rows: grid.h / spatialMergeSize, cols: grid.w / spatialMergeSize };
}

/** Counts the runs of image-pad tokens in `ids` (one per image). */
export function countImages(ids: ArrayLike<number>, imagePad: number): number {
  let n = 0;
  for (let i = 0; i < ids.length; i++) if (ids[i] === imagePad && (i === 0 || ids[i - 1] !== imagePad)) n++;
  return n;
}

/**
 * Appends a turn's tokens with its images to `session`: runs the tower, checks one image per pad run, and passes the
 * embeddings and grids to the decoder. Returns the decoder's logits (`opts.logits`, default the last row).
 */
export function appendTurn(
  model: Pick<Qwen25VLModel, "config" | "vision" | "visionPrefix">,
  session: DecoderSession,
  ids: ArrayLike<number>,
  images: readonly VisionInput[] = [],
  opts: Omit<AppendOptions, "imageEmbeds" | "imageGrids"> = {},
): Float32Array {
  const { text, vision } = model.config;
  const runs = countImages(ids, text.tokens.imagePad ?? -1);
  if (runs !== images.length) {
    throw new Qwen25VLError("image_count", `the turn's tokens hold ${runs} image(s) but ${images.length} were given`);
  }
  if (images.length === 0) return session.append(ids, opts);
  const imageEmbeds = embedImages(model, images);
  return session.append(ids, { ...opts, imageEmbeds, imageGrids: images.map((i) => llmGrid(i.grid, vision.spatialMergeSize)) });
}

/** A fresh session over the model's decoder (MLA: the absorbed read path unless `path` says otherwise). */
export function createQwen25VLSession(model: Pick<Qwen25VLModel, "decoder">, path: MlaReadPath = "absorbed"): { session: DecoderSession; backend: AttentionBackend } {
  return model.decoder.kind === "original" ? createGqaSession(model.decoder.model) : createMlaSession(model.decoder.model, path);
}

// A loaded chat model: the MLA decoder weights, its cache spec, the chat template, the vision encoder and the codec
// that seals the cache. Browser-safe: files come in as bytes (fetch) or parsed JSON, never from node:fs.

import { isReleasedMha2mla, resolveReleasedRanks, type CheckpointFileReader } from "../checkpoint/families/mha2mla_released.ts";
import { bufferByteSource } from "../checkpoint/byte-source.ts";
import { SafetensorsFile } from "../checkpoint/safetensors-file.ts";
import type { CacheSpec } from "../format/cache-spec.ts";
import type { Codec } from "../format/codec/types.ts";
import type { MlaBackend } from "../kernels/backend.ts";
import type { ModelRef } from "../format/wire/messages.ts";
import { loadMlaModel } from "./mla/checkpoint.ts";
import { mlaCacheSpec, type MlaModelWeights } from "./mla/weights.ts";
import type { ImageGrid } from "./rope-index.ts";
import { WordTokenizer } from "./inputs/tokenizer.ts";
import { WordChatTemplate } from "./inputs/chat-template.ts";
import { RuntimeError } from "./errors.ts";
import type { PatchGeometry } from "./inputs/image.ts";
import type { VisionEncoder } from "./vision/vision-encoder.ts";

export interface ChatModel {
  readonly ref: ModelRef;
  readonly weights: MlaModelWeights;
  readonly spec: CacheSpec;
  readonly template: WordChatTemplate;
  readonly vision: VisionEncoder;
  /** LLM tokens of one image (merged-patch grid). */
  readonly imageGrid: ImageGrid;
  /** Pixel layout the vision tower takes. */
  readonly patches: PatchGeometry;
  readonly codec: Codec;
  /**
   * The attention kernels sessions decode with (WebGPU, or their CPU fallback); null: the CPU reference decoder.
   * Shared by every session of the model, so pipelines are compiled once.
   */
  readonly kernels: MlaBackend | null;
}

export interface ChatModelParts {
  readonly ref: ModelRef;
  readonly weights: MlaModelWeights;
  readonly tokenizer: WordTokenizer;
  readonly vision: VisionEncoder;
  readonly codec: Codec;
  /** config.json: `vision_config.patch_cells` and `cell_pixels` (default 4×4 cells of 8 px). */
  readonly rawConfig: unknown;
  /** Default null (CPU reference decoder); see `createDecoderKernels`. */
  readonly kernels?: MlaBackend | null;
}

/** Assembles a ChatModel from parts already in memory (e.g. an MLA model built in a test). */
export function createChatModel(parts: ChatModelParts): ChatModel {
  const vc = (parts.rawConfig as { vision_config?: { patch_cells?: [number, number]; cell_pixels?: number } } | null)?.vision_config;
  const [rows, cols] = vc?.patch_cells ?? [4, 4];
  const cellPixels = vc?.cell_pixels ?? 8;
  if (parts.weights.config.tokens.imagePad === null) throw new RuntimeError("bad_model", "config.json has no image token id");
  return {
    ref: parts.ref,
    weights: parts.weights,
    spec: mlaCacheSpec(parts.weights),
    template: WordChatTemplate.forFixture(parts.tokenizer, rows * cols),
    vision: parts.vision,
    imageGrid: { rows, cols },
    patches: { rows, cols, cellPixels },
    codec: parts.codec,
    kernels: parts.kernels ?? null,
  };
}

/** The same model decoding with other kernels (null: the CPU reference decoder). */
export function withDecoderKernels(model: ChatModel, kernels: MlaBackend | null): ChatModel {
  return { ...model, kernels };
}

export interface ChatModelFiles {
  /** config.json of the converted checkpoint (with its `mha2mla` / `mla_edge` dicts), parsed. */
  readonly config: unknown;
  /** model.safetensors of the converted checkpoint. */
  readonly weights: Uint8Array | ArrayBuffer;
  /** tokenizer.json, parsed. */
  readonly tokenizer: unknown;
  readonly vision: VisionEncoder;
  readonly codec: Codec;
  /** Default: id from config `_name_or_path` or "tiny-qwen-vl", conversion = the mha2mla dict. */
  readonly ref?: ModelRef;
  /** Default null (CPU reference decoder); see `createDecoderKernels`. */
  readonly kernels?: MlaBackend | null;
  /**
   * Reads a file relative to the checkpoint folder (e.g. `fetch(new URL(path, base))`), null when absent. Needed only
   * for a released MHA2MLA checkpoint (`cnxup/*-MLA-stage2-*`), whose kept RoPE pairs are in the `.pth` rank file
   * named by `mha2mla.qk_tensor_path`; mla-edge's own layout carries them inside the weights.
   */
  readonly readFile?: CheckpointFileReader;
}

/** Loads a converted (MLA) checkpoint from bytes: mla-edge's layout, or a released one with its rank file. */
export async function loadChatModel(files: ChatModelFiles): Promise<ChatModel> {
  const src = await SafetensorsFile.open(bufferByteSource(files.weights, "model.safetensors"));
  let weights: MlaModelWeights;
  try {
    let ranks: Uint8Array | undefined;
    if (isReleasedMha2mla(files.config) && !src.names().some((n) => n.endsWith("self_attn.rope_pairs"))) {
      if (files.readFile === undefined) {
        throw new Error("released MHA2MLA checkpoint: its rank file (config mha2mla.qk_tensor_path) is needed; pass readFile");
      }
      ranks = (await resolveReleasedRanks(files.config, files.readFile, "model")).ranks;
    }
    weights = await loadMlaModel(src, files.config, ranks === undefined ? {} : { ranks });
  } catch (cause) {
    throw new RuntimeError("bad_model", `cannot load the MLA checkpoint: ${(cause as Error).message}`, { cause });
  }
  const raw = files.config as { _name_or_path?: string; mha2mla?: unknown };
  const ref = files.ref ?? { id: raw._name_or_path ?? "tiny-qwen-vl", conversion: JSON.stringify(raw.mha2mla ?? null) };
  return createChatModel({ ref, weights, tokenizer: WordTokenizer.fromJson(files.tokenizer), vision: files.vision, codec: files.codec, rawConfig: files.config, kernels: files.kernels });
}

// A loaded chat model: the MLA decoder weights, its cache spec, the model's own input pipeline (tokenizer.json, chat
// template, image processor: runtime/inputs), its vision tower and the codec that seals the cache. The same path serves
// a real Qwen2.5-VL checkpoint (sharded bf16, read lazily, with the checkpoint's own vision transformer) and the tiny
// fixture (toy tower). Browser-safe: files come in as bytes / a TensorSource (fetch) or parsed JSON, never from node:fs.

import type { ModelEngine } from "./gpu/engine.ts";
import { isReleasedMha2mla, resolveReleasedRanks, type CheckpointFileReader } from "../checkpoint/families/mha2mla_released.ts";
import { parseQwen25VLConfig, qwen25DecoderNaming, qwen25VisionPrefix } from "../checkpoint/families/qwen2_5_vl.ts";
import { bufferByteSource } from "../checkpoint/byte-source.ts";
import { SafetensorsFile } from "../checkpoint/safetensors-file.ts";
import type { TensorSource } from "../checkpoint/tensor-source.ts";
import type { CacheSpec } from "../format/cache-spec.ts";
import type { Codec } from "../format/codec/types.ts";
import type { MlaBackend } from "../kernels/backend.ts";
import type { ModelRef } from "../format/wire/messages.ts";
import { loadMlaModel } from "./mla/checkpoint.ts";
import { buildMlaModel, fullRankFactoriser } from "./mla/build.ts";
import { allPairsKept } from "./mla/kept-pairs.ts";
import { mlaCacheSpec, type MlaModelShape, type MlaModelWeights } from "./mla/weights.ts";
import type { TextModelConfig } from "../checkpoint/config.ts";
import type { ImageGrid } from "./rope-index.ts";
import { WordTokenizer } from "./inputs/tokenizer.ts";
import { ChatInputProcessor } from "./inputs/processor.ts";
import type { ProcessedImage } from "./inputs/image-processor.ts";
import { RuntimeError } from "./errors.ts";
import type { VisionEncoder } from "./vision/vision-encoder.ts";
import { loadGqaModel } from "./weights.ts";
import { embedImages, llmGrid, type Qwen25VLModel } from "./qwen2_5_vl-model.ts";
import { loadQwen25VisionWeights } from "./vision/qwen2_5_vl-vision.ts";

/** A model's vision tower as a chat session uses it: processed images in, merged embeddings out. */
export interface ChatVision {
  /** "qwen2_5_vl-f32", "ort-webgpu", "ort-wasm", "typescript". */
  readonly kind: string;
  /** Images encoded so far (tests prove a restored session never re-encodes one). */
  readonly calls: number;
  /** Embeddings [Σ image tokens × hidden] of the images, in order (one tower run). */
  encode(images: readonly ProcessedImage[]): Promise<Float32Array>;
  /** The decoder's token grid of an image (M-RoPE positions). */
  grid(image: ProcessedImage): ImageGrid;
}

/** What a chat session needs of the chat template beyond the processor: see ChatInputProcessor.chatFormat. */
export interface ChatFormat {
  /** Rendered after an assistant answer (Qwen: `<|im_end|>` `\n`; the tiny fixture: `<end>`); fed after each answer. */
  readonly closingIds: readonly number[];
  /** Generation stops after one of these. */
  readonly stopIds: readonly number[];
  /** Never generated: the vision tokens, and bos/pad when they are not stop tokens. */
  readonly bannedIds: readonly number[];
}

export interface ChatModel {
  readonly ref: ModelRef;
  /** The language model's config (also `shape.config`). */
  readonly config: TextModelConfig;
  /** Its MLA geometry: config, d_kv, rope dims, latent spaces. */
  readonly shape: MlaModelShape;
  /**
   * Host weights (f32): the CPU reference decoder and the attention kernels run on them. Null for a model that lives
   * only on the GPU (`loadBundleChatModel(url, { gpu, hostWeights: false })`): its sessions run on `engine` or fail
   * with `bad_model`.
   */
  readonly weights: MlaModelWeights | null;
  readonly spec: CacheSpec;
  /** tokenizer + chat template + image processor (runtime/inputs), the one path `mla-edge generate` uses too. */
  readonly processor: ChatInputProcessor;
  readonly format: ChatFormat;
  readonly vision: ChatVision;
  /** A toy tower's fixed LLM grid of every image (the tiny fixture: 4×4); absent for a real model. */
  readonly imageGrid?: ImageGrid;
  readonly codec: Codec;
  /**
   * The attention kernels sessions decode with (WebGPU, or their CPU fallback); null: the CPU reference decoder.
   * Shared by every session of the model, so pipelines are compiled once.
   */
  readonly kernels: MlaBackend | null;
  /**
   * The whole model on WebGPU (runtime/gpu/engine.ts: every op, one submission per token, sampling on the GPU); when
   * present, sessions whose codec it supports decode on it and `kernels` serves the others. See `withGpuEngine`.
   */
  readonly engine?: ModelEngine | null;
}

/** A chat model with its host weights (what `loadChatModel` returns): every decoder can run it. */
export type HostChatModel = ChatModel & { readonly weights: MlaModelWeights };

/** The chat template of a word-level model that ships none (the tiny fixture's sequence format; see its README). */
export const WORD_LEVEL_CHAT_TEMPLATE =
  "{{ bos_token }}{% if add_generation_prompt and messages[-1]['role'] != 'user' %}{{ raise_exception('the last message of a turn must be the user\\'s') }}{% endif %}{% for message in messages %}{% if message['role'] != 'user' and message['role'] != 'assistant' %}{{ raise_exception('role ' ~ message['role'] ~ ' is not supported (user, assistant)') }}{% endif %}{% if message['content'] is string %}{{ ' ' ~ (message['content'] | trim) }}{% else %}{% for part in message['content'] %}{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}{% if message['role'] != 'user' %}{{ raise_exception('only user messages may hold images') }}{% endif %} <|vision_start|> <|image_pad|> <|vision_end|>{% elif part['type'] == 'text' %}{{ ' ' ~ (part['text'] | trim) }}{% endif %}{% endfor %}{% endif %}{% if message['role'] == 'assistant' %} {{ eos_token }}{% endif %}{% endfor %}";

/**
 * tokenizer.json + tokenizer_config.json (Hugging Face) of a word-level vocabulary in the tiny fixture's format
 * (`<pad>` `<bos>` vision tokens `<end>` + words): what fixtures/tiny-qwen-vl ships, for a model given only a vocabulary.
 */
export function wordLevelTokenizerFiles(tokenizer: WordTokenizer): { tokenizer: Record<string, unknown>; tokenizerConfig: Record<string, unknown> } {
  const special = ["<pad>", "<bos>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<end>"].filter((w) => tokenizer.vocab.includes(w));
  const vocab: Record<string, number> = {};
  tokenizer.vocab.forEach((w, i) => (vocab[w] = i));
  return {
    tokenizer: {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: special.map((w) => ({ id: tokenizer.id(w), content: w, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
      normalizer: null,
      pre_tokenizer: { type: "WhitespaceSplit" },
      post_processor: null,
      decoder: null,
      model: { type: "WordLevel", vocab, unk_token: "<pad>" },
    },
    tokenizerConfig: { tokenizer_class: "PreTrainedTokenizerFast", bos_token: "<bos>", eos_token: "<end>", pad_token: "<pad>", unk_token: "<pad>", chat_template: WORD_LEVEL_CHAT_TEMPLATE },
  };
}

/** A toy tower (VisionEncoder: [images × cells × patchDim] in [0, 1]) behind the ChatVision interface. */
export function toyTowerVision(encoder: VisionEncoder): ChatVision {
  return {
    get kind() {
      return encoder.kind;
    },
    get calls() {
      return encoder.calls;
    },
    async encode(images) {
      const all = new Float32Array(images.reduce((a, p) => a + p.pixelValues.length, 0));
      let o = 0;
      for (const p of images) {
        all.set(p.pixelValues, o);
        o += p.pixelValues.length;
      }
      return encoder.encode(all, images.length);
    },
    grid: (image) => ({ rows: image.gridThw[1], cols: image.gridThw[2] }),
  };
}

/** The Qwen2.5-VL vision transformer (f32 CPU path) behind the ChatVision interface. */
export function qwen25Vision(model: Pick<Qwen25VLModel, "config" | "vision" | "visionPrefix">): ChatVision {
  let calls = 0;
  const merge = model.config.vision.spatialMergeSize;
  const grid = (image: ProcessedImage) => ({ t: image.gridThw[0], h: image.gridThw[1], w: image.gridThw[2] });
  return {
    kind: "qwen2_5_vl-f32",
    get calls() {
      return calls;
    },
    async encode(images) {
      calls += images.length;
      return embedImages(model, images.map((im) => ({ pixelValues: im.pixelValues, grid: grid(im) })));
    },
    grid: (image) => llmGrid(grid(image), merge),
  };
}

/** The session's chat format from the processor (closing ids, stop ids, banned ids). */
export function chatFormatOf(processor: ChatInputProcessor): ChatFormat {
  const { closingIds } = processor.chatFormat();
  const stopIds = [...processor.eosTokenIds];
  const t = processor.tokens;
  const tok = processor.tokenizer;
  const named = [tok.bosToken, tok.padToken].map((s) => (s === null ? undefined : tok.tokenToId(s))).filter((v): v is number => v !== undefined);
  const banned = [t.image, t.visionStart, t.visionEnd, t.video, ...named].filter((v): v is number => v !== null && !stopIds.includes(v));
  return { closingIds, stopIds, bannedIds: [...new Set(banned)] };
}

export interface ChatModelParts {
  readonly ref: ModelRef;
  /** Host weights; null with `shape` and `engine` for a model that lives only on the GPU. */
  readonly weights: MlaModelWeights | null;
  readonly shape?: MlaModelShape;
  readonly engine?: ModelEngine | null;
  /** The model's input pipeline; or, for a word-level model without one, its vocabulary (the tiny fixture's format). */
  readonly processor?: ChatInputProcessor;
  readonly tokenizer?: WordTokenizer;
  /** A toy tower (VisionEncoder) or a ChatVision. */
  readonly vision: VisionEncoder | ChatVision;
  readonly codec: Codec;
  /** config.json: `vision_config.patch_cells` / `cell_pixels` of a toy tower (default 4×4 cells of 8 px). */
  readonly rawConfig: unknown;
  /** Default null (CPU reference decoder); see `createDecoderKernels`. */
  readonly kernels?: MlaBackend | null;
}

function isChatVision(v: VisionEncoder | ChatVision): v is ChatVision {
  return typeof (v as ChatVision).grid === "function";
}

/** Assembles a ChatModel from parts already in memory (e.g. an MLA model built in a test). */
export function createChatModel(parts: ChatModelParts & { readonly weights: MlaModelWeights }): HostChatModel;
export function createChatModel(parts: ChatModelParts): ChatModel;
export function createChatModel(parts: ChatModelParts): ChatModel {
  const shape: MlaModelShape | undefined = parts.weights ?? parts.shape;
  if (shape === undefined) throw new RuntimeError("bad_model", "a chat model needs its host weights or, for a GPU-only model, its shape");
  if (parts.weights === null && (parts.engine ?? null) === null) throw new RuntimeError("bad_model", "a chat model without host weights needs the GPU engine");
  if (shape.config.tokens.imagePad === null) throw new RuntimeError("bad_model", "config.json has no image token id");
  let processor = parts.processor;
  if (processor === undefined) {
    if (parts.tokenizer === undefined) throw new RuntimeError("bad_model", "a chat model needs its input processor (or a word-level vocabulary)");
    const files = wordLevelTokenizerFiles(parts.tokenizer);
    processor = ChatInputProcessor.fromFiles({ config: parts.rawConfig, tokenizer: files.tokenizer, tokenizerConfig: files.tokenizerConfig });
  }
  const toy = !isChatVision(parts.vision);
  const vision = isChatVision(parts.vision) ? parts.vision : toyTowerVision(parts.vision);
  const vc = (parts.rawConfig as { vision_config?: { patch_cells?: [number, number] } } | null)?.vision_config;
  const [rows, cols] = vc?.patch_cells ?? [4, 4];
  return {
    ref: parts.ref,
    config: shape.config,
    shape: { config: shape.config, dKv: shape.dKv, ropeDims: shape.ropeDims, latentSpaces: shape.latentSpaces },
    weights: parts.weights,
    spec: mlaCacheSpec(shape),
    processor,
    format: chatFormatOf(processor),
    vision,
    ...(toy ? { imageGrid: { rows, cols } } : {}),
    codec: parts.codec,
    kernels: parts.kernels ?? null,
    ...(parts.engine ? { engine: parts.engine } : {}),
  };
}

/** The same model decoding with other kernels (null: the CPU reference decoder). */
export function withDecoderKernels<M extends ChatModel>(model: M, kernels: MlaBackend | null): M {
  return { ...model, kernels };
}

export interface ChatModelFiles {
  /** config.json (with its `mha2mla` / `mla_edge` dicts when converted), parsed. */
  readonly config: unknown;
  /** model.safetensors as bytes, or any TensorSource (e.g. a sharded checkpoint read lazily: checkpoint/sharded-source.ts). */
  readonly weights: Uint8Array | ArrayBuffer | TensorSource;
  /** tokenizer.json, parsed (a Hugging Face tokenizers file; or the older word-level `{type, vocab}`). */
  readonly tokenizer: unknown;
  /** tokenizer_config.json, chat_template.json, preprocessor_config.json, generation_config.json, parsed, when present. */
  readonly tokenizerConfig?: unknown;
  readonly chatTemplateJson?: unknown;
  readonly preprocessorConfig?: unknown;
  readonly generationConfig?: unknown;
  /**
   * A toy vision tower (the tiny fixture's ONNX or TypeScript tower). Absent: the checkpoint's own Qwen2.5-VL vision
   * transformer from its `visual.*` tensors.
   */
  readonly vision?: VisionEncoder;
  readonly codec: Codec;
  /** Default: id from config `_name_or_path` (else model_type), conversion = the mha2mla dict. */
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

function isTensorSource(w: ChatModelFiles["weights"]): w is TensorSource {
  return typeof (w as TensorSource).readFloat32 === "function";
}

/**
 * Loads a checkpoint for chat sessions: a converted (MLA) one in mla-edge's layout or the released one (with its rank
 * file), or an original (GQA) Qwen2.5-VL checkpoint, which loads as its exact full-rank MLA form (every RoPE pair kept,
 * latent = the value rows: the edge stores latent caches). The input pipeline is the model's own files.
 */
export async function loadChatModel(files: ChatModelFiles): Promise<HostChatModel> {
  const src = isTensorSource(files.weights) ? files.weights : await SafetensorsFile.open(bufferByteSource(files.weights, "model.safetensors"));
  const raw = (files.config ?? {}) as { _name_or_path?: string; model_type?: string; mha2mla?: unknown };
  const toy = files.vision !== undefined;
  let weights: MlaModelWeights;
  let vision: ChatVision | VisionEncoder;
  try {
    const naming = toy ? undefined : qwen25DecoderNaming(src.names());
    if (raw.mha2mla !== undefined && raw.mha2mla !== null) {
      let ranks: Uint8Array | undefined;
      if (isReleasedMha2mla(files.config) && !src.names().some((n) => n.endsWith("self_attn.rope_pairs"))) {
        if (files.readFile === undefined) {
          throw new Error("released MHA2MLA checkpoint: its rank file (config mha2mla.qk_tensor_path) is needed; pass readFile");
        }
        ranks = (await resolveReleasedRanks(files.config, files.readFile, "model")).ranks;
      }
      weights = await loadMlaModel(src, files.config, { ...(naming ? { naming } : {}), ...(ranks === undefined ? {} : { ranks }) });
    } else {
      if (toy) throw new Error("config.json has no mha2mla dict: a toy-tower model must be a converted (MLA) checkpoint");
      const cfg = parseQwen25VLConfig(files.config);
      const gqa = await loadGqaModel(src, cfg.text, naming);
      const c = gqa.config;
      weights = buildMlaModel(gqa, allPairsKept(c.numLayers, c.numKvHeads, c.headDim), fullRankFactoriser(1), { partialRopeVersion: "full", svdInitMethod: "full-rank" });
    }
    if (toy) {
      vision = files.vision!;
    } else {
      const cfg = parseQwen25VLConfig(files.config);
      const visionPrefix = qwen25VisionPrefix(src.names());
      vision = qwen25Vision({ config: cfg, vision: await loadQwen25VisionWeights(src, cfg.vision, visionPrefix), visionPrefix });
    }
  } catch (cause) {
    if (cause instanceof RuntimeError) throw cause;
    throw new RuntimeError("bad_model", `cannot load the checkpoint: ${(cause as Error).message}`, { cause });
  }
  const processor = chatProcessorFromFiles(files);
  const ref = files.ref ?? { id: raw._name_or_path ?? (toy ? "tiny-qwen-vl" : (raw.model_type ?? "model")), conversion: JSON.stringify(raw.mha2mla ?? null) };
  return createChatModel({ ref, weights, processor, vision, codec: files.codec, rawConfig: files.config, kernels: files.kernels });
}

/**
 * The model's input pipeline from its side files (tokenizer.json, tokenizer_config.json / chat_template.json,
 * preprocessor and generation config). A word-level vocabulary without a chat template (the demo's `{type, vocab}`
 * tokenizer.json, or a WordLevel one alone) gets the tiny fixture's format.
 */
export function chatProcessorFromFiles(
  files: Pick<ChatModelFiles, "config" | "tokenizer" | "tokenizerConfig" | "chatTemplateJson" | "preprocessorConfig" | "generationConfig">,
): ChatInputProcessor {
  const tj = files.tokenizer as { type?: unknown; model?: { type?: unknown } } | null;
  const hasTemplate = files.chatTemplateJson != null || (files.tokenizerConfig as { chat_template?: unknown } | null | undefined)?.chat_template != null;
  const wordLevel = tj?.type === "word-level" || (tj?.model?.type === "WordLevel" && !hasTemplate);
  const legacy = wordLevel ? wordLevelTokenizerFiles(WordTokenizer.fromJson(files.tokenizer)) : null;
  return ChatInputProcessor.fromFiles({
    config: files.config,
    tokenizer: legacy?.tokenizer ?? files.tokenizer,
    tokenizerConfig: legacy?.tokenizerConfig ?? files.tokenizerConfig,
    chatTemplateJson: files.chatTemplateJson,
    preprocessorConfig: files.preprocessorConfig,
    generationConfig: files.generationConfig,
  });
}

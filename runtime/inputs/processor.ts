// OpenAI-style messages → model inputs, browser-safe: the model's chat template renders the text, each image's
// `<|image_pad|>` is expanded to the image's token count (grid_t·grid_h·grid_w / merge² for Qwen2.5-VL, as
// Qwen2_5_VLProcessor.__call__ does), the tokenizer turns it into input_ids, and every image becomes pixel values + its
// grid, in prompt order. One `InputProcessor` serves a real Qwen2.5-VL checkpoint and the tiny fixture: what differs is
// in the files (tokenizer.json, chat template, preprocessor config), not in code paths.

import { RuntimeError } from "../errors.ts";
import type { RgbImage } from "./messages.ts";
import { HfTokenizer } from "./hf-tokenizer.ts";
import { QwenImageProcessor, toRgb, type ProcessedImage } from "./image-processor.ts";
import { JinjaChatTemplate, type TemplateMessage } from "./jinja-template.ts";

export interface InputTextPart {
  readonly type: "text";
  readonly text: string;
}
/** OpenAI's image part: `url` is an http(s) URL, a data: URL or (Node) a file path, resolved by the image loader. */
export interface InputImageUrlPart {
  readonly type: "image_url";
  readonly image_url: { readonly url: string } | string;
}
/** An already-decoded image (the SDK's `{type: "image", image}` part). */
export interface InputImagePart {
  readonly type: "image";
  readonly image: RgbImage;
}
export type InputContentPart = InputTextPart | InputImageUrlPart | InputImagePart;

export interface InputMessage {
  readonly role: "system" | "user" | "assistant" | "tool" | (string & {});
  readonly content: string | readonly InputContentPart[];
}

/** Resolves an image_url part's URL to pixels (Node: `nodeImageLoader`, browser: `decodeBrowserImage`). */
export type ImageLoader = (url: string) => Promise<RgbImage>;

/** Pixels → the vision tower's input and the number of `<|image_pad|>` tokens the image takes. */
export interface ImagePreprocessor {
  process(image: RgbImage): ProcessedImage;
}

export interface ModelImageInput extends ProcessedImage {
  /** Index of the first of this image's `<|image_pad|>` tokens in input_ids. */
  readonly tokenOffset: number;
}

export interface ModelInputs {
  /** The rendered template before `<|image_pad|>` expansion (transformers' `chat_text`). */
  readonly text: string;
  /** Token ids with every image's pads expanded. */
  readonly inputIds: number[];
  /** Images in prompt order. */
  readonly images: ModelImageInput[];
  /** All images' pixel values, concatenated in prompt order: [Σ patches × row length]. */
  readonly pixelValues: Float32Array;
  readonly imageGridThw: [number, number, number][];
}

export interface EncodeOptions {
  /** Append the assistant header (default true). */
  readonly addGenerationPrompt?: boolean;
  /** Needed when a message has image_url parts. */
  readonly loadImage?: ImageLoader;
  /** Extra template variables (e.g. `add_vision_id`). */
  readonly templateVariables?: Record<string, unknown>;
}

/** Special token ids the runtime needs, from config.json (else the tokenizer's token strings). */
export interface VisionTokenIds {
  readonly image: number;
  readonly visionStart: number | null;
  readonly visionEnd: number | null;
  readonly video: number | null;
}

export interface InputProcessor {
  readonly tokenizer: HfTokenizer;
  readonly template: JinjaChatTemplate;
  readonly imageProcessor: ImagePreprocessor;
  readonly tokens: VisionTokenIds;
  /** Stop ids: generation_config's / config's eos ids and the tokenizer's eos token. */
  readonly eosTokenIds: number[];
  encode(messages: readonly InputMessage[], options?: EncodeOptions): Promise<ModelInputs>;
  /**
   * The next turn of a session whose cache already holds `cachedIds` (earlier prompts and generated answers): renders
   * the whole conversation, checks `cachedIds` is a prefix of its ids (`out_of_sync` if not) and returns only the new
   * ids, with only the images whose tokens are new (token offsets relative to the new ids).
   */
  encodeContinuation(messages: readonly InputMessage[], cachedIds: readonly number[], options?: EncodeOptions): Promise<ModelInputs>;
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
}

/** The tiny fixture's toy tower input: an exact rows·cell × cols·cell image as HWC cell patches in [0, 1]. */
export class CellImageProcessor implements ImagePreprocessor {
  constructor(
    readonly rows: number,
    readonly cols: number,
    readonly cellPixels: number,
  ) {}

  process(image: RgbImage): ProcessedImage {
    const c = this.cellPixels;
    const w = this.cols * c;
    const h = this.rows * c;
    if (image.width !== w || image.height !== h) {
      throw new RuntimeError("unsupported_image", `image is ${image.width}×${image.height}, the model takes ${w}×${h} (${this.rows}×${this.cols} cells of ${c} px)`);
    }
    const rgb = toRgb(image);
    const rowLen = c * c * 3;
    const out = new Float32Array(this.rows * this.cols * rowLen);
    let o = 0;
    for (let r = 0; r < this.rows; r++) {
      for (let k = 0; k < this.cols; k++) {
        for (let y = 0; y < c; y++) {
          for (let x = 0; x < c; x++) {
            const p = ((r * c + y) * w + k * c + x) * 3;
            out[o++] = rgb[p] / 255;
            out[o++] = rgb[p + 1] / 255;
            out[o++] = rgb[p + 2] / 255;
          }
        }
      }
    }
    const cells = this.rows * this.cols;
    return { pixelValues: out, shape: [cells, rowLen], gridThw: [1, this.rows, this.cols], numImageTokens: cells, resized: { width: w, height: h, data: rgb, channels: 3 } };
  }
}

/** Parsed model files (browser-safe: the caller reads them; `loadInputProcessor` in processor.node.ts reads a folder). */
export interface InputProcessorFiles {
  readonly config: unknown;
  readonly tokenizer: unknown;
  readonly tokenizerConfig?: unknown;
  readonly chatTemplateJson?: unknown;
  readonly preprocessorConfig?: unknown;
  readonly generationConfig?: unknown;
}

function idField(obj: Record<string, unknown>, key: string): number | null {
  const v = obj[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw new RuntimeError("bad_model", `config.json: ${key} must be a token id, got ${JSON.stringify(v)}`);
  return v;
}

function ids(v: unknown): number[] {
  if (typeof v === "number") return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === "number");
  return [];
}

function validateMessages(messages: unknown): asserts messages is readonly InputMessage[] {
  if (!Array.isArray(messages) || messages.length === 0) throw new RuntimeError("bad_messages", "messages must be a non-empty array");
  messages.forEach((m: unknown, i) => {
    if (m === null || typeof m !== "object") throw new RuntimeError("bad_messages", `message ${i} must be an object`);
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (typeof role !== "string" || role.length === 0) throw new RuntimeError("bad_messages", `message ${i}: role must be a non-empty string`);
    if (typeof content === "string") return;
    if (!Array.isArray(content)) throw new RuntimeError("bad_messages", `message ${i}: content must be a string or a list of parts`);
    content.forEach((p: unknown, j) => {
      const where = `message ${i}, part ${j}`;
      if (p === null || typeof p !== "object") throw new RuntimeError("bad_messages", `${where} must be an object`);
      const part = p as { type?: unknown; text?: unknown; image_url?: unknown; image?: unknown };
      if (part.type === "text") {
        if (typeof part.text !== "string") throw new RuntimeError("bad_messages", `${where}: a text part needs a string \`text\``);
      } else if (part.type === "image_url") {
        const u = part.image_url;
        const url = typeof u === "string" ? u : u !== null && typeof u === "object" ? (u as { url?: unknown }).url : undefined;
        if (typeof url !== "string" || url.length === 0) throw new RuntimeError("bad_messages", `${where}: an image_url part needs image_url.url`);
      } else if (part.type === "image") {
        const im = part.image as Partial<RgbImage> | undefined;
        if (im === null || typeof im !== "object" || typeof im.width !== "number" || typeof im.height !== "number" || !(im.data instanceof Uint8Array || im.data instanceof Uint8ClampedArray)) {
          throw new RuntimeError("bad_messages", `${where}: an image part needs image {width, height, data}`);
        }
      } else {
        throw new RuntimeError("bad_messages", `${where}: unsupported content part type ${JSON.stringify(part.type)} (text, image_url, image)`);
      }
    });
  });
}

/** A fixed earlier exchange: what `encodeTurn` and `chatFormat` render around (only its rendering is used, never its ids). */
const ANCHOR_ANSWER = "mla-edge-answer";
const ANCHOR: TemplateMessage[] = [
  { role: "user", content: "mla-edge-question" },
  { role: "assistant", content: ANCHOR_ANSWER },
];

export class ChatInputProcessor implements InputProcessor {
  constructor(
    readonly tokenizer: HfTokenizer,
    readonly template: JinjaChatTemplate,
    readonly imageProcessor: ImagePreprocessor,
    readonly tokens: VisionTokenIds,
    readonly eosTokenIds: number[],
  ) {
    const t = tokenizer.idToToken(tokens.image);
    if (t === undefined) throw new RuntimeError("bad_model", `image token id ${tokens.image} is not in the tokenizer`);
  }

  /** From a checkpoint's parsed files. The image token ids come from config.json (else the tokenizer). */
  static fromFiles(files: InputProcessorFiles): ChatInputProcessor {
    if (files.config === null || typeof files.config !== "object") throw new RuntimeError("bad_model", "config.json must be a JSON object");
    const config = files.config as Record<string, unknown>;
    const tokenizer = HfTokenizer.fromJson(files.tokenizer, files.tokenizerConfig ?? {});
    const template = JinjaChatTemplate.fromFiles({ chatTemplateJson: files.chatTemplateJson, tokenizerConfig: files.tokenizerConfig });
    const byName = (s: string) => tokenizer.tokenToId(s) ?? null;
    const image = idField(config, "image_token_id") ?? byName("<|image_pad|>");
    if (image === null) throw new RuntimeError("bad_model", "config.json has no image_token_id and the tokenizer no <|image_pad|>");
    const tokens: VisionTokenIds = {
      image,
      visionStart: idField(config, "vision_start_token_id") ?? byName("<|vision_start|>"),
      visionEnd: idField(config, "vision_end_token_id") ?? byName("<|vision_end|>"),
      video: idField(config, "video_token_id") ?? byName("<|video_pad|>"),
    };
    let imageProcessor: ImagePreprocessor;
    if (files.preprocessorConfig !== undefined && files.preprocessorConfig !== null) {
      imageProcessor = QwenImageProcessor.fromJson(files.preprocessorConfig);
    } else {
      const vc = (config.vision_config ?? {}) as { patch_cells?: unknown; cell_pixels?: unknown };
      if (!Array.isArray(vc.patch_cells) || typeof vc.cell_pixels !== "number") {
        throw new RuntimeError("bad_model", "no preprocessor_config.json, and config.json's vision_config has no patch_cells/cell_pixels (the toy tower)");
      }
      imageProcessor = new CellImageProcessor(vc.patch_cells[0] as number, vc.patch_cells[1] as number, vc.cell_pixels);
    }
    const gen = (files.generationConfig ?? {}) as Record<string, unknown>;
    const eos = new Set<number>([...ids(gen.eos_token_id), ...ids(config.eos_token_id)]);
    if (tokenizer.eosToken !== null && tokenizer.tokenToId(tokenizer.eosToken) !== undefined) eos.add(tokenizer.tokenToId(tokenizer.eosToken)!);
    return new ChatInputProcessor(tokenizer, template, imageProcessor, tokens, [...eos]);
  }

  /** The template's view of the messages: text as is, an image as `{type: "image"}` / its image_url (no pixels). */
  private templateMessages(messages: readonly InputMessage[]): TemplateMessage[] {
    return messages.map((m) => ({
      role: m.role,
      content: typeof m.content === "string" ? m.content : m.content.map((p): Record<string, unknown> => (p.type === "text" ? { type: "text", text: p.text } : p.type === "image" ? { type: "image" } : { type: "image_url", image_url: { url: typeof p.image_url === "string" ? p.image_url : p.image_url.url } })),
    }));
  }

  async encode(messages: readonly InputMessage[], options: EncodeOptions = {}): Promise<ModelInputs> {
    validateMessages(messages);
    const processed = await this.processImages(messages, options);
    const text = this.template.render(this.templateMessages(messages), { addGenerationPrompt: options.addGenerationPrompt ?? true, variables: options.templateVariables });
    return this.inputsFromText(text, processed);
  }

  /**
   * One turn of a chat session, without the history's messages: with `continued` false (an empty session) the same as
   * `encode`; with `continued` true only what the template renders after an earlier exchange, i.e. the text of
   * `render(history ++ messages)` past `render(history)` for any history (checked on a fixed one: the template must
   * render a conversation as the concatenation of its messages, as chat templates do). Images: only this turn's.
   */
  async encodeTurn(messages: readonly InputMessage[], continued: boolean, options: EncodeOptions = {}): Promise<ModelInputs> {
    if (!continued) return this.encode(messages, options);
    validateMessages(messages);
    const processed = await this.processImages(messages, options);
    const vars = options.templateVariables;
    const before = this.template.render(ANCHOR, { addGenerationPrompt: false, variables: vars });
    const whole = this.template.render([...ANCHOR, ...this.templateMessages(messages)], { addGenerationPrompt: options.addGenerationPrompt ?? true, variables: vars });
    if (!whole.startsWith(before)) {
      throw new RuntimeError("bad_model", "the chat template does not render a conversation as the concatenation of its turns: a session cannot continue it turn by turn");
    }
    return this.inputsFromText(whole.slice(before.length), processed);
  }

  /**
   * The chat format a session needs from the template: `closingIds`, what the template renders after an assistant
   * answer's text (Qwen: `<|im_end|>` `\n`; the tiny fixture: `<end>`), which the session feeds after each generated
   * answer so that the cache holds exactly what the next turn's rendering continues from.
   */
  chatFormat(): { readonly closingIds: number[] } {
    const asked = this.template.render([ANCHOR[0]], { addGenerationPrompt: true });
    const answered = this.template.render(ANCHOR, { addGenerationPrompt: false });
    const at = answered.indexOf(ANCHOR_ANSWER, asked.length);
    if (!answered.startsWith(asked) || at < 0) {
      throw new RuntimeError("bad_model", "the chat template does not render an assistant answer right after its generation prompt");
    }
    return { closingIds: this.tokenizer.encode(answered.slice(at + ANCHOR_ANSWER.length)) };
  }

  /** Every image part's pixels, in prompt order (all checks before any work is handed back). */
  private async processImages(messages: readonly InputMessage[], options: EncodeOptions): Promise<ProcessedImage[]> {
    const processed: ProcessedImage[] = [];
    for (const m of messages) {
      if (typeof m.content === "string") continue;
      for (const p of m.content) {
        if (p.type === "text") continue;
        let image: RgbImage;
        if (p.type === "image") {
          image = p.image;
        } else {
          if (options.loadImage === undefined) throw new RuntimeError("bad_messages", "an image_url part needs an image loader (EncodeOptions.loadImage)");
          image = await options.loadImage(typeof p.image_url === "string" ? p.image_url : p.image_url.url);
        }
        processed.push(this.imageProcessor.process(image));
      }
    }
    return processed;
  }

  /** Tokenizes rendered text and expands each image's `<|image_pad|>` to its token count. */
  private inputsFromText(text: string, processed: readonly ProcessedImage[]): ModelInputs {
    const raw = this.tokenizer.encode(text);
    const pad = this.tokens.image;
    const padCount = raw.reduce((n, t) => n + (t === pad ? 1 : 0), 0);
    if (padCount !== processed.length) {
      throw new RuntimeError("bad_messages", `the rendered prompt has ${padCount} image tokens for ${processed.length} images (did a text part contain ${JSON.stringify(this.tokenizer.idToToken(pad))}, or does the template drop images?)`);
    }
    // id-level expansion: the same ids as expanding the text (special tokens split the text first)
    const inputIds: number[] = [];
    const images: ModelImageInput[] = [];
    let k = 0;
    for (const t of raw) {
      if (t !== pad) {
        inputIds.push(t);
        continue;
      }
      const img = processed[k++];
      images.push({ ...img, tokenOffset: inputIds.length });
      for (let i = 0; i < img.numImageTokens; i++) inputIds.push(pad);
    }
    const total = processed.reduce((a, p) => a + p.pixelValues.length, 0);
    const pixelValues = new Float32Array(total);
    let o = 0;
    for (const p of processed) {
      pixelValues.set(p.pixelValues, o);
      o += p.pixelValues.length;
    }
    return { text, inputIds, images, pixelValues, imageGridThw: processed.map((p) => [...p.gridThw] as [number, number, number]) };
  }

  async encodeContinuation(messages: readonly InputMessage[], cachedIds: readonly number[], options: EncodeOptions = {}): Promise<ModelInputs> {
    const full = await this.encode(messages, options);
    const n = cachedIds.length;
    if (n > full.inputIds.length) {
      throw new RuntimeError("out_of_sync", `the session holds ${n} tokens but the whole conversation renders to ${full.inputIds.length}`);
    }
    for (let i = 0; i < n; i++) {
      if (cachedIds[i] !== full.inputIds[i]) {
        throw new RuntimeError("out_of_sync", `the session's token ${i} is ${cachedIds[i]}, the conversation renders ${full.inputIds[i]} there (history edited, or an answer that does not re-tokenize the same)`);
      }
    }
    for (const im of full.images) {
      if (im.tokenOffset < n && im.tokenOffset + im.numImageTokens > n) throw new RuntimeError("out_of_sync", `the session ends inside an image's tokens (${im.tokenOffset}…${im.tokenOffset + im.numImageTokens})`);
    }
    const fresh = full.images.filter((im) => im.tokenOffset >= n).map((im) => ({ ...im, tokenOffset: im.tokenOffset - n }));
    const pixelValues = new Float32Array(fresh.reduce((a, p) => a + p.pixelValues.length, 0));
    let o = 0;
    for (const p of fresh) {
      pixelValues.set(p.pixelValues, o);
      o += p.pixelValues.length;
    }
    return { text: full.text, inputIds: full.inputIds.slice(n), images: fresh, pixelValues, imageGridThw: fresh.map((p) => [...p.gridThw] as [number, number, number]) };
  }

  decode(idsIn: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    return this.tokenizer.decode(idsIn, options);
  }
}

// Node: an InputProcessor from a model folder, and an image loader for image_url parts (data: URLs, file paths
// relative to a base folder, file: URLs). http(s) URLs are refused: the CLI reads local files only.

import { readFile } from "node:fs/promises";
import { isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { RuntimeError } from "../../client/runtime/errors.ts";
import type { RgbImage } from "../../client/runtime/messages.ts";
import { decodeImageBytes, readImageFile, type DecodeOptions } from "./image-decode.node.ts";
import { ChatInputProcessor, type ImageLoader } from "./processor.ts";

async function readJson(path: string, required: boolean): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    if (!required && (cause as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new RuntimeError("bad_model", `cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new RuntimeError("bad_model", `${path} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
}

/** config.json + tokenizer.json (required), tokenizer_config.json, chat_template.json, preprocessor_config.json,
 * generation_config.json (when present). */
export async function loadInputProcessor(dir: string): Promise<ChatInputProcessor> {
  const [config, tokenizer, tokenizerConfig, chatTemplateJson, preprocessorConfig, generationConfig] = await Promise.all([
    readJson(join(dir, "config.json"), true),
    readJson(join(dir, "tokenizer.json"), true),
    readJson(join(dir, "tokenizer_config.json"), false),
    readJson(join(dir, "chat_template.json"), false),
    readJson(join(dir, "preprocessor_config.json"), false),
    readJson(join(dir, "generation_config.json"), false),
  ]);
  return ChatInputProcessor.fromFiles({ config, tokenizer, tokenizerConfig, chatTemplateJson, preprocessorConfig, generationConfig });
}

/** Decodes `data:image/…;base64,…` URL bytes. */
export function dataUrlBytes(url: string): Uint8Array {
  const m = /^data:([^,]*?)(;base64)?,(.*)$/s.exec(url);
  if (m === null) throw new RuntimeError("unsupported_image", "malformed data: URL");
  if (m[2] === undefined) return new TextEncoder().encode(decodeURIComponent(m[3]));
  return new Uint8Array(Buffer.from(m[3], "base64"));
}

/** image_url loader for Node: data: URLs, file: URLs and paths (relative ones resolved against `baseDir`). */
export function nodeImageLoader(baseDir: string, options: DecodeOptions = {}): ImageLoader {
  return async (url: string): Promise<RgbImage> => {
    if (url.startsWith("data:")) return decodeImageBytes(dataUrlBytes(url), options);
    if (/^https?:\/\//i.test(url)) throw new RuntimeError("unsupported_image", `remote image URLs are not fetched (${url}); pass a file path or a data: URL`);
    const path = url.startsWith("file:") ? fileURLToPath(url) : isAbsolute(url) ? url : resolve(baseDir, url);
    return readImageFile(path, options);
  };
}

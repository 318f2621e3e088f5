// Node: a ChatModel from a checkpoint folder as it is on disk (the SDK's counterpart of `mla-edge generate --model DIR`):
// an original Qwen2.5-VL checkpoint, mla-edge's MLA conversion, or a released MHA2MLA one (rank file beside it); sharded
// safetensors read lazily; config.json, tokenizer.json and the optional tokenizer_config.json, chat_template.json,
// preprocessor_config.json, generation_config.json.

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { openCheckpointDir } from "../checkpoint/io.node.ts";
import type { Codec } from "../format/codec/types.ts";
import type { ModelRef } from "../format/wire/messages.ts";
import type { MlaBackend } from "../kernels/backend.ts";
import { loadChatModel, type ChatModel } from "./chat-model.ts";
import { RuntimeError } from "./errors.ts";
import type { VisionEncoder } from "./vision/vision-encoder.ts";

export interface ChatModelDirOptions {
  readonly codec: Codec;
  readonly ref?: ModelRef;
  readonly kernels?: MlaBackend | null;
  /** A toy vision tower (the tiny fixture); absent: the checkpoint's own Qwen2.5-VL vision transformer. */
  readonly vision?: VisionEncoder;
}

async function readOptional(path: string): Promise<Uint8Array | null> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

async function readJson(dir: string, name: string, required: boolean): Promise<unknown> {
  const bytes = await readOptional(join(dir, name));
  if (bytes === null) {
    if (required) throw new RuntimeError("bad_model", `${join(dir, name)} not found`);
    return undefined;
  }
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as unknown;
  } catch (cause) {
    throw new RuntimeError("bad_model", `${join(dir, name)} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
}

/** Loads the chat model of checkpoint folder `dir` (its tensors are read once, then the files are closed). */
export async function loadChatModelDir(dir: string, options: ChatModelDirOptions): Promise<ChatModel> {
  const [tokenizer, tokenizerConfig, chatTemplateJson, preprocessorConfig, generationConfig] = await Promise.all([
    readJson(dir, "tokenizer.json", true),
    readJson(dir, "tokenizer_config.json", false),
    readJson(dir, "chat_template.json", false),
    readJson(dir, "preprocessor_config.json", false),
    readJson(dir, "generation_config.json", false),
  ]);
  let ck: Awaited<ReturnType<typeof openCheckpointDir>>;
  try {
    ck = await openCheckpointDir(dir);
  } catch (cause) {
    throw new RuntimeError("bad_model", `cannot open the checkpoint ${dir}: ${(cause as Error).message}`, { cause });
  }
  try {
    return await loadChatModel({
      config: ck.rawConfig,
      weights: ck.source,
      tokenizer,
      tokenizerConfig,
      chatTemplateJson,
      preprocessorConfig,
      generationConfig,
      codec: options.codec,
      ...(options.vision ? { vision: options.vision } : {}),
      ...(options.ref ? { ref: options.ref } : {}),
      ...(options.kernels !== undefined ? { kernels: options.kernels } : {}),
      readFile: (p) => readOptional(join(dir, p)),
    });
  } finally {
    await ck.source.close();
  }
}

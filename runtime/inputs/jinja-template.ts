// The model's own chat template (chat_template.json, else tokenizer_config.json's `chat_template`), rendered with
// @huggingface/jinja exactly as transformers' apply_chat_template renders it. Browser-safe.

import { Template } from "@huggingface/jinja";
import { RuntimeError } from "../../client/runtime/errors.ts";

/** What the template sees of a message: OpenAI-style, image data replaced by a placeholder part. */
export interface TemplateMessage {
  readonly role: string;
  readonly content: string | readonly Record<string, unknown>[];
}

export interface RenderOptions {
  /** End with the assistant's header so the model answers (default true). */
  readonly addGenerationPrompt?: boolean;
  /** Further template variables (e.g. `add_vision_id`, `tools`). */
  readonly variables?: Record<string, unknown>;
}

/**
 * Picks the template from the files a checkpoint ships. `chat_template.json` wins (transformers' processor order);
 * a list of named templates (`[{name, template}]`) uses "default".
 */
export function selectChatTemplate(files: { chatTemplateJson?: unknown; tokenizerConfig?: unknown }): string {
  const pick = (v: unknown, where: string): string | null => {
    if (v === undefined || v === null) return null;
    if (typeof v === "string") return v;
    if (Array.isArray(v)) {
      const d = v.find((t) => t !== null && typeof t === "object" && (t as { name?: unknown }).name === "default") as { template?: unknown } | undefined;
      if (d !== undefined && typeof d.template === "string") return d.template;
    }
    throw new RuntimeError("bad_model", `${where}: chat_template must be a string or a list with a "default" entry`);
  };
  const fromProcessor = files.chatTemplateJson !== undefined && files.chatTemplateJson !== null ? pick((files.chatTemplateJson as { chat_template?: unknown }).chat_template, "chat_template.json") : null;
  if (fromProcessor !== null) return fromProcessor;
  const fromTokenizer = files.tokenizerConfig !== undefined && files.tokenizerConfig !== null ? pick((files.tokenizerConfig as { chat_template?: unknown }).chat_template, "tokenizer_config.json") : null;
  if (fromTokenizer !== null) return fromTokenizer;
  throw new RuntimeError("bad_model", "the model has no chat template (neither chat_template.json nor tokenizer_config.json's chat_template)");
}

export class JinjaChatTemplate {
  private readonly template: Template;

  constructor(
    readonly source: string,
    /** Variables every render sees: bos_token, eos_token, pad_token, unk_token from tokenizer_config.json. */
    readonly defaults: Record<string, unknown> = {},
  ) {
    try {
      this.template = new Template(source);
    } catch (cause) {
      throw new RuntimeError("bad_model", `chat template does not parse: ${(cause as Error).message}`, { cause });
    }
  }

  static fromFiles(files: { chatTemplateJson?: unknown; tokenizerConfig?: unknown }): JinjaChatTemplate {
    const defaults: Record<string, unknown> = {};
    const tc = (files.tokenizerConfig ?? {}) as Record<string, unknown>;
    for (const k of ["bos_token", "eos_token", "pad_token", "unk_token"]) {
      const v = tc[k];
      const s = typeof v === "string" ? v : v !== null && typeof v === "object" && typeof (v as { content?: unknown }).content === "string" ? (v as { content: string }).content : undefined;
      if (s !== undefined) defaults[k] = s;
    }
    return new JinjaChatTemplate(selectChatTemplate(files), defaults);
  }

  render(messages: readonly TemplateMessage[], options: RenderOptions = {}): string {
    try {
      return this.template.render({
        ...this.defaults,
        ...options.variables,
        messages,
        add_generation_prompt: options.addGenerationPrompt ?? true,
      });
    } catch (cause) {
      // raise_exception(...) in a template and type errors on odd message shapes both land here
      throw new RuntimeError("bad_messages", `the chat template refused the messages: ${(cause as Error).message}`, { cause });
    }
  }
}

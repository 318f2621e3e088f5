// Test reference (the code-built format the SDK used before it ran the model's own template): the tiny-qwen-vl chat format (fixtures/tiny-qwen-vl/README.md "Sequence format"): `<bos>` once, an image as
// `<|vision_start|> <|image_pad|>×cells <|vision_end|>`, text as words, an assistant answer as words + `<end>`.
// No separator between question and answer: the model answers right after the question's last word.

import type { WordTokenizer } from "../../../runtime/inputs/tokenizer.ts";
import { RuntimeError } from "../../../runtime/errors.ts";
import type { ChatMessage, RgbImage } from "../../../runtime/inputs/messages.ts";

export interface EncodedTurn {
  readonly ids: number[];
  /** Images in token order, one per `<|image_pad|>` run. */
  readonly images: RgbImage[];
}

export interface TemplateTokens {
  readonly bos: number;
  readonly visionStart: number;
  readonly imagePad: number;
  readonly visionEnd: number;
  /** Ends an answer; generation stops after it. */
  readonly end: number;
}

export class WordChatTemplate {
  constructor(
    readonly tokenizer: WordTokenizer,
    readonly tokens: TemplateTokens,
    /** `<|image_pad|>` tokens per image. */
    readonly imageTokens: number,
  ) {}

  static forFixture(tokenizer: WordTokenizer, imageTokens: number): WordChatTemplate {
    return new WordChatTemplate(
      tokenizer,
      {
        bos: tokenizer.id("<bos>"),
        visionStart: tokenizer.id("<|vision_start|>"),
        imagePad: tokenizer.id("<|image_pad|>"),
        visionEnd: tokenizer.id("<|vision_end|>"),
        end: tokenizer.id("<end>"),
      },
      imageTokens,
    );
  }

  /** Tokens the model must never emit: pad, bos and the vision tokens. */
  get bannedTokenIds(): number[] {
    const t = this.tokens;
    return [0, t.bos, t.visionStart, t.imagePad, t.visionEnd].filter((v, i, a) => a.indexOf(v) === i);
  }

  /** Encodes the messages of one turn; `first` adds `<bos>` (the session is empty). The last must be the user's. */
  encode(messages: readonly ChatMessage[], first: boolean): EncodedTurn {
    if (messages.length === 0) throw new RuntimeError("bad_messages", "a turn needs at least one message");
    if (messages[messages.length - 1].role !== "user") {
      throw new RuntimeError("bad_messages", `the last message of a turn must be the user's, got ${messages[messages.length - 1].role}`);
    }
    const ids: number[] = first ? [this.tokens.bos] : [];
    const images: RgbImage[] = [];
    messages.forEach((m, i) => {
      if (m.role !== "user" && m.role !== "assistant") {
        throw new RuntimeError("bad_messages", `message ${i}: role ${String(m.role)} is not supported (user, assistant)`);
      }
      const parts = typeof m.content === "string" ? [{ type: "text" as const, text: m.content }] : m.content;
      for (const part of parts) {
        if (part.type === "text") {
          const text = part.text.trim();
          try {
            if (text.length > 0) ids.push(...this.tokenizer.encode(text));
          } catch (cause) {
            throw new RuntimeError("bad_messages", `message ${i}: ${(cause as Error).message}`, { cause });
          }
        } else if (part.type === "image") {
          if (m.role !== "user") throw new RuntimeError("bad_messages", `message ${i}: only user messages may hold images`);
          ids.push(this.tokens.visionStart, ...new Array<number>(this.imageTokens).fill(this.tokens.imagePad), this.tokens.visionEnd);
          images.push(part.image);
        } else {
          throw new RuntimeError("bad_messages", `message ${i}: unknown content part type ${String((part as { type: unknown }).type)}`);
        }
      }
      if (m.role === "assistant") ids.push(this.tokens.end);
    });
    return { ids, images };
  }

  /** Text of generated ids, without the end token. */
  decode(ids: readonly number[]): string {
    return this.tokenizer.decode(ids.filter((t) => t !== this.tokens.end));
  }
}

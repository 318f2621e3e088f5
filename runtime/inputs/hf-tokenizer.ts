// A model's own tokenizer.json (+ tokenizer_config.json) through @huggingface/tokenizers, browser-safe: Qwen's
// byte-level BPE, the tiny fixture's WordLevel vocabulary, or any other tokenizer the library reads.

import { Tokenizer } from "@huggingface/tokenizers";
import { RuntimeError } from "../../client/runtime/errors.ts";

export interface EncodeTextOptions {
  /** Let the tokenizer's post-processor add its special tokens (transformers' default: true). */
  readonly addSpecialTokens?: boolean;
}

export interface DecodeTextOptions {
  /** Drop special tokens (`<|im_end|>`, vision tokens, …) from the text (default false: keep them). */
  readonly skipSpecialTokens?: boolean;
}

function tokenString(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (v !== null && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
  return null;
}

export class HfTokenizer {
  private readonly tok: Tokenizer;
  /** The WordLevel/WordPiece model's unknown token id: text that maps to it is refused, not silently replaced. */
  readonly unkId: number | null;
  /** tokenizer_config.json's named tokens (null when absent). */
  readonly eosToken: string | null;
  readonly bosToken: string | null;
  readonly padToken: string | null;
  readonly vocabSize: number;

  private constructor(tokenizerJson: Record<string, unknown>, readonly tokenizerConfig: Record<string, unknown>) {
    try {
      this.tok = new Tokenizer(tokenizerJson, tokenizerConfig);
    } catch (cause) {
      throw new RuntimeError("bad_model", `tokenizer.json: ${(cause as Error).message}`, { cause });
    }
    const model = tokenizerJson.model as { type?: unknown; unk_token?: unknown } | undefined;
    const unk = model !== undefined && (model.type === "WordLevel" || model.type === "WordPiece") ? tokenString(model.unk_token) : null;
    this.unkId = unk === null ? null : (this.tok.token_to_id(unk) ?? null);
    this.eosToken = tokenString(tokenizerConfig.eos_token);
    this.bosToken = tokenString(tokenizerConfig.bos_token);
    this.padToken = tokenString(tokenizerConfig.pad_token);
    this.vocabSize = this.tok.get_vocab(true).size;
  }

  /** From parsed `tokenizer.json` and (optionally) `tokenizer_config.json`. */
  static fromJson(tokenizerJson: unknown, tokenizerConfig: unknown = {}): HfTokenizer {
    if (tokenizerJson === null || typeof tokenizerJson !== "object" || Array.isArray(tokenizerJson) || typeof (tokenizerJson as { model?: unknown }).model !== "object") {
      throw new RuntimeError("bad_model", "tokenizer.json must be a Hugging Face tokenizers file (an object with a `model`)");
    }
    if (tokenizerConfig === null || typeof tokenizerConfig !== "object" || Array.isArray(tokenizerConfig)) {
      throw new RuntimeError("bad_model", "tokenizer_config.json must be a JSON object");
    }
    return new HfTokenizer(tokenizerJson as Record<string, unknown>, tokenizerConfig as Record<string, unknown>);
  }

  /** Token ids of `text`; special tokens written in the text (`<|im_start|>`, …) become their ids. */
  encode(text: string, options: EncodeTextOptions = {}): number[] {
    const ids = this.tok.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
    if (this.unkId !== null && ids.includes(this.unkId)) {
      const enc = this.tok.encode(text, { add_special_tokens: false });
      const unk = this.idToToken(this.unkId);
      const words = enc.tokens.filter((t, i) => enc.ids[i] === this.unkId && t !== unk);
      // WordLevel maps an unknown word to unk; ask for the words themselves from the pre-tokenizer-free split
      const unknown = words.length > 0 ? words : text.split(/\s+/).filter((w) => w.length > 0 && this.tok.token_to_id(w) === undefined);
      if (unknown.length > 0 || unk === undefined || !text.includes(unk)) {
        throw new RuntimeError("bad_messages", `text has words outside the tokenizer's vocabulary${unknown.length > 0 ? `: ${unknown.slice(0, 5).map((w) => JSON.stringify(w)).join(", ")}` : ""}`);
      }
    }
    return ids;
  }

  /**
   * Text of `ids`. Ids the tokenizer does not know (e.g. Qwen's embedding rows 151665…151935, which only exist as
   * weights) are skipped, as the Rust tokenizers' decode skips them.
   */
  decode(ids: readonly number[], options: DecodeTextOptions = {}): string {
    const known = ids.filter((id) => Number.isInteger(id) && id >= 0 && this.idToToken(id) !== undefined);
    return this.tok.decode(known, { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  /** The id of a token the model needs (e.g. `<|image_pad|>`); `bad_model` when the tokenizer lacks it. */
  requireId(token: string): number {
    const id = this.tok.token_to_id(token);
    if (id === undefined) throw new RuntimeError("bad_model", `the tokenizer has no token ${JSON.stringify(token)}`);
    return id;
  }

  /** Ids of all added tokens marked special. */
  specialTokenIds(): number[] {
    return [...this.tok.get_added_tokens_decoder().entries()].filter(([, t]) => t.special).map(([id]) => id);
  }
}

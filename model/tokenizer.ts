// Word-level tokenizer of the tiny fixture model: split on single spaces, one id per word (its vocabulary index).

export class TokenizerError extends Error {
  override readonly name = "TokenizerError";
  constructor(
    readonly code: "unknown_word" | "unknown_id" | "bad_tokenizer",
    message: string,
  ) {
    super(message);
  }
}

export class WordTokenizer {
  private readonly ids = new Map<string, number>();

  constructor(readonly vocab: readonly string[]) {
    vocab.forEach((w, i) => {
      if (this.ids.has(w)) throw new TokenizerError("bad_tokenizer", `word ${JSON.stringify(w)} appears twice in the vocabulary`);
      this.ids.set(w, i);
    });
  }

  /**
   * From tokenizer.json: a Hugging Face tokenizers file with a `WordLevel` model (ids 0..n-1, each once), or the older
   * `{ "type": "word-level", "vocab": [...] }`.
   */
  static fromJson(json: unknown): WordTokenizer {
    const j = json as { type?: unknown; vocab?: unknown; model?: { type?: unknown; vocab?: unknown } } | null;
    if (j !== null && typeof j === "object" && j.model !== null && typeof j.model === "object" && j.model.type === "WordLevel") {
      const map = j.model.vocab;
      if (map === null || typeof map !== "object" || Array.isArray(map)) throw new TokenizerError("bad_tokenizer", "tokenizer.json: model.vocab must map words to ids");
      const entries = Object.entries(map as Record<string, unknown>);
      const vocab = new Array<string>(entries.length);
      for (const [w, id] of entries) {
        if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= entries.length || vocab[id] !== undefined) {
          throw new TokenizerError("bad_tokenizer", `tokenizer.json: WordLevel ids must be 0..${entries.length - 1}, each once (word ${JSON.stringify(w)} has ${JSON.stringify(id)})`);
        }
        vocab[id] = w;
      }
      return new WordTokenizer(vocab);
    }
    if (j === null || typeof j !== "object" || j.type !== "word-level" || !Array.isArray(j.vocab) || !j.vocab.every((w) => typeof w === "string")) {
      throw new TokenizerError("bad_tokenizer", 'tokenizer.json must be a Hugging Face WordLevel tokenizer or {"type": "word-level", "vocab": [strings]}');
    }
    return new WordTokenizer(j.vocab as string[]);
  }

  get size(): number {
    return this.vocab.length;
  }

  id(word: string): number {
    const id = this.ids.get(word);
    if (id === undefined) throw new TokenizerError("unknown_word", `word ${JSON.stringify(word)} is not in the vocabulary`);
    return id;
  }

  encode(text: string): number[] {
    if (text.length === 0) return [];
    return text.split(" ").map((w) => this.id(w));
  }

  decode(ids: ArrayLike<number>): string {
    const words: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const w = this.vocab[ids[i]];
      if (w === undefined) throw new TokenizerError("unknown_id", `token id ${ids[i]} is outside the ${this.vocab.length}-word vocabulary`);
      words.push(w);
    }
    return words.join(" ");
  }
}

// Stop strings over streamed tokens (OpenAI's `stop`): after each generated token the decoded answer is searched for
// any stop string — also one that spans several tokens or starts inside a token — and the answer ends before the
// earliest one; the stop text itself is never returned. While streaming, text that could still become the start of a
// stop string is held back, so no delta ever has to be taken back.

export interface StopScan {
  /** Text to append to what was emitted so far ("" when nothing new is safe to show). */
  readonly delta: string;
  /** A stop string was found: the answer ends; `delta` ends right before it. */
  readonly stopped: boolean;
}

export class StopScanner {
  private emitted = "";
  private done = false;

  /**
   * @param stops stop strings (empty ones are ignored)
   * @param decode text of the generated ids so far (the model's decode, end token left out)
   */
  constructor(
    private readonly stops: readonly string[],
    private readonly decode: (ids: readonly number[]) => string,
  ) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  /** True once a stop string was found. */
  get stopped(): boolean {
    return this.done;
  }

  /** What was emitted so far (the answer, once finished). */
  get text(): string {
    return this.emitted;
  }

  /** Scans the answer after a new token; `ids` is every generated id so far. */
  push(ids: readonly number[]): StopScan {
    if (this.done) return { delta: "", stopped: true };
    const full = this.decode(ids);
    let cut = -1;
    for (const s of this.stops) {
      const i = full.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.done = true;
      return { delta: this.advance(full.slice(0, cut)), stopped: true };
    }
    return { delta: this.advance(full.slice(0, full.length - this.heldBack(full))), stopped: false };
  }

  /** The answer ended without a stop string: the held-back text is released. */
  finish(ids: readonly number[]): string {
    if (this.done) return "";
    this.done = true;
    return this.advance(this.decode(ids));
  }

  /** Length of the longest suffix of `text` that is a proper prefix of a stop string. */
  private heldBack(text: string): number {
    let best = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, text.length); n > best; n--) {
        if (text.endsWith(s.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }

  /**
   * Moves the emitted text to `safe`. A decode whose earlier text changed (a tokenizer that merges across tokens)
   * emits nothing until it extends what was emitted again.
   */
  private advance(safe: string): string {
    if (!safe.startsWith(this.emitted)) return "";
    const delta = safe.slice(this.emitted.length);
    this.emitted = safe;
    return delta;
  }
}

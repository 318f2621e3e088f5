// Generation on a Qwen2.5-VL session (original or MLA decoder; any AttentionBackend): prefill the prompt with its
// images, then choose tokens with the runtime's Sampler until a stop id or max tokens, streaming each id. Returns the
// ids, the 20 largest logits at the first generated position and timings — what `mla-edge generate --json` prints.

import type { DecoderSession } from "./decoder-session.ts";
import { appendTurn, type Qwen25VLModel, type VisionInput } from "./qwen2_5_vl-model.ts";
import { Sampler, topLogits, type SamplingParams } from "./sampler.ts";

export interface GenerateOptions extends SamplingParams {
  readonly maxTokens: number;
  /** Generation stops after emitting one of these (kept in the output ids). */
  readonly stopTokenIds?: readonly number[];
  /** Called with each generated id as soon as it is chosen. */
  readonly onToken?: (id: number) => void;
  /** Clock in ms (default performance.now); tests may pass a fake. */
  readonly now?: () => number;
}

export interface GenerateTimings {
  /** Vision tower + prefill of the prompt, ms. */
  readonly prefillMs: number;
  /** All decode steps, ms. */
  readonly decodeMs: number;
  readonly promptTokens: number;
  readonly generatedTokens: number;
  /** Generated tokens per second over the decode phase (null with fewer than two tokens). */
  readonly decodeTokensPerSecond: number | null;
}

export interface GenerateResult {
  readonly outputIds: number[];
  /** The 20 largest logits at the first generated position as [id, value], descending. */
  readonly topLogits: [number, number][];
  readonly timings: GenerateTimings;
}

export function generate(
  model: Pick<Qwen25VLModel, "config" | "vision" | "visionPrefix">,
  session: DecoderSession,
  inputIds: readonly number[],
  images: readonly VisionInput[],
  opts: GenerateOptions,
): GenerateResult {
  const now = opts.now ?? (() => performance.now());
  const sampler = new Sampler(opts);
  const stops = opts.stopTokenIds ?? [];
  const t0 = now();
  let logits = appendTurn(model, session, inputIds, images);
  const t1 = now();
  const top = topLogits(logits, 20);
  const out: number[] = [];
  for (let step = 0; step < opts.maxTokens; step++) {
    const id = sampler.next(logits);
    out.push(id);
    opts.onToken?.(id);
    if (stops.includes(id) || step === opts.maxTokens - 1) break;
    logits = session.append([id]);
  }
  const t2 = now();
  const decodeMs = t2 - t1;
  return {
    outputIds: out,
    topLogits: top,
    timings: {
      prefillMs: t1 - t0,
      decodeMs,
      promptTokens: inputIds.length,
      generatedTokens: out.length,
      decodeTokensPerSecond: out.length > 1 && decodeMs > 0 ? ((out.length - 1) * 1000) / decodeMs : null,
    },
  };
}

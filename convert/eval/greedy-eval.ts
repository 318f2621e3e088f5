// Greedy per-turn accuracy on the multi-turn eval set (fixtures/tiny-qwen-vl/README.md "Sequence format"): each turn
// sees the true history, then its question; the model decodes greedily until <end> (≤ 4 tokens, never pad/bos/vision
// tokens) and the answer must match exactly. Accuracy is reported per question kind and over all turns.

import type { TextModelConfig } from "../../checkpoint/config.ts";
import { runVisionTower, type VisionTowerWeights } from "../../runtime/vision/toy-tower.ts";
import { imagePrefixTokens } from "../../runtime/tiny-fixture.node.ts";
import type { WordTokenizer } from "../../runtime/inputs/tokenizer.ts";
import type { EvalCase } from "./eval-set.ts";
import { openEvalSession, type SessionSettings } from "./sessions.ts";
import type { LoadedVlm } from "./vlm-dir.ts";

/** Most answer tokens decoded per turn before giving up (README: at most 4). */
export const MAX_ANSWER_TOKENS = 4;

export interface AccuracyReport {
  /** Fraction correct per kind, plus `all`. */
  readonly accuracy: Readonly<Record<string, number>>;
  readonly correct: Readonly<Record<string, number>>;
  readonly turns: Readonly<Record<string, number>>;
  readonly cases: number;
}

const embedsCache = new WeakMap<VisionTowerWeights, WeakMap<EvalCase, Float32Array>>();

/** Image embeddings of a case, computed once per (vision tower, case): every configuration sees the same image. */
export function caseEmbeds(vision: VisionTowerWeights, c: EvalCase): Float32Array {
  let m = embedsCache.get(vision);
  if (!m) embedsCache.set(vision, (m = new WeakMap()));
  let e = m.get(c);
  if (!e) m.set(c, (e = runVisionTower(vision, c.patches)));
  return e;
}

/** Tokens greedy decoding may never emit: pad, bos and the vision tokens. */
export function bannedTokens(config: TextModelConfig, tok: WordTokenizer): number[] {
  const t = config.tokens;
  const ids = [tok.id("<pad>"), t.bos, t.visionStart, t.imagePad, t.visionEnd, t.videoPad];
  return [...new Set(ids.filter((v): v is number => v !== null))];
}

/** Runs the eval set; `onCase(i)` is called after each case (progress). */
export function runGreedyEval(vlm: LoadedVlm, cases: readonly EvalCase[], settings: SessionSettings = {}, onCase?: (done: number) => void): AccuracyReport {
  const tok = vlm.tokenizer;
  const end = vlm.config.tokens.eos ?? tok.id("<end>");
  const banned = bannedTokens(vlm.config, tok);
  const cells = vlm.imageGrid.rows * vlm.imageGrid.cols;
  const prefix = imagePrefixTokens(tok, cells);
  const correct: Record<string, number> = { all: 0 };
  const turns: Record<string, number> = { all: 0 };
  cases.forEach((c, i) => {
    const { session, commit } = openEvalSession(vlm.decoder, vlm.imageGrid, settings);
    session.append(prefix, { imageEmbeds: caseEmbeds(vlm.vision, c), logits: "none" });
    commit();
    for (const t of c.turns) {
      const logits = session.append(tok.encode(t.question));
      commit();
      const base = session.length;
      const out = session.generateGreedy(logits, { maxTokens: MAX_ANSWER_TOKENS, stopTokenIds: [end], bannedTokenIds: banned });
      const answer = tok.decode(out.filter((x) => x !== end));
      const ok = answer === t.answer;
      correct[t.kind] = (correct[t.kind] ?? 0) + (ok ? 1 : 0);
      turns[t.kind] = (turns[t.kind] ?? 0) + 1;
      correct.all += ok ? 1 : 0;
      turns.all++;
      // true history: drop the generated tokens, append the reference answer and <end>
      session.truncate(base);
      session.append([...tok.encode(t.answer), end], { logits: "none" });
      commit();
    }
    onCase?.(i + 1);
  });
  const accuracy: Record<string, number> = {};
  for (const k of Object.keys(turns)) accuracy[k] = correct[k] / turns[k];
  return { accuracy, correct, turns, cases: cases.length };
}

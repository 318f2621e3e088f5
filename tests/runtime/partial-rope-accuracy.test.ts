// Greedy eval of partial-RoPE conversions through the absorbed latent path reproduces the accuracy an independent
// implementation reports in fixtures/tiny-qwen-vl/README.md (r = 8 of 32 rope dims, full rank, no training).

import { beforeAll, describe, expect, it } from "vitest";
import { createMlaSession } from "../../runtime/create-session.ts";
import { buildMlaModel, fullRankFactoriser } from "../../runtime/mla/build.ts";
import { imagePrefixTokens, loadTinyFixture, type TinyFixture } from "../../runtime/tiny-fixture.node.ts";
import { base64ToBytes, patchesFromU8, runVisionTower } from "../../runtime/vision/toy-tower.ts";
import { FIXTURE_DIR, readEvalCases, type EvalCase } from "./helpers.ts";

let fx: TinyFixture;
let cases: EvalCase[];
const END = 5;

beforeAll(async () => {
  fx = await loadTinyFixture(FIXTURE_DIR);
  cases = await readEvalCases(60);
});

/** Per-turn greedy accuracy: true history, then the question, decode ≤ 4 tokens until <end>, never vision/pad/bos. */
function accuracy(pairs: number[], count: number): number {
  const kept = Array.from({ length: fx.config.numLayers }, () => Array.from({ length: fx.config.numKvHeads }, () => pairs));
  const mla = buildMlaModel(fx.model, kept, fullRankFactoriser(2), { partialRopeVersion: "fixed", svdInitMethod: "full-rank" });
  let correct = 0;
  let total = 0;
  for (const c of cases.slice(0, count)) {
    const { session } = createMlaSession(mla, "absorbed", { defaultImageGrid: fx.imageGrid });
    const embeds = runVisionTower(fx.vision, patchesFromU8(base64ToBytes(c.patches_u8)));
    session.append(imagePrefixTokens(fx.tokenizer, 16), { imageEmbeds: embeds, logits: "none" });
    for (const t of c.turns) {
      const logits = session.append(fx.tokenizer.encode(t.question));
      const base = session.length;
      const out = session.generateGreedy(logits, { maxTokens: 4, stopTokenIds: [END], bannedTokenIds: [0, 1, 2, 3, 4] });
      if (fx.tokenizer.decode(out.filter((x) => x !== END)) === t.answer) correct++;
      total++;
      session.truncate(base);
      session.append([...fx.tokenizer.encode(t.answer), END], { logits: "none" });
    }
  }
  return correct / total;
}

describe("partial RoPE accuracy (README reference conversions)", () => {
  it("uniform pairs {0, 4, 8, 12}: 78.9 % on the first 60 cases", () => {
    expect(Math.abs(accuracy([0, 4, 8, 12], 60) - 0.789)).toBeLessThan(0.02);
  });
});

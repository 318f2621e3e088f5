// The TS runtime of the original tiny-qwen-vl reproduces the training framework's logits and positions (cases 0–3).

import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { openSafetensorsFile } from "../../checkpoint/io.node.ts";
import type { SafetensorsFile } from "../../checkpoint/safetensors-file.ts";
import { DecoderSession } from "../../runtime/decoder-session.ts";
import { GqaAttentionBackend } from "../../runtime/gqa-attention.ts";
import { ropeIndexPositions } from "../../runtime/rope-index.ts";
import { imagePrefixTokens, loadTinyFixture, type TinyFixture } from "../../runtime/tiny-fixture.node.ts";
import { base64ToBytes, patchesFromU8, runVisionTower } from "../../runtime/vision/toy-tower.ts";
import { FIXTURE_DIR, readEvalCases, relativeError, type EvalCase } from "./helpers.ts";

let fx: TinyFixture;
let ref: SafetensorsFile;
let cases: EvalCase[];

beforeAll(async () => {
  fx = await loadTinyFixture(FIXTURE_DIR);
  ref = await openSafetensorsFile(join(FIXTURE_DIR, "reference-logits.safetensors"));
  cases = await readEvalCases(4);
  return () => ref.close();
});

function caseTokens(c: EvalCase): number[] {
  const ids = imagePrefixTokens(fx.tokenizer, 16);
  for (const t of c.turns) ids.push(...fx.tokenizer.encode(t.question), ...fx.tokenizer.encode(t.answer), fx.tokenizer.id("<end>"));
  return ids;
}

describe("original decoder vs reference-logits.safetensors", () => {
  for (let n = 0; n < 4; n++) {
    it(`case ${n}: tokens, positions and logits match`, async () => {
      const refIds = Array.from(await ref.readFloat32(`case${n}.input_ids`));
      const ids = caseTokens(cases[n]);
      expect(ids).toEqual(refIds);
      const T = ids.length;
      const refPos = await ref.readFloat32(`case${n}.positions`, [3, T]);
      const { positions } = ropeIndexPositions(ids, 0, fx.config.tokens.imagePad!, [fx.imageGrid]);
      expect(Array.from(positions)).toEqual(Array.from(refPos));

      const embeds = runVisionTower(fx.vision, patchesFromU8(base64ToBytes(cases[n].patches_u8)));
      const session = new DecoderSession(fx.config, fx.model.shell, new GqaAttentionBackend(fx.model), { defaultImageGrid: fx.imageGrid });
      const logits = session.append(ids, { imageEmbeds: embeds, logits: "all" });
      const refLogits = await ref.readFloat32(`case${n}.logits`, [T, fx.config.vocabSize]);
      const err = relativeError(logits, refLogits);
      expect(err).toBeLessThan(1e-4);
    });
  }
});

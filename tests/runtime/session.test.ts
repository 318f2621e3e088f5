// Incremental decoding API of the original decoder: block prefill == token-by-token decode, truncation, greedy answers,
// calibration hooks, M-RoPE positions, tokenizer and input errors.

import { beforeAll, describe, expect, it } from "vitest";
import { createGqaSession } from "../../runtime/create-session.ts";
import { DecoderSessionError } from "../../runtime/decoder-session.ts";
import { ropeIndexPositions, RopeIndexError } from "../../runtime/rope-index.ts";
import { imagePrefixTokens, loadTinyFixture, type TinyFixture } from "../../runtime/tiny-fixture.node.ts";
import { TokenizerError } from "../../runtime/inputs/tokenizer.ts";
import { base64ToBytes, patchesFromU8, runVisionTower } from "../../runtime/vision/toy-tower.ts";
import { FIXTURE_DIR, readEvalCases, relativeError, type EvalCase } from "./helpers.ts";

let fx: TinyFixture;
let cases: EvalCase[];
const END = 5;

beforeAll(async () => {
  fx = await loadTinyFixture(FIXTURE_DIR);
  cases = await readEvalCases(6);
});

function fullSequence(c: EvalCase): number[] {
  const ids = imagePrefixTokens(fx.tokenizer, 16);
  for (const t of c.turns) ids.push(...fx.tokenizer.encode(t.question), ...fx.tokenizer.encode(t.answer), END);
  return ids;
}

const embedsOf = (c: EvalCase) => runVisionTower(fx.vision, patchesFromU8(base64ToBytes(c.patches_u8)));
const newSession = () => createGqaSession(fx.model, { defaultImageGrid: fx.imageGrid }).session;

describe("incremental decoding", () => {
  it("prefill + token-by-token decode equals one block, and truncation replays identically", () => {
    const ids = fullSequence(cases[1]);
    const embeds = embedsOf(cases[1]);
    const whole = newSession().append(ids, { imageEmbeds: embeds, logits: "all" });
    const V = fx.config.vocabSize;
    const s = newSession();
    const first = s.append(ids.slice(0, 19), { imageEmbeds: embeds, logits: "all" });
    expect(s.length).toBe(19);
    expect(s.nextPosition).toBe(7); // bos 0, vision_start 1, image 2..5 (max 5), vision_end 6
    expect(relativeError(first, whole.subarray(0, 19 * V))).toBeLessThan(1e-6);
    for (let t = 19; t < ids.length; t++) {
      const row = s.append([ids[t]]);
      expect(relativeError(row, whole.subarray(t * V, (t + 1) * V))).toBeLessThan(1e-6);
    }
    s.truncate(24);
    expect(s.nextPosition).toBe(12);
    const again = s.append(ids.slice(24, 28), { logits: "all" });
    expect(relativeError(again, whole.subarray(24 * V, 28 * V))).toBeLessThan(1e-6);
  });

  it("greedy answers equal the reference model's answers (cases 0–5)", () => {
    const banned = [0, 1, 2, 3, 4];
    for (const c of cases) {
      const s = newSession();
      s.append(imagePrefixTokens(fx.tokenizer, 16), { imageEmbeds: embedsOf(c), logits: "none" });
      for (const t of c.turns) {
        const logits = s.append(fx.tokenizer.encode((t as { question: string }).question));
        const base = s.length;
        const out = s.generateGreedy(logits, { maxTokens: 4, stopTokenIds: [END], bannedTokenIds: banned });
        expect(out[out.length - 1]).toBe(END);
        expect(fx.tokenizer.decode(out.slice(0, -1))).toBe(t.reference_model_answer);
        s.truncate(base);
        s.append([...fx.tokenizer.encode(t.answer), END], { logits: "none" });
      }
    }
  });
});

describe("calibration hooks", () => {
  it("expose each layer's post-RMSNorm input and pre-RoPE q/k with biases", () => {
    const ids = imagePrefixTokens(fx.tokenizer, 16);
    const captures: { layer: number; x: Float64Array; q: Float64Array; k: Float64Array }[] = [];
    newSession().append(ids, {
      imageEmbeds: embedsOf(cases[0]),
      hook: (c) => captures.push({ layer: c.layer, x: c.x, q: c.q!, k: c.k! }),
    });
    expect(captures.map((c) => c.layer)).toEqual([0, 1, 2, 3]);
    const d = fx.config.hiddenSize;
    // token 0 (<bos>) at layer 0: x = RMSNorm(embed) independently recomputed
    const e = fx.model.shell.embedTokens.subarray(1 * d, 2 * d);
    const rms = Math.sqrt(e.reduce((a, v) => a + v * v, 0) / d + fx.config.rmsNormEps);
    const x = Array.from(e, (v, i) => (v / rms) * fx.model.shell.layers[0].inputNorm[i]);
    expect(relativeError(captures[0].x.subarray(0, d), x)).toBeLessThan(1e-6);
    const a = fx.model.attention[0];
    const q = Array.from({ length: 128 }, (_, o) => x.reduce((acc, xv, i) => acc + a.qProj[o * d + i] * xv, a.qBias![o]));
    const k = Array.from({ length: 64 }, (_, o) => x.reduce((acc, xv, i) => acc + a.kProj[o * d + i] * xv, a.kBias![o]));
    expect(relativeError(captures[0].q.subarray(0, 128), q)).toBeLessThan(1e-6);
    expect(relativeError(captures[0].k.subarray(0, 64), k)).toBeLessThan(1e-6);
    expect(captures[0].x.length).toBe(ids.length * d);
  });
});

describe("positions and inputs", () => {
  it("follows the Qwen2.5-VL rope index rule for a non-square grid", () => {
    const { positions, next } = ropeIndexPositions([9, 3, 3, 3, 3, 3, 3, 9], 10, 3, [{ rows: 2, cols: 3 }]);
    const n = 8;
    expect(Array.from(positions.subarray(0, n))).toEqual([10, 11, 11, 11, 11, 11, 11, 14]);
    expect(Array.from(positions.subarray(n, 2 * n))).toEqual([10, 11, 11, 11, 12, 12, 12, 14]);
    expect(Array.from(positions.subarray(2 * n))).toEqual([10, 11, 12, 13, 11, 12, 13, 14]);
    expect(next).toBe(15);
    expect(() => ropeIndexPositions([3, 3, 3], 0, 3, [{ rows: 2, cols: 2 }])).toThrow(RopeIndexError);
  });

  it("rejects missing image embeddings and out-of-vocabulary tokens", () => {
    const s = newSession();
    expect(() => s.append(imagePrefixTokens(fx.tokenizer, 16))).toThrow(DecoderSessionError);
    expect(() => s.append([36])).toThrow(DecoderSessionError);
    expect(s.length).toBe(0);
  });

  it("tokenizes words and rejects unknown ones", () => {
    expect(fx.tokenizer.encode("color at b3")).toEqual([6, 8, 26]);
    expect(fx.tokenizer.decode([9, 14, 19])).toBe("where yellow cross");
    expect(() => fx.tokenizer.encode("colour at b3")).toThrow(TokenizerError);
  });
});

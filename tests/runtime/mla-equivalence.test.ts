// The MLA-converted decoder: exact equivalence with the original when nothing is discarded, partial RoPE equals the
// original with those pairs' rotation removed, and the absorbed latent path equals the expanded path.

import { beforeAll, describe, expect, it } from "vitest";
import { Modality } from "../../format/cache-spec.ts";
import { createGqaSession, createMlaSession } from "../../runtime/create-session.ts";
import { buildMlaModel, fullRankFactoriser } from "../../runtime/mla/build.ts";
import { allPairsKept } from "../../runtime/mla/kept-pairs.ts";
import { mlaCacheSpec, type MlaModelWeights } from "../../runtime/mla/weights.ts";
import { imagePrefixTokens, loadTinyFixture, type TinyFixture } from "../../runtime/tiny-fixture.node.ts";
import { base64ToBytes, patchesFromU8, runVisionTower } from "../../runtime/vision/toy-tower.ts";
import { FIXTURE_DIR, readEvalCases, relativeError } from "./helpers.ts";
import { randomLowRank, randomPairs } from "./mla-helpers.ts";

let fx: TinyFixture;
let ids: number[];
let embeds: Float32Array;
let cases: Awaited<ReturnType<typeof readEvalCases>>;

beforeAll(async () => {
  fx = await loadTinyFixture(FIXTURE_DIR);
  cases = await readEvalCases(2);
  const c = cases[0];
  ids = imagePrefixTokens(fx.tokenizer, 16);
  for (const t of c.turns) ids.push(...fx.tokenizer.encode(t.question), ...fx.tokenizer.encode(t.answer), fx.tokenizer.id("<end>"));
  embeds = runVisionTower(fx.vision, patchesFromU8(base64ToBytes(c.patches_u8)));
});

const grid = () => ({ defaultImageGrid: fx.imageGrid });

function originalLogits(rotatedPairs?: number[][][]): Float32Array {
  const { session } = createGqaSession(fx.model, { ...grid(), rotatedPairs });
  return session.append(ids, { imageEmbeds: embeds, logits: "all" });
}

function mlaLogits(model: MlaModelWeights, path: "expanded" | "absorbed"): Float32Array {
  const { session } = createMlaSession(model, path, grid());
  return session.append(ids, { imageEmbeds: embeds, logits: "all" });
}

describe("MLA conversion without loss", () => {
  it("all pairs kept + full rank reproduces the original logits (both paths, both space layouts)", () => {
    const ref = originalLogits();
    for (const spaces of [1, 2] as const) {
      const mla = buildMlaModel(fx.model, allPairsKept(4, 2, 32), fullRankFactoriser(spaces), { partialRopeVersion: "full", svdInitMethod: "full-rank" });
      expect(mla.ropeDims).toBe(32);
      expect(mla.dKv).toBe(32);
      expect(mla.latentSpaces).toBe(spaces);
      expect(relativeError(mlaLogits(mla, "expanded"), ref)).toBeLessThan(1e-4);
      expect(relativeError(mlaLogits(mla, "absorbed"), ref)).toBeLessThan(1e-4);
    }
  });

  it("partial RoPE + full rank equals the original with the dropped pairs' rotation removed", () => {
    const kept = randomPairs(fx.config, 7, 4); // r = 8 of 32 dims, as the fixture README's reference conversions
    const mla = buildMlaModel(fx.model, kept, fullRankFactoriser(2), { partialRopeVersion: "random", svdInitMethod: "full-rank" });
    expect(mlaCacheSpec(mla)).toMatchObject({ ropeDims: 8, dKv: 56, latentSpaces: 2, mropeSection: [4, 6, 6] });
    const ref = originalLogits(kept);
    expect(relativeError(mlaLogits(mla, "expanded"), ref)).toBeLessThan(1e-4);
    expect(relativeError(mlaLogits(mla, "absorbed"), ref)).toBeLessThan(1e-4);
    // and removing rotation really changes the model: the check above is not vacuous
    expect(relativeError(ref, originalLogits())).toBeGreaterThan(1e-2);
  });
});

describe("absorbed latent path", () => {
  it("equals the expanded path under lossy rank with per-modality biases", () => {
    for (const spaces of [1, 2] as const) {
      const mla = buildMlaModel(fx.model, randomPairs(fx.config, 11, 4), randomLowRank(fx.config, 100, 6, spaces), { partialRopeVersion: "random", svdInitMethod: "random" });
      expect(mla.dKv).toBe(6);
      const expanded = mlaLogits(mla, "expanded");
      const absorbed = mlaLogits(mla, "absorbed");
      expect(relativeError(absorbed, expanded)).toBeLessThan(1e-6);
      expect(relativeError(expanded, originalLogits())).toBeGreaterThan(1e-2);
    }
  });

  it("routes image-pad, vision-start and vision-end tokens to the image space", () => {
    const mla = buildMlaModel(fx.model, randomPairs(fx.config, 3, 4), randomLowRank(fx.config, 5, 6, 2), { partialRopeVersion: "random", svdInitMethod: "random" });
    const { session, backend } = createMlaSession(mla, "absorbed", grid());
    let x0: Float64Array | null = null;
    session.append(ids.slice(0, 21), { imageEmbeds: embeds, hook: (c) => (c.layer === 0 ? (x0 = c.x.slice()) : undefined) });
    const snap = backend.exportCache();
    expect(Array.from(snap.modality)).toEqual([0, ...new Array<number>(18).fill(Modality.image), 0, 0]);
    // each token's cached latent is its own modality's down projection of its attention input
    const D = 12;
    const d = fx.config.hiddenSize;
    for (const t of [0, 1, 2, 18, 19]) {
      const space = mla.attention[0].spaces[snap.modality[t]];
      const other = mla.attention[0].spaces[1 - snap.modality[t]];
      const want = new Float64Array(D);
      const wrong = new Float64Array(D);
      for (let i = 0; i < D; i++) {
        for (let k = 0; k < d; k++) {
          want[i] += space.downKv[i * d + k] * x0![t * d + k];
          wrong[i] += other.downKv[i * d + k] * x0![t * d + k];
        }
      }
      const got = snap.layers[0].latent.subarray(t * D, (t + 1) * D);
      expect(relativeError(got, want)).toBeLessThan(1e-6);
      expect(relativeError(got, wrong)).toBeGreaterThan(1e-2);
    }
  });

  it("decodes token by token, exports and re-imports its cache, and continues identically", () => {
    const mla = buildMlaModel(fx.model, randomPairs(fx.config, 13, 4), randomLowRank(fx.config, 200, 8, 2), { partialRopeVersion: "random", svdInitMethod: "random" });
    const whole = mlaLogits(mla, "absorbed");
    const V = fx.config.vocabSize;
    for (const path of ["absorbed", "expanded"] as const) {
      const { session, backend } = createMlaSession(mla, path, grid());
      const rows: Float32Array[] = [session.append(ids.slice(0, 18), { imageEmbeds: embeds, logits: "all" })];
      for (let t = 18; t < 25; t++) rows.push(session.append([ids[t]]));
      const snap = backend.exportCache();
      const restored = createMlaSession(mla, path, grid());
      restored.backend.importCache(snap);
      restored.session.adoptCache(snap.length, session.nextPosition);
      for (let t = 25; t < ids.length; t++) rows.push(restored.session.append([ids[t]]));
      const joined = new Float32Array(ids.length * V);
      let off = 0;
      for (const r of rows) {
        joined.set(r, off);
        off += r.length;
      }
      expect(relativeError(joined, whole)).toBeLessThan(1e-6);
    }
  });

  it("lets a cache-write callback alter what is stored (fake quantization), on both paths alike", () => {
    const mla = buildMlaModel(fx.model, randomPairs(fx.config, 17, 4), randomLowRank(fx.config, 400, 8, 2), { partialRopeVersion: "random", svdInitMethod: "random" });
    const writes: string[] = [];
    // round latents to multiples of 1/8: a coarse but deterministic "quantizer"
    const coarse = (w: { layer: number; start: number; count: number; latent: Float32Array; kRope: Float32Array }) => {
      writes.push(`${w.layer}:${w.start}+${w.count}`);
      expect(w.latent.length).toBe(w.count * 16);
      expect(w.kRope.length).toBe(w.count * 2 * 8);
      for (let i = 0; i < w.latent.length; i++) w.latent[i] = Math.round(w.latent[i] * 8) / 8;
    };
    const run = (path: "expanded" | "absorbed", onCacheWrite?: typeof coarse) => {
      const { session, backend } = createMlaSession(mla, path, { ...grid(), onCacheWrite });
      const a = session.append(ids.slice(0, 20), { imageEmbeds: embeds, logits: "all" });
      const b = session.append(ids.slice(20), { logits: "all" });
      const joined = new Float32Array(a.length + b.length);
      joined.set(a);
      joined.set(b, a.length);
      return { logits: joined, latent: backend.exportCache().layers[1].latent };
    };
    const plain = run("absorbed");
    const q = run("absorbed", coarse);
    expect(writes).toEqual(["0:0+20", "1:0+20", "2:0+20", "3:0+20", "0:20+" + (ids.length - 20), "1:20+" + (ids.length - 20), "2:20+" + (ids.length - 20), "3:20+" + (ids.length - 20)]);
    expect(Array.from(q.latent).every((v) => Number.isInteger(v * 8))).toBe(true);
    expect(relativeError(q.logits, plain.logits)).toBeGreaterThan(1e-4);
    expect(relativeError(run("expanded", coarse).logits, q.logits)).toBeLessThan(1e-6);
  });
});

// The conversion pipeline on the fixture: MD-SVD lowers the activation-weighted reconstruction error below weight SVD
// (on the calibration data and on held-out sequences), an end-to-end mkl + MD-SVD conversion keeps the fixture's
// accuracy, and bad requests are refused before any work.

import { beforeAll, describe, expect, it } from "vitest";
import { captureCalibration, type SequenceCapture } from "../../convert/calibration/capture.ts";
import { readCalibrationSet, type CalibrationSequence } from "../../convert/calibration/calib-set.ts";
import { readEvalSet } from "../../convert/eval/eval-set.ts";
import { runGreedyEval } from "../../convert/eval/greedy-eval.ts";
import { sandwich } from "../../convert/linalg/matmul.ts";
import { fromFloat32, stackRows, trace } from "../../convert/linalg/matrix.ts";
import { mdSvdKv } from "../../convert/lowrank/md-svd.ts";
import { kvReconstructionError } from "../../convert/lowrank/reconstruction-error.ts";
import { svdJoint } from "../../convert/lowrank/svd-joint.ts";
import { convertModel, validateConversion } from "../../convert/pipeline/convert-model.ts";
import { ConversionError } from "../../convert/pipeline/errors.ts";
import { modalityMoments, type LayerMoments } from "../../convert/pipeline/moments.ts";
import { keyRowSelection } from "../../runtime/mla/kept-pairs.ts";
import { loadTinyFixture, type TinyFixture } from "../../runtime/tiny-fixture.node.ts";
import { CALIB_FILE, EVAL_FILE, FIXTURE_DIR } from "./helpers.ts";

let fx: TinyFixture;
let sequences: CalibrationSequence[];
let calib: SequenceCapture[];
let calibMoments: LayerMoments[];
let heldOutMoments: LayerMoments[];

beforeAll(async () => {
  fx = await loadTinyFixture(FIXTURE_DIR);
  sequences = await readCalibrationSet(CALIB_FILE);
  const opts = { vision: fx.vision, imageGrid: fx.imageGrid };
  calib = captureCalibration(fx.model, sequences.slice(0, 32), opts);
  calibMoments = modalityMoments(calib, fx.config);
  heldOutMoments = modalityMoments(captureCalibration(fx.model, sequences.slice(96, 128), opts), fx.config);
});

describe("MD-SVD versus weight SVD on the fixture", () => {
  it("should reconstruct K/V activations better than joint weight SVD, per layer and modality, at d_kv = 8", () => {
    const high = [0, 1, 2, 3];
    for (let l = 0; l < fx.config.numLayers; l++) {
      const a = fx.model.attention[l];
      const { nope } = keyRowSelection([high, high], 32);
      const wk = fromFloat32(nope.length, 128, Float32Array.from(Array.from(nope).flatMap((r) => Array.from(a.kProj.subarray(r * 128, (r + 1) * 128)))));
      const wv = fromFloat32(64, 128, a.vProj);
      const dims = { nKv: 2, dNope: 24, dHead: 32, hidden: 128 };
      const joint = svdJoint(wk, wv, dims, 16);
      for (const m of ["text", "image"] as const) {
        const md = mdSvdKv(wk, wv, dims, calibMoments[l][m]!, 16, { damping: { kind: "ridge-max", epsilon: 1e-3 } });
        for (const moments of [calibMoments, heldOutMoments]) {
          const s = moments[l][m]!;
          const total = trace(sandwich(stackRows(wk, wv), s)); // E‖W x‖²
          const eJoint = kvReconstructionError(wk, wv, joint, s) / total;
          const eMd = kvReconstructionError(wk, wv, md, s) / total;
          expect(eMd).toBeLessThan(eJoint);
          expect(eMd).toBeLessThan(0.5 * eJoint); // whitening by the modality's own activations is worth a lot here
        }
      }
    }
  });
});

describe("convertModel", () => {
  it("mkl + MD-SVD at d_kv = 8 keeps 4 pairs per KV head, two latent spaces of 16, and the fixture's accuracy", async () => {
    const { model, selection, calibrationTokens } = convertModel(
      fx.model,
      { strategy: "mkl", ropeDims: 8, svd: "md", dKv: 8 },
      { sequences: sequences.slice(0, 16), vision: fx.vision, imageGrid: fx.imageGrid },
    );
    expect(model.dKv).toBe(8);
    expect(model.latentSpaces).toBe(2);
    expect(model.ropeDims).toBe(8);
    expect(model.attention[0].spaces[1].downKv.length).toBe(16 * 128);
    expect(selection.keptPairs.every((l) => l.every((p) => p.length === 4))).toBe(true);
    expect(calibrationTokens.image).toBe(16 * 18);
    const cases = await readEvalSet(EVAL_FILE, 20);
    const acc = runGreedyEval({ dir: FIXTURE_DIR, config: fx.config, rawConfig: fx.rawConfig, decoder: { kind: "mla", model }, vision: fx.vision, tokenizer: fx.tokenizer, imageGrid: fx.imageGrid }, cases);
    expect(acc.accuracy.all).toBeGreaterThanOrEqual(0.95);
  });

  it("should refuse unsupported architectures, d_kv beyond the rank, odd rope dims and missing calibration", () => {
    const base = { strategy: "high", ropeDims: 8, svd: "joint", dKv: 8 } as const;
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e instanceof ConversionError ? e.code : String(e);
      }
      return "ok";
    };
    expect(code(() => validateConversion({ ...fx.config, modelType: "gpt2" }, base))).toBe("unsupported_architecture");
    expect(code(() => validateConversion({ ...fx.config, unsupportedRopeScaling: "yarn" }, base))).toBe("unsupported_architecture");
    // [W_k,nope; W_v] has rank ≤ 2·(24 + 32) = 112 → d_kv ≤ 56
    expect(code(() => validateConversion(fx.config, { ...base, dKv: 56 }))).toBe("ok");
    expect(code(() => validateConversion(fx.config, { ...base, dKv: 57 }))).toBe("d_kv_too_large");
    // split: the key half D_c/2 ≤ rank of W_k,nope = 2·24 → D_c ≤ 96, d_kv ≤ 48
    expect(code(() => validateConversion(fx.config, { ...base, svd: "split", dKv: 48 }))).toBe("ok");
    expect(code(() => validateConversion(fx.config, { ...base, svd: "split", dKv: 49 }))).toBe("d_kv_too_large");
    expect(code(() => validateConversion(fx.config, { ...base, ropeDims: 7 }))).toBe("bad_options");
    expect(code(() => convertModel(fx.model, { ...base, svd: "md" }, null))).toBe("needs_calibration");
    expect(code(() => convertModel(fx.model, { ...base, strategy: "2-norm" }, null))).toBe("needs_calibration");
  });
});

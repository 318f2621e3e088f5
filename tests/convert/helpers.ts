// Shared helpers of the conversion tests: fixture paths, a small hand-made config, captures built from explicit q/k.

import { fileURLToPath } from "node:url";
import type { TextModelConfig } from "../../checkpoint/config.ts";
import type { SequenceCapture } from "../../convert/calibration/capture.ts";
import { pairStreams, ropeInvFreq, ropeTables } from "../../runtime/rope.ts";

export { mulberry32 as rng } from "../helpers/mulberry32.ts";

export const FIXTURE_DIR = fileURLToPath(new URL("../../fixtures/tiny-qwen-vl/", import.meta.url));
export const CALIB_FILE = `${FIXTURE_DIR}calib.jsonl`;
export const EVAL_FILE = `${FIXTURE_DIR}eval.jsonl`;

/** A 1-layer text decoder geometry for hand-made inputs: n_h heads, n_kv KV heads, head dim d_h, 1-D RoPE. */
export function handConfig(numHeads: number, numKvHeads: number, headDim: number, ropeTheta = 10000): TextModelConfig {
  return {
    modelType: "qwen2",
    hiddenSize: 8,
    numLayers: 1,
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: 8,
    rmsNormEps: 1e-6,
    ropeTheta,
    mropeSection: null,
    unsupportedRopeScaling: null,
    vocabSize: 8,
    tieWordEmbeddings: false,
    attentionBias: false,
    tokens: { bos: null, eos: null, imagePad: null, visionStart: null, visionEnd: null, videoPad: null },
    imageRoutedTokenIds: [],
  };
}

/** A one-layer capture from explicit pre-RoPE q [T × n_h·d_h] and k [T × n_kv·d_h] at text positions 0..T−1. */
export function handCapture(config: TextModelConfig, q: Float64Array, k: Float64Array, modality?: Uint8Array): SequenceCapture {
  const T = k.length / (config.numKvHeads * config.headDim);
  const pos = new Int32Array(3 * T);
  for (let s = 0; s < 3; s++) for (let t = 0; t < T; t++) pos[s * T + t] = t;
  const rope = ropeTables(pos, T, ropeInvFreq(config.headDim, config.ropeTheta), pairStreams(config.headDim, null));
  return { length: T, modality: modality ?? new Uint8Array(T), rope, layers: [{ x: new Float64Array(T * config.hiddenSize), q, k }] };
}


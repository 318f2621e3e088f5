// Picks the kept RoPE pairs per (layer, KV head) for a strategy (docs/method.md §3.1): high / low / uniform are data-free;
// 2-norm and mkl (the modality-adaptive attention-KL ranking) rank pairs on calibration captures.

import type { TextModelConfig } from "../../checkpoint/config.ts";
import type { SequenceCapture } from "../calibration/capture.ts";
import { attentionKlScores } from "./attention-kl.ts";
import { RopeSelectionError } from "./errors.ts";
import { fixedStrategyPairs } from "./fixed.ts";
import { rankPairs, topPairs, type PairScores } from "./ranking.ts";
import { meanPairNorms, twoNormScores } from "./two-norm.ts";

export const ROPE_STRATEGIES = ["high", "low", "uniform", "2-norm", "mkl"] as const;
export type RopeStrategy = (typeof ROPE_STRATEGIES)[number];

/** Strategies that need calibration data. */
export function needsCalibration(s: RopeStrategy): boolean {
  return s === "2-norm" || s === "mkl";
}

export interface PairSelection {
  readonly strategy: RopeStrategy;
  /** r: rope dims kept per KV head (2 × pairs). */
  readonly ropeDims: number;
  /** keptPairs[layer][kvHead], ascending. */
  readonly keptPairs: number[][][];
  /** The data-driven scores and ranks (null for the fixed strategies). */
  readonly scores: PairScores | null;
  readonly ranks: Int32Array | null;
}

/** Default r = d_h/4 (the VLM release: 32 of 128), rounded down to an even number. */
export function defaultRopeDims(headDim: number): number {
  return Math.max(2, 2 * Math.floor(headDim / 8));
}

export function checkRopeDims(ropeDims: number, headDim: number): void {
  if (!Number.isInteger(ropeDims) || ropeDims < 2 || ropeDims % 2 !== 0 || ropeDims > headDim) {
    throw new RopeSelectionError("bad_rope_dims", `rope dims must be an even integer in [2, ${headDim}] (2 per kept pair), got ${ropeDims}`);
  }
}

export function selectKeptPairs(
  strategy: RopeStrategy,
  config: TextModelConfig,
  ropeDims: number,
  captures?: readonly SequenceCapture[],
  onLayer?: (layer: number) => void,
): PairSelection {
  const { numLayers: L, numKvHeads: nkv, headDim: dh } = config;
  checkRopeDims(ropeDims, dh);
  const count = ropeDims / 2;
  if (strategy === "high" || strategy === "low" || strategy === "uniform") {
    const pairs = fixedStrategyPairs(strategy, dh / 2, count);
    const keptPairs = Array.from({ length: L }, () => Array.from({ length: nkv }, () => [...pairs]));
    return { strategy, ropeDims, keptPairs, scores: null, ranks: null };
  }
  if (strategy !== "2-norm" && strategy !== "mkl") {
    throw new RopeSelectionError("unknown_strategy", `unknown partial-RoPE strategy ${JSON.stringify(strategy)}; use ${ROPE_STRATEGIES.join(", ")}`);
  }
  if (!captures || captures.length === 0) {
    throw new RopeSelectionError("needs_calibration", `the ${strategy} strategy ranks pairs on calibration data; none was given`);
  }
  const scores = strategy === "2-norm" ? twoNormScores(meanPairNorms(captures, config)) : attentionKlScores(captures, config, onLayer);
  return { strategy, ropeDims, keptPairs: topPairs(scores, count), scores, ranks: rankPairs(scores) };
}

// Next-token agreement between the original and a converted model on calibration sequences (teacher-forced, one
// prefill per sequence): top-1 agreement and mean KL(P_orig ‖ P_conv) in nats over the positions that predict a text
// token (image-pad positions predict the vision tower's input, not language).

import type { CalibrationSequence } from "../calibration/calib-set.ts";
import { runVisionTower } from "../../runtime/vision/toy-tower.ts";
import { openEvalSession, type SessionSettings } from "./sessions.ts";
import type { LoadedDecoder, LoadedVlm } from "./vlm-dir.ts";

export interface AgreementReport {
  /** Fraction of positions where both models' argmax agree. */
  readonly top1: number;
  /** Mean KL(P_orig ‖ P_conv), nats. */
  readonly kl: number;
  readonly positions: number;
  readonly sequences: number;
}

function logSoftmax(logits: Float32Array, off: number, v: number, out: Float64Array): void {
  let m = -Infinity;
  for (let i = 0; i < v; i++) m = Math.max(m, logits[off + i]);
  let z = 0;
  for (let i = 0; i < v; i++) z += Math.exp(logits[off + i] - m);
  const lz = m + Math.log(z);
  for (let i = 0; i < v; i++) out[i] = logits[off + i] - lz;
}

function argmax(logits: Float32Array, off: number, v: number): number {
  let best = 0;
  for (let i = 1; i < v; i++) if (logits[off + i] > logits[off + best]) best = i;
  return best;
}

function allLogits(vlm: LoadedVlm, decoder: LoadedDecoder, seq: CalibrationSequence, settings: SessionSettings): Float32Array {
  const { session } = openEvalSession(decoder, vlm.imageGrid, settings);
  const pad = vlm.config.tokens.imagePad;
  const pads = seq.inputIds.filter((t) => t === pad).length;
  const imageEmbeds = pads > 0 ? runVisionTower(vlm.vision, seq.patches, pads / vlm.vision.cells) : undefined;
  return session.append(seq.inputIds, { imageEmbeds, logits: "all" });
}

/** The original decoder's logits for every position of every sequence (computed once, reused across configurations). */
export function referenceLogits(vlm: LoadedVlm, sequences: readonly CalibrationSequence[]): Float32Array[] {
  return sequences.map((seq) => allLogits(vlm, vlm.decoder, seq, {}));
}

/** Compares `converted` against `vlm`'s original decoder on `sequences` (pass `reference` to skip recomputing it). */
export function nextTokenAgreement(
  vlm: LoadedVlm,
  converted: LoadedDecoder,
  sequences: readonly CalibrationSequence[],
  settings: SessionSettings = {},
  reference?: readonly Float32Array[],
): AgreementReport {
  const v = vlm.config.vocabSize;
  const routed = vlm.config.imageRoutedTokenIds;
  const lp = new Float64Array(v);
  const lq = new Float64Array(v);
  let agree = 0;
  let kl = 0;
  let n = 0;
  for (const [si, seq] of sequences.entries()) {
    const a = reference?.[si] ?? allLogits(vlm, vlm.decoder, seq, {});
    const b = allLogits(vlm, converted, seq, settings);
    for (let t = 0; t + 1 < seq.inputIds.length; t++) {
      if (routed.includes(seq.inputIds[t + 1])) continue;
      const off = t * v;
      if (argmax(a, off, v) === argmax(b, off, v)) agree++;
      logSoftmax(a, off, v, lp);
      logSoftmax(b, off, v, lq);
      for (let i = 0; i < v; i++) kl += Math.exp(lp[i]) * (lp[i] - lq[i]);
      n++;
    }
  }
  return { top1: agree / n, kl: kl / n, positions: n, sequences: sequences.length };
}

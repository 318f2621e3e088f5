// Per-layer, per-modality uncentred second moments of the attention input, S_m = (1/N_m) Σ_{x ∈ m} x xᵀ (docs/method.md
// §6.1–6.2), accumulated in f64 from calibration captures. Tokens are split by the routing rule of inference.

import type { TextModelConfig } from "../../checkpoint/config.ts";
import type { SequenceCapture } from "../calibration/capture.ts";
import { Modality } from "../../format/cache-spec.ts";
import { SecondMomentAccumulator } from "../linalg/second-moment.ts";
import type { Matrix } from "../linalg/matrix.ts";

export interface LayerMoments {
  /** [hidden × hidden], normalised by the token count (null when the modality had no tokens). */
  readonly text: Matrix | null;
  readonly image: Matrix | null;
  readonly textTokens: number;
  readonly imageTokens: number;
}

export function modalityMoments(captures: readonly SequenceCapture[], config: TextModelConfig): LayerMoments[] {
  const d = config.hiddenSize;
  return Array.from({ length: config.numLayers }, (_, l) => {
    const text = new SecondMomentAccumulator(d);
    const image = new SecondMomentAccumulator(d);
    for (const c of captures) {
      text.add(c.layers[l].x, c.modality, Modality.text);
      image.add(c.layers[l].x, c.modality, Modality.image);
    }
    return {
      text: text.count > 0 ? text.secondMoment() : null,
      image: image.count > 0 ? image.secondMoment() : null,
      textTokens: text.count,
      imageTokens: image.count,
    };
  });
}

// Per-modality calibration second moments for MD-SVD (docs/method.md §6.1): one f64 accumulator per modality, fed with a
// layer's attention-input rows and a per-token image mask. The mask comes from the model's routing rule (token ids),
// which the caller owns — the same rule must route tokens at inference.
import { defaultKernels } from "../linalg/default-kernels.ts";
import type { LinalgKernels } from "../linalg/kernels.ts";
import type { Matrix } from "../linalg/matrix.ts";
import { SecondMomentAccumulator } from "../linalg/second-moment.ts";

export class ModalitySecondMoments {
  readonly image: SecondMomentAccumulator;
  readonly text: SecondMomentAccumulator;

  constructor(hidden: number, options: { kernels?: LinalgKernels; batchRows?: number } = {}) {
    const kernels = options.kernels ?? defaultKernels();
    this.image = new SecondMomentAccumulator(hidden, { kernels, batchRows: options.batchRows });
    this.text = new SecondMomentAccumulator(hidden, { kernels, batchRows: options.batchRows });
  }

  /** Row-major rows (tokens × hidden) of one sequence; isImage[t] = 1 routes token t to the image moment. */
  add(rows: Float32Array | Float64Array, isImage: Uint8Array): void {
    this.image.add(rows, isImage, 1);
    this.text.add(rows, isImage, 0);
  }

  /** S_img and S_txt, each (1/N_m)·Σ x·xᵀ over its own tokens. */
  moments(): { image: Matrix; text: Matrix; imageTokens: number; textTokens: number } {
    return { image: this.image.secondMoment(), text: this.text.secondMoment(), imageTokens: this.image.count, textTokens: this.text.count };
  }
}

// Runs the original model over calibration sequences and keeps, per layer and sequence, what conversion measures:
// the attention input x (after the input RMSNorm), the pre-RoPE q and k (biases added), the token modalities and the
// RoPE angle tables. 2-norm, the attention-KL ranking and MD-SVD all start from these.

import { createGqaSession } from "../../runtime/create-session.ts";
import type { AttentionCapture } from "../../runtime/attention-backend.ts";
import type { RopeTables } from "../../runtime/rope.ts";
import type { ImageGrid } from "../../runtime/rope-index.ts";
import { runVisionTower, type VisionTowerWeights } from "../../runtime/vision/toy-tower.ts";
import type { GqaModelWeights } from "../../runtime/weights.ts";
import type { CalibrationSequence } from "./calib-set.ts";
import { CalibrationError } from "./errors.ts";

/** One layer of one calibration sequence. */
export interface LayerCapture {
  /** [T × hidden] */
  readonly x: Float64Array;
  /** [T × n_h·d_h] pre-RoPE, bias added, original head layout. */
  readonly q: Float64Array;
  /** [T × n_kv·d_h] */
  readonly k: Float64Array;
}

export interface SequenceCapture {
  readonly length: number;
  /** Modality per token (0 text, 1 image), routed by token id. */
  readonly modality: Uint8Array;
  /** cos/sin per token and pair (M-RoPE streams already applied). */
  readonly rope: RopeTables;
  /** One entry per layer. */
  readonly layers: readonly LayerCapture[];
}

export interface CaptureOptions {
  readonly vision?: VisionTowerWeights;
  readonly imageGrid?: ImageGrid;
  /** Called after each sequence. */
  readonly onSequence?: (done: number, total: number) => void;
}

/** Forwards every sequence through the original model in one block, capturing each layer's attention inputs. */
export function captureCalibration(model: GqaModelWeights, sequences: readonly CalibrationSequence[], opts: CaptureOptions = {}): SequenceCapture[] {
  const pad = model.config.tokens.imagePad;
  return sequences.map((seq, i) => {
    const pads = pad === null ? 0 : seq.inputIds.filter((t) => t === pad).length;
    let imageEmbeds: Float32Array | undefined = seq.imageEmbeds;
    if (pads > 0 && imageEmbeds === undefined) {
      if (!opts.vision) throw new CalibrationError("bad_sequence", `calibration sequence ${i} has image tokens but no vision tower was given`);
      const images = seq.patches.length / (opts.vision.cells * opts.vision.patchDim);
      if (!Number.isInteger(images) || images * opts.vision.cells !== pads) {
        throw new CalibrationError("bad_sequence", `calibration sequence ${i}: ${pads} image-pad tokens but patches for ${images} images of ${opts.vision.cells} cells`);
      }
      imageEmbeds = runVisionTower(opts.vision, seq.patches, images);
    }
    const { session } = createGqaSession(model, { defaultImageGrid: opts.imageGrid });
    const layers: LayerCapture[] = [];
    let first: AttentionCapture | null = null;
    session.append(seq.inputIds, {
      imageEmbeds,
      ...(seq.imageGrids !== undefined ? { imageGrids: seq.imageGrids } : {}),
      logits: "none",
      hook: (c) => {
        first ??= c;
        layers[c.layer] = { x: c.x, q: c.q!, k: c.k! };
      },
    });
    const f = first as AttentionCapture | null;
    if (f === null) throw new CalibrationError("no_tokens", `calibration sequence ${i} produced no attention capture`);
    opts.onSequence?.(i + 1, sequences.length);
    return { length: seq.inputIds.length, modality: f.block.modality, rope: f.block.rope, layers };
  });
}

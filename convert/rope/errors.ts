// Typed errors of partial-RoPE selection.

import { MlaError } from "../../format/errors.ts";
export type RopeSelectionErrorCode = "bad_rope_dims" | "unknown_strategy" | "needs_calibration" | "bad_scores";

export class RopeSelectionError extends MlaError<RopeSelectionErrorCode> {
  override readonly name = "RopeSelectionError";
  constructor(code: RopeSelectionErrorCode, message: string) {
    super(code, message);
  }
}

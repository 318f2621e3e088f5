// Typed errors of partial-RoPE selection.

export type RopeSelectionErrorCode = "bad_rope_dims" | "unknown_strategy" | "needs_calibration" | "bad_scores";

export class RopeSelectionError extends Error {
  override readonly name = "RopeSelectionError";
  constructor(
    readonly code: RopeSelectionErrorCode,
    message: string,
  ) {
    super(message);
  }
}

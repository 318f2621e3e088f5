// Typed errors of the conversion pipeline: inputs the converter refuses before doing any work.

export type ConversionErrorCode = "unsupported_architecture" | "d_kv_too_large" | "bad_options" | "needs_calibration" | "empty_modality";

export class ConversionError extends Error {
  override readonly name = "ConversionError";
  constructor(
    readonly code: ConversionErrorCode,
    message: string,
  ) {
    super(message);
  }
}

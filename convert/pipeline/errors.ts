// Typed errors of the conversion pipeline: inputs the converter refuses before doing any work.

import { MlaError } from "../../format/errors.ts";
export type ConversionErrorCode = "unsupported_architecture" | "d_kv_too_large" | "bad_options" | "needs_calibration" | "empty_modality";

export class ConversionError extends MlaError<ConversionErrorCode> {
  override readonly name = "ConversionError";
  constructor(code: ConversionErrorCode, message: string) {
    super(code, message);
  }
}

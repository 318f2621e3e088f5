// Typed errors of calibration: unreadable calibration data, or data the model cannot run.

import { MlaError } from "../../format/errors.ts";
export type CalibrationErrorCode = "bad_calibration_file" | "bad_sequence" | "no_tokens" | "no_forward";

export class CalibrationError extends MlaError<CalibrationErrorCode> {
  override readonly name = "CalibrationError";
  constructor(code: CalibrationErrorCode, message: string) {
    super(code, message);
  }
}

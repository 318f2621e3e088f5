// Typed errors of calibration: unreadable calibration data, or data the model cannot run.

export type CalibrationErrorCode = "bad_calibration_file" | "bad_sequence" | "no_tokens";

export class CalibrationError extends Error {
  override readonly name = "CalibrationError";
  constructor(
    readonly code: CalibrationErrorCode,
    message: string,
  ) {
    super(message);
  }
}

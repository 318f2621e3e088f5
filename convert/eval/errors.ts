// Typed errors of the fidelity evaluation: unreadable eval/calibration files and invalid evaluation options.

import { MlaError } from "../../format/errors.ts";
export type EvalErrorCode = "bad_eval_file" | "bad_options" | "bad_model_dir";

/** A problem with an evaluation input; `code` is stable, the message names the file, line or option. */
export class EvalError extends MlaError<EvalErrorCode> {
  override readonly name = "EvalError";
  constructor(code: EvalErrorCode, message: string) {
    super(code, message);
  }
}

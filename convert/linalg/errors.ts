// Typed errors of the dense linear algebra: bad shapes and arguments, non-finite input, failed convergence, kernels.

import { MlaError } from "../../format/errors.ts";
export type LinalgErrorCode =
  | "shape_mismatch"
  | "bad_argument"
  | "not_finite"
  | "no_convergence"
  | "wasm_unavailable"
  | "detached_buffer";

/** Any failure of a linalg routine. `code` is stable; the message names the routine and what was wrong. */
export class LinalgError extends MlaError<LinalgErrorCode> {
  override readonly name = "LinalgError";
  constructor(code: LinalgErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

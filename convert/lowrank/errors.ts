// Typed errors of the low-rank KV factorisations: inconsistent shapes, impossible ranks, bad damping settings.

import { MlaError } from "../../format/errors.ts";
export type LowRankErrorCode = "shape_mismatch" | "bad_rank" | "bad_option";

/** A factorisation could not run on the given weights/options. `code` is stable; the message says what is wrong. */
export class LowRankError extends MlaError<LowRankErrorCode> {
  override readonly name = "LowRankError";
  constructor(code: LowRankErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

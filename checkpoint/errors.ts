// Typed errors of checkpoint I/O: safetensors parsing, sharded indexes, config.json and tensor lookup.

import { MlaError } from "../format/errors.ts";
export type CheckpointErrorCode =
  | "bad_header"
  | "bad_index"
  | "bad_config"
  | "missing_tensor"
  | "duplicate_tensor"
  | "shape_mismatch"
  | "unsupported_dtype"
  | "unknown_naming"
  | "bad_layout"
  | "rank_file_mismatch" // a released checkpoint's qk_tensor_path file does not fit its config (another model's ranks)
  | "io";

/** Any failure to read, interpret or write a checkpoint. `code` is stable; the message says what and where. */
export class CheckpointError extends MlaError<CheckpointErrorCode> {
  override readonly name = "CheckpointError";
  constructor(code: CheckpointErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

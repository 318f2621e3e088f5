// Typed errors of `mla-edge pack`: each names the tensor or file at fault.

import { MlaError } from "../../format/errors.ts";

export type PackErrorCode =
  | "missing_tensor"
  | "missing_file"
  | "shape_mismatch"
  | "unknown_family"
  | "bad_config"
  | "unsupported_dtype"
  | "bad_option"
  | "out_exists"
  | "disk_full"
  | "permission_denied"
  | "row_too_large"
  | "io";

export class PackError extends MlaError<PackErrorCode> {
  override readonly name = "PackError";
  constructor(
    code: PackErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

/** Maps a Node fs error on `path` to a PackError (ENOSPC → disk_full, EACCES/EPERM/EROFS → permission_denied). */
export function packIoError(e: unknown, path: string, action: string): PackError {
  if (e instanceof PackError) return e;
  const code = (e as { code?: unknown } | null)?.code;
  const msg = (e as Error)?.message ?? String(e);
  if (code === "ENOSPC" || code === "EDQUOT") return new PackError("disk_full", `disk full while ${action} ${path}: ${msg}`, { cause: e });
  if (code === "EACCES" || code === "EPERM" || code === "EROFS") {
    return new PackError("permission_denied", `permission denied while ${action} ${path}: ${msg}`, { cause: e });
  }
  return new PackError("io", `${action} ${path} failed: ${msg}`, { cause: e });
}

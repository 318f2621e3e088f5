// CLI errors: a UserError is the user's to fix (bad flag, missing file) and prints as one line with exit code 1.

import { MlaError } from "../../format/errors.ts";
export type UserErrorCode = "usage" | "invalid_argument" | "unknown_command" | "file_not_found" | "invalid_file";

/** A problem with the command line or its inputs; main() prints the message on stderr and exits 1. */
export class UserError extends MlaError<UserErrorCode> {
  override readonly name = "UserError";
  constructor(code: UserErrorCode, message: string) {
    super(code, message);
  }
}

// Typed failures of the client runtime (model loading, chat templating, the session cache bridge, restores).

export type RuntimeErrorCode =
  /** A restore stream or stored chunk does not describe a complete, consistent cache of this model. */
  | "bad_restore"
  /** The session's codec or chunk size cannot store this model's cache (e.g. a group that does not divide D_c). */
  | "bad_codec"
  /** Messages the chat template cannot express (unknown role, unsupported part, wrong image size). */
  | "bad_messages"
  /** The model files are missing something or disagree with each other. */
  | "bad_model"
  /** An image the runtime cannot read: not PNG/JPEG, corrupt, empty, or an aspect ratio the processor refuses. */
  | "unsupported_image"
  /** An image larger than the decoder's pixel limit (a decompression-bomb guard, checked before decoding). */
  | "too_many_pixels"
  /** The runtime's view of the session and the store's disagree (e.g. another writer appended a turn). */
  | "out_of_sync"
  /** The operation was aborted through its AbortSignal. */
  | "aborted";

export class RuntimeError extends Error {
  override readonly name = "RuntimeError";
  constructor(
    readonly code: RuntimeErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

// The one base class of the errors below the SDK and the Worker (format/, checkpoint/, kernels/, runtime/, convert/):
// every error carries a stable `code` callers switch on, and `name` says its class. The SDK's root is MlaEdgeError
// (client/core/error.ts), the Worker's is ApiError (worker/errors.ts), which adds the HTTP status.

export abstract class MlaError<Code extends string = string> extends Error {
  override readonly name: string = "MlaError";
  readonly code: Code;
  constructor(code: Code, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

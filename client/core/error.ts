// SDK errors, Stainless-style: MlaEdgeError at the root, APIError carrying the HTTP status, the `{error:{code,message}}`
// body, the request id and our error `code`; APIError.generate picks the subclass by status.

import type { ApiErrorCode, ErrorBody } from "../../format/wire/messages.ts";

export class MlaEdgeError extends Error {
  override readonly name: string = "MlaEdgeError";
}

export class APIError<TStatus extends number | undefined = number | undefined> extends MlaEdgeError {
  override readonly name: string = "APIError";
  /** HTTP status, undefined when no response came. */
  readonly status: TStatus;
  readonly headers: Headers | undefined;
  /** The parsed `error` object of the body, when it had one. */
  readonly error: ErrorBody["error"] | undefined;
  /** Our stable error code (`not_found`, `turn_conflict`, …), when the body named one. */
  readonly code: ApiErrorCode | undefined;
  /** Refines `code` (e.g. `tenant_quota` for a 413 `too_large`, a chunk error for `invalid_chunk`), when given. */
  readonly reason: string | undefined;
  readonly requestId: string | null;

  constructor(status: TStatus, body: unknown, message: string | undefined, headers: Headers | undefined) {
    const error = errorOfBody(body);
    super(APIError.makeMessage(status, error, message));
    this.status = status;
    this.headers = headers;
    this.error = error;
    this.code = error?.code;
    this.reason = error?.reason;
    this.requestId = headers?.get("x-request-id") ?? headers?.get("cf-ray") ?? null;
  }

  private static makeMessage(status: number | undefined, error: ErrorBody["error"] | undefined, message: string | undefined): string {
    const detail = error ? `${error.code}: ${error.message}` : message;
    if (status !== undefined && detail) return `${status} ${detail}`;
    if (status !== undefined) return `${status} status code (no body)`;
    return detail ?? "(no status code or body)";
  }

  /** The subclass for `status`: 400/401/403/404/409/413/422/429/≥500, or APIConnectionError without a status. */
  static generate(status: number | undefined, body: unknown, message: string | undefined, headers: Headers | undefined): APIError {
    if (status === undefined || headers === undefined) return new APIConnectionError({ message });
    if (status === 400) return new BadRequestError(status, body, message, headers);
    if (status === 401) return new AuthenticationError(status, body, message, headers);
    if (status === 403) return new PermissionDeniedError(status, body, message, headers);
    if (status === 404) return new NotFoundError(status, body, message, headers);
    if (status === 409) return new ConflictError(status, body, message, headers);
    if (status === 413) return new PayloadTooLargeError(status, body, message, headers);
    if (status === 422) return new UnprocessableEntityError(status, body, message, headers);
    if (status === 429) return new RateLimitError(status, body, message, headers);
    if (status >= 500) return new InternalServerError(status, body, message, headers);
    return new APIError(status, body, message, headers);
  }
}

function errorOfBody(body: unknown): ErrorBody["error"] | undefined {
  if (body === null || typeof body !== "object") return undefined;
  const e = (body as { error?: unknown }).error;
  if (e === null || typeof e !== "object") return undefined;
  const { code, message } = e as { code?: unknown; message?: unknown };
  if (typeof code !== "string" || typeof message !== "string") return undefined;
  return e as ErrorBody["error"];
}

export class APIUserAbortError extends APIError<undefined> {
  override readonly name: string = "APIUserAbortError";
  constructor({ message }: { message?: string } = {}) {
    super(undefined, undefined, message ?? "Request was aborted.", undefined);
  }
}

export class APIConnectionError extends APIError<undefined> {
  override readonly name: string = "APIConnectionError";
  constructor({ message, cause }: { message?: string | undefined; cause?: Error | undefined } = {}) {
    super(undefined, undefined, message ?? "Connection error.", undefined);
    if (cause) this.cause = cause;
  }
}

export class APIConnectionTimeoutError extends APIConnectionError {
  override readonly name: string = "APIConnectionTimeoutError";
  constructor({ message }: { message?: string } = {}) {
    super({ message: message ?? "Request timed out." });
  }
}

export class BadRequestError extends APIError<400> {
  override readonly name: string = "BadRequestError";
}
export class AuthenticationError extends APIError<401> {
  override readonly name: string = "AuthenticationError";
}
export class PermissionDeniedError extends APIError<403> {
  override readonly name: string = "PermissionDeniedError";
}
export class NotFoundError extends APIError<404> {
  override readonly name: string = "NotFoundError";
}
export class ConflictError extends APIError<409> {
  override readonly name: string = "ConflictError";
}
export class PayloadTooLargeError extends APIError<413> {
  override readonly name: string = "PayloadTooLargeError";
}
export class UnprocessableEntityError extends APIError<422> {
  override readonly name: string = "UnprocessableEntityError";
}
export class RateLimitError extends APIError<429> {
  override readonly name: string = "RateLimitError";
}
export class InternalServerError extends APIError<number> {
  override readonly name: string = "InternalServerError";
}

/** A stream or response body that broke the wire format (bad frame, bad JSON, error frame mid-stream). */
export class StreamFormatError extends MlaEdgeError {
  override readonly name: string = "StreamFormatError";
  constructor(
    readonly code: "bad_frame" | "bad_json" | "unexpected_frame" | "truncated",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The store speaks another version of the framed protocol than this SDK (format/wire/frames.ts WIRE_FORMAT_VERSION):
 * a restore response of another version, or the store's own `unsupported_format` refusal of this SDK's frames.
 */
export class UnsupportedFormatError extends MlaEdgeError {
  override readonly name: string = "UnsupportedFormatError";
  readonly code = "unsupported_format";
  constructor(
    /** The version this SDK speaks. */
    readonly clientVersion: number,
    /** The version the store's response named (1 for the unversioned media type), null when it named none usable. */
    readonly serverVersion: number | null,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

// The Worker's errors. WorkerError is the one base class (a stable `code` on every error the Worker throws); ApiError
// is the HTTP layer's: it carries its status and renders `{error:{code,message}}`.
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ApiErrorCode, ErrorBody } from "../format/wire/messages.ts";

export abstract class WorkerError<Code extends string = string> extends Error {
  override readonly name: string = "WorkerError";
  readonly code: Code;
  constructor(code: Code, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export class ApiError extends WorkerError<ApiErrorCode> {
  override readonly name = "ApiError";
  constructor(
    readonly status: ContentfulStatusCode,
    code: ApiErrorCode,
    message: string,
    readonly reason?: string,
  ) {
    super(code, message);
  }

  body(): ErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.reason !== undefined ? { reason: this.reason } : {}) } };
  }

  getResponse(): Response {
    return Response.json(this.body(), { status: this.status });
  }
}

export const badRequest = (message: string, reason?: string): ApiError => new ApiError(400, "bad_request", message, reason);
export const notFound = (message = "no such session"): ApiError => new ApiError(404, "not_found", message);
export const turnConflict = (head: number, expected: number): ApiError =>
  new ApiError(409, "turn_conflict", `expectedSeq ${expected} but the session head is ${head}: another writer appended or truncated first; reload the manifest`);
export const tooLarge = (message: string): ApiError => new ApiError(413, "too_large", message);
export const invalidChunk = (message: string, reason: string): ApiError => new ApiError(422, "invalid_chunk", message, reason);
export const unsupportedFormat = (status: 400 | 406 | 415, message: string): ApiError => new ApiError(status, "unsupported_format", message);

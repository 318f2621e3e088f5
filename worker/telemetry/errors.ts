// The telemetry routes' error: status + stable code, rendered as `{error:{code,message}}` like the store's ApiError, and
// exposing getResponse() so Hono's default handler (or the main app's) renders it unchanged.
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { WorkerError } from "../errors.ts";

export type TelemetryErrorCode = "unauthorized" | "forbidden" | "invalid_report" | "too_large" | "bad_request";

export class TelemetryError extends WorkerError<TelemetryErrorCode> {
  override readonly name = "TelemetryError";
  constructor(
    readonly status: ContentfulStatusCode,
    code: TelemetryErrorCode,
    message: string,
  ) {
    super(code, message);
  }

  getResponse(): Response {
    return Response.json({ error: { code: this.code, message: this.message } }, { status: this.status });
  }
}

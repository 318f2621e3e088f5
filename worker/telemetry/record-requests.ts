// Hono middleware recording every classified request: latency, bytes in/out, status and error code. Only a clock read
// and a push happen on the request path; the send to the MetricsObject is batched under waitUntil (recorder.ts).
import type { MiddlewareHandler } from "hono";
import { telemetryEnabled, type TelemetryEnv } from "./env.ts";
import type { Operation, OperationEvent } from "./events.ts";
import { enqueue, executionContextOf } from "./recorder.ts";
import { defaultRouteClassifier, type RouteClass, type RouteClassifier } from "./route-classifier.ts";

export interface RecordRequestsOptions {
  /** Which operation a request is; null skips it. Defaults to the store's routes. */
  readonly classify?: RouteClassifier;
  /**
   * Operations whose response bodies are streamed (no Content-Length): their bytes are counted and their latency
   * taken at the last byte by piping the body through a counter. Others are timed at the headers and count
   * Content-Length (0 when absent), so small JSON answers (append) pay nothing extra. Default: ["restore"].
   */
  readonly streamedOps?: readonly Operation[];
}

/** Content-Length as a number, or 0 when absent/invalid (chunked bodies: the store reports exact bytes itself). */
const contentLength = (headers: Headers): number => {
  const n = Number(headers.get("content-length") ?? "");
  return Number.isFinite(n) && n > 0 ? n : 0;
};

/** The `code` of the error Hono's onError turned into this response, if it carried one (the store's ApiError does). */
function errorCodeOf(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null || !("code" in error)) return undefined;
  const code = (error as { code: unknown }).code;
  // Bounded label values: codes are short identifiers; anything else is not a code.
  return typeof code === "string" && /^[a-z0-9_]{1,48}$/.test(code) ? code : undefined;
}

/**
 * Records latency (to response headers; for streamed operations, to the last byte), request/response bytes, status
 * and error code of every request the classifier accepts.
 *
 * @example app.use("*", recordRequests())  // before the routes
 */
export function recordRequests(options: RecordRequestsOptions = {}): MiddlewareHandler<{ Bindings: TelemetryEnv }> {
  const classify = options.classify ?? defaultRouteClassifier;
  const streamed = new Set<Operation>(options.streamedOps ?? ["restore"]);
  return async function recordRequests(c, next) {
    if (!telemetryEnabled(c.env)) return next();
    const route = classify(c.req.method, c.req.path);
    if (route === null) return next();
    const start = performance.now();
    const bytesIn = contentLength(c.req.raw.headers);
    await next();
    const res = c.res;
    // A WebSocket upgrade is not an operation: the route records each turn sent over the socket (routes/turns.ts).
    if (res.status === 101) return;
    const ctx = executionContextOf(c);
    const event = (durationMs: number, bytesOut: number): OperationEvent => build(route, res.status, errorCodeOf(c.error), durationMs, bytesIn, bytesOut);
    const length = res.headers.get("content-length");
    // Streamed bodies (restore) are timed and counted through to their last byte; others at the headers. A body the
    // client abandons never reaches flush() and is not recorded.
    if (streamed.has(route.op) && res.body !== null && length === null) {
      let bytesOut = 0;
      const counter = new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          bytesOut += chunk.byteLength;
          controller.enqueue(chunk);
        },
        flush() {
          enqueue(c.env, ctx, event(performance.now() - start, bytesOut));
        },
      });
      c.res = new Response(res.body.pipeThrough(counter), res);
      return;
    }
    enqueue(c.env, ctx, event(performance.now() - start, contentLength(res.headers)));
  };
}

function build(route: RouteClass, status: number, errorCode: string | undefined, durationMs: number, bytesIn: number, bytesOut: number): OperationEvent {
  return {
    kind: "operation",
    op: route.op,
    status,
    durationMs,
    bytesIn,
    bytesOut,
    ...(route.sessionId !== undefined ? { sessionId: route.sessionId } : {}),
    ...(errorCode !== undefined ? { errorCode } : {}),
  };
}

// The telemetry sub-app: GET /metrics (Prometheus text), GET /dashboard (+ assets and JSON data), POST /v1/telemetry
// (client SDK reports). Mount with `app.route("/", createTelemetryApp())`; routes are absolute paths.
import { Hono, type MiddlewareHandler } from "hono";
import {
  ClientReportError,
  MAX_REPORT_BODY_BYTES,
  parseClientReportBatch,
  type ClientReportAccepted,
} from "../../format/telemetry/client-report.ts";
import { DASHBOARD_PAGE } from "./dashboard/page.ts";
import { DASHBOARD_SCRIPT } from "./dashboard/script.ts";
import { UPLOT_SCRIPT, UPLOT_STYLES } from "./dashboard/uplot-assets.ts";
import { metricsStub, type TelemetryEnv } from "./env.ts";
import { TelemetryError } from "./errors.ts";
import { EXPOSITION_CONTENT_TYPE } from "./exposition.ts";
import { operatorAuth } from "./operator-auth.ts";
import { enqueue, executionContextOf, flushTelemetry } from "./recorder.ts";

export interface TelemetryAppOptions {
  /**
   * Guard for `POST /v1/telemetry` (e.g. the store's tenant auth). Default: open — reports are validated, bounded
   * (MAX_REPORT_BODY_BYTES, MAX_REPORTS_PER_BATCH) and only move counters, but an open route lets anyone skew them.
   */
  readonly reportAuth?: MiddlewareHandler<{ Bindings: TelemetryEnv }>;
}

/** Default (and largest) dashboard window, seconds: the retained hour of slots. */
const DEFAULT_WINDOW_S = 3600;
const DEFAULT_SESSION_ENTRIES = 200;

// The page loads only same-origin scripts and styles; uPlot sets inline style attributes, hence 'unsafe-inline' for style.
const DASHBOARD_CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:";

const asset = (body: string, type: string): Response =>
  new Response(body, { headers: { "content-type": type, "cache-control": "public, max-age=3600", "x-content-type-options": "nosniff" } });

function intParam(raw: string | undefined, fallback: number, min: number, max: number, name: string): number {
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) throw new TelemetryError(400, "bad_request", `${name} must be an integer in [${min}, ${max}]`);
  return v;
}

export function createTelemetryApp(options: TelemetryAppOptions = {}): Hono<{ Bindings: TelemetryEnv }> {
  const app = new Hono<{ Bindings: TelemetryEnv }>();
  const operator = operatorAuth();

  app.onError((err, c) => {
    if (err instanceof TelemetryError) return err.getResponse();
    console.error("telemetry route failed", err);
    return c.json({ error: { code: "internal", message: "telemetry route failed" } }, 500);
  });

  app.get("/metrics", operator, async (c) => {
    await flushTelemetry(c.env);
    const text = await metricsStub(c.env).exposition();
    return c.body(text, 200, { "content-type": EXPOSITION_CONTENT_TYPE, "cache-control": "no-store" });
  });

  app.get("/dashboard", (c) =>
    c.html(DASHBOARD_PAGE, 200, { "content-security-policy": DASHBOARD_CSP, "cache-control": "no-store", "referrer-policy": "no-referrer" }),
  );
  app.get("/dashboard/assets/uPlot.iife.min.js", () => asset(UPLOT_SCRIPT, "text/javascript; charset=utf-8"));
  app.get("/dashboard/assets/uPlot.min.css", () => asset(UPLOT_STYLES, "text/css; charset=utf-8"));
  app.get("/dashboard/assets/dashboard.js", () => asset(DASHBOARD_SCRIPT, "text/javascript; charset=utf-8"));

  app.get("/dashboard/api/series", operator, async (c) => {
    const windowS = intParam(c.req.query("window"), DEFAULT_WINDOW_S, 10, DEFAULT_WINDOW_S, "window");
    await flushTelemetry(c.env);
    return c.json(await metricsStub(c.env).series(windowS * 1000), 200, { "cache-control": "no-store" });
  });

  app.get("/dashboard/api/sessions/:id", operator, async (c) => {
    const limit = intParam(c.req.query("limit"), DEFAULT_SESSION_ENTRIES, 1, 1000, "limit");
    await flushTelemetry(c.env);
    return c.json(await metricsStub(c.env).session(c.req.param("id"), limit), 200, { "cache-control": "no-store" });
  });

  const reportAuth: MiddlewareHandler<{ Bindings: TelemetryEnv }> = options.reportAuth ?? (async (_c, next) => next());
  app.post("/v1/telemetry", reportAuth, async (c) => {
    const declared = Number(c.req.header("content-length") ?? "0");
    if (declared > MAX_REPORT_BODY_BYTES) throw new TelemetryError(413, "too_large", `report body above ${MAX_REPORT_BODY_BYTES} bytes`);
    const text = await c.req.text();
    if (text.length > MAX_REPORT_BODY_BYTES) throw new TelemetryError(413, "too_large", `report body above ${MAX_REPORT_BODY_BYTES} bytes`);
    let batch;
    try {
      batch = parseClientReportBatch(JSON.parse(text));
    } catch (err) {
      if (err instanceof ClientReportError) throw new TelemetryError(400, "invalid_report", err.message);
      throw new TelemetryError(400, "invalid_report", "body is not valid JSON");
    }
    enqueue(c.env, executionContextOf(c), ...batch.reports.map((report) => ({ kind: "client_report" as const, report })));
    return c.json({ accepted: batch.reports.length } satisfies ClientReportAccepted, 202);
  });

  return app;
}

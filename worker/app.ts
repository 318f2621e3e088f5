// The Hono app of the edge store: routes per resource, one error mapping to `{error:{code,message}}`.
import { Hono } from "hono";
import { FORMAT_VERSION } from "../format/chunk/constants.ts";
import { WIRE_FORMAT_VERSION } from "../format/wire/frames.ts";
import type { ErrorBody } from "../format/wire/messages.ts";
import type { AppEnv } from "./context.ts";
import { ApiError } from "./errors.ts";
import { admin } from "./routes/admin.ts";
import { chunks } from "./routes/chunks.ts";
import { sessions } from "./routes/sessions.ts";
import { turns } from "./routes/turns.ts";
import { usage } from "./routes/usage.ts";
import { createTelemetryApp, recordRequests } from "./telemetry/index.ts";

export const app = new Hono<AppEnv>();

// Telemetry first, so every route (errors included) is timed; recording runs under waitUntil, off the response path.
app.use("*", recordRequests());
app.route("/", createTelemetryApp());

// formatVersion: the framed protocol's version (2 = MessagePack control frames); chunkFormatVersion: the packed chunk's.
app.get("/v1/health", (c) => c.json({ ok: true, formatVersion: WIRE_FORMAT_VERSION, chunkFormatVersion: FORMAT_VERSION }));
app.route("/v1/sessions", sessions);
app.route("/v1/sessions", turns);
app.route("/v1/sessions", chunks);
app.route("/v1/admin", admin);
app.route("/v1/usage", usage);

app.notFound((c) => c.json({ error: { code: "not_found", message: `no route ${c.req.method} ${new URL(c.req.url).pathname}` } } satisfies ErrorBody, 404));

app.onError((err, c) => {
  if (err instanceof ApiError) return err.getResponse();
  console.error(`mla-edge: unhandled ${err.name}: ${err.message}`);
  return c.json({ error: { code: "internal", message: "internal error" } } satisfies ErrorBody, 500);
});

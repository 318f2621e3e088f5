// Test-only Worker mounting the telemetry module alone, the way docs/telemetry.md "Wiring" tells the main Worker to:
// recordRequests() before the routes, the telemetry sub-app, and stand-in store routes that answer like the real ones.
import { Hono } from "hono";
import { createTelemetryApp, MetricsObject, recordEvent, recordRequests, type StoreEvent, type TelemetryEnv } from "../../worker/telemetry/index.ts";

export { MetricsObject };

const MISSING_SESSION = "missing";

const app = new Hono<{ Bindings: TelemetryEnv }>();
app.use("*", recordRequests());
app.route("/", createTelemetryApp());

// Stand-ins for the store's routes so the classifier and middleware see real paths, statuses and error codes.
app.post("/v1/sessions/:id/turns", async (c) => {
  const body = await c.req.arrayBuffer();
  if (body.byteLength === 0) return c.json({ error: { code: "bad_request", message: "empty turn" } }, 400);
  // The real append waits on Durable Object writes. workerd's clock moves only across I/O, so a stand-in without any
  // could time at 0 ms; a 2 ms timer stands in for the storage round trip.
  await new Promise((resolve) => setTimeout(resolve, 2));
  return c.json({ seq: 1, bytes: body.byteLength }, 201);
});
/** Like the store's ApiError: a thrown error with a stable code, rendered by Hono through getResponse(). */
class StandInStoreError extends Error {
  override readonly name = "StandInStoreError";
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
  getResponse(): Response {
    return Response.json({ error: { code: this.code, message: this.message } }, { status: this.status });
  }
}

app.get("/v1/sessions/:id", (c) => {
  if (c.req.param("id") === MISSING_SESSION) throw new StandInStoreError(404, "not_found", "no such session");
  return c.json({ id: c.req.param("id"), head: 1 });
});
app.get("/v1/sessions/:id/chunks", () => {
  // A streamed body without Content-Length, like the restore stream: 3 × 1000 bytes.
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent === 3) return controller.close();
      sent += 1;
      controller.enqueue(new Uint8Array(1000));
    },
  });
  return new Response(body, { headers: { "content-type": "application/octet-stream" } });
});
// Test hook: lets scripted traffic report the store events the real store would report from its internals.
app.post("/test/store-event", async (c) => {
  recordEvent(c.env, c.executionCtx, (await c.req.json()) as StoreEvent);
  return c.body(null, 204);
});

export default app satisfies ExportedHandler<TelemetryEnv>;

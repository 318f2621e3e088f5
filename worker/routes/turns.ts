// Append: POST a framed body (application/vnd.mla-edge.frames), or send the same frames as WebSocket binary messages
// (one turn after another on one socket; each committed turn is answered with a JSON text message).
import { Hono } from "hono";
import { FrameReader, FRAMES_CONTENT_TYPE } from "../../format/wire/frames.ts";
import type { ErrorBody } from "../../format/wire/messages.ts";
import { appendTurn, type AppendTarget } from "../append/append-turn.ts";
import { sessionAuth } from "../auth/middleware.ts";
import { requireSecret, tenantSalt } from "../auth/tenants.ts";
import type { AppContext, AppEnv } from "../context.ts";
import { ApiError, badRequest, tooLarge } from "../errors.ts";
import { APPEND_FRAME_LIMITS, MAX_APPEND_BODY_BYTES } from "../limits.ts";
import { recordEvent } from "../telemetry/index.ts";

export const turns = new Hono<AppEnv>();

async function target(c: AppContext): Promise<AppendTarget> {
  const tenant = c.get("tenant");
  return {
    env: c.env,
    tenant,
    sessionId: c.req.param("id") ?? "",
    salt: await tenantSalt(requireSecret(c.env.SIGNING_SECRET, "SIGNING_SECRET"), tenant),
    ctx: c.executionCtx,
  };
}

turns.post("/:id/turns", sessionAuth("write"), async (c) => {
  const type = c.req.header("content-type")?.split(";")[0].trim();
  if (type !== FRAMES_CONTENT_TYPE) throw badRequest(`Content-Type must be ${FRAMES_CONTENT_TYPE}`);
  const length = Number(c.req.header("content-length") ?? "0");
  if (length > MAX_APPEND_BODY_BYTES) throw tooLarge(`append body of ${length} bytes is above ${MAX_APPEND_BODY_BYTES}: split the turn`);
  const body = c.req.raw.body;
  if (body === null) throw badRequest("append needs a framed body");
  const reader = new FrameReader(body, APPEND_FRAME_LIMITS);
  try {
    return c.json(await appendTurn(await target(c), reader, true), 201);
  } finally {
    await reader.cancel();
  }
});

/** Close codes 4000 + HTTP status carry the error class to clients that only see the close event. */
const closeCode = (status: number): number => 4000 + status;

turns.get("/:id/turns/ws", sessionAuth("write", { queryToken: true }), async (c) => {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") throw new ApiError(426, "bad_request", "expected a WebSocket upgrade (Upgrade: websocket)");
  const t = await target(c);
  const pair = new WebSocketPair();
  const [client, server] = [pair[0], pair[1]];
  server.accept();
  // WebSocket messages → one byte stream, so the HTTP frame reader serves both transports.
  let push: ReadableStreamDefaultController<Uint8Array> | undefined;
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      push = controller;
    },
  });
  // Binary messages may arrive as ArrayBuffer or Blob; a promise chain keeps their order while Blobs are read.
  let order: Promise<void> = Promise.resolve();
  // Each turn is one append in telemetry, timed from its first message to its answer (the 101 itself is not recorded).
  let turnStart: number | null = null;
  let turnBytesIn = 0;
  const recordTurn = (status: number, bytesOut: number, errorCode?: string): void => {
    recordEvent(c.env, c.executionCtx, {
      kind: "operation",
      op: "append",
      status,
      durationMs: performance.now() - (turnStart ?? performance.now()),
      bytesIn: turnBytesIn,
      bytesOut,
      sessionId: t.sessionId,
      ...(errorCode !== undefined ? { errorCode } : {}),
    });
    turnStart = null;
    turnBytesIn = 0;
  };
  server.addEventListener("message", (event) => {
    const data: unknown = event.data;
    turnStart ??= performance.now();
    turnBytesIn += typeof data === "string" ? data.length : data instanceof Blob ? data.size : (data as ArrayBuffer | ArrayBufferView).byteLength;
    order = order.then(async () => {
      if (typeof data === "string") push?.error(badRequest("send frames as binary messages"));
      else if (data instanceof Blob) push?.enqueue(new Uint8Array(await data.arrayBuffer()));
      else if (ArrayBuffer.isView(data)) push?.enqueue(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      else push?.enqueue(new Uint8Array(data as ArrayBuffer));
    });
  });
  server.addEventListener("close", () => {
    order = order.then(() => {
      try {
        push?.close();
      } catch {
        // already closed or errored
      }
    });
  });
  const reader = new FrameReader(stream, APPEND_FRAME_LIMITS);
  const run = async (): Promise<void> => {
    try {
      for (;;) {
        const result = await appendTurn(t, reader, false);
        const answer = JSON.stringify(result);
        server.send(answer);
        recordTurn(201, answer.length);
      }
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError(500, "internal", `append failed: ${String(e)}`);
      // End of socket between turns is the normal end, not an error.
      if (err.code === "bad_request" && err.message.startsWith("empty append")) {
        server.close(1000, "done");
        return;
      }
      const body: ErrorBody = err.body();
      recordTurn(err.status, JSON.stringify(body).length, err.code);
      try {
        server.send(JSON.stringify(body));
        server.close(closeCode(err.status), err.code);
      } catch {
        // the client went away
      }
    }
  };
  c.executionCtx.waitUntil(run());
  return new Response(null, { status: 101, webSocket: client });
});

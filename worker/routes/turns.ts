// Append: POST a framed body (application/vnd.mla-edge.frames; version=2), or send the same frames as WebSocket binary
// messages (subprotocol mla-edge.frames.v2; one turn after another on one socket; each committed turn is answered with a
// binary message holding one control frame, the MessagePack append result, and a failure with one error frame).
import { Hono } from "hono";
import { controlFrame, encodeAppendResult, encodeAppendStaged, errorFrame } from "../../format/wire/control-msgpack.ts";
import { FrameReader, FRAMES_CONTENT_TYPE, FRAMES_WS_PROTOCOL, framesVersionOf, WIRE_FORMAT_VERSION } from "../../format/wire/frames.ts";
import type { ErrorBody } from "../../format/wire/messages.ts";
import { appendTurn, type AppendTarget } from "../append/append-turn.ts";
import { sessionAuth } from "../auth/middleware.ts";
import { requireSecret, tenantSalt } from "../auth/tenants.ts";
import type { AppContext, AppEnv } from "../context.ts";
import { ApiError, badRequest, tooLarge, unsupportedFormat } from "../errors.ts";
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
  const type = c.req.header("content-type") ?? "";
  const version = framesVersionOf(type);
  if (version === null) throw badRequest(`Content-Type must be ${FRAMES_CONTENT_TYPE}`);
  if (version !== WIRE_FORMAT_VERSION) {
    throw unsupportedFormat(415, `append body of wire format version ${Number.isNaN(version) ? "?" : version} (${type.slice(0, 80)}): this store reads version ${WIRE_FORMAT_VERSION} only (${FRAMES_CONTENT_TYPE}, MessagePack control frames); update the client`);
  }
  const length = Number(c.req.header("content-length") ?? "0");
  if (length > MAX_APPEND_BODY_BYTES) throw tooLarge(`append body of ${length} bytes is above ${MAX_APPEND_BODY_BYTES}: split the turn`);
  const body = c.req.raw.body;
  if (body === null) throw badRequest("append needs a framed body");
  const reader = new FrameReader(body, APPEND_FRAME_LIMITS);
  try {
    const outcome = await appendTurn(await target(c), reader, true);
    // A staged part of a long turn is accepted, not committed: 202 with the stage to continue it.
    return outcome.kind === "committed" ? c.json(outcome.result, 201) : c.json(outcome.staged, 202);
  } finally {
    await reader.cancel();
  }
});

/** Close codes 4000 + HTTP status carry the error class to clients that only see the close event. */
const closeCode = (status: number): number => 4000 + status;

turns.get("/:id/turns/ws", sessionAuth("write", { queryToken: true }), async (c) => {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") throw new ApiError(426, "bad_request", "expected a WebSocket upgrade (Upgrade: websocket)");
  const protocols = (c.req.header("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
  if (!protocols.includes(FRAMES_WS_PROTOCOL)) {
    throw unsupportedFormat(400, `this store speaks wire format version ${WIRE_FORMAT_VERSION} on WebSockets: request the subprotocol ${FRAMES_WS_PROTOCOL} (Sec-WebSocket-Protocol), got ${JSON.stringify(protocols.join(", ").slice(0, 80))}`);
  }
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
        const outcome = await appendTurn(t, reader, false);
        const answer = controlFrame(outcome.kind === "committed" ? encodeAppendResult(outcome.result) : encodeAppendStaged(outcome.staged));
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
      const frame = errorFrame(body);
      recordTurn(err.status, frame.length, err.code);
      try {
        server.send(frame);
        server.close(closeCode(err.status), err.code);
      } catch {
        // the client went away
      }
    }
  };
  c.executionCtx.waitUntil(run());
  return new Response(null, { status: 101, webSocket: client, headers: { "sec-websocket-protocol": FRAMES_WS_PROTOCOL } });
});

// Restore: GET /v1/sessions/:id/chunks?from=&to=&layers=a-b (token range [from, to), layers a..b inclusive).
import { Hono } from "hono";
import { FRAMES_CONTENT_TYPE, framesAcceptance, WIRE_FORMAT_VERSION } from "../../format/wire/frames.ts";
import type { RestoreHeader } from "../../format/wire/messages.ts";
import { sessionAuth } from "../auth/middleware.ts";
import { sessionStub, type AppEnv } from "../context.ts";
import { badRequest, notFound, unsupportedFormat } from "../errors.ts";
import { openRestoreStream } from "../restore/restore-stream.ts";

export const chunks = new Hono<AppEnv>();

function intParam(v: string | undefined, name: string, fallback: number): number {
  if (v === undefined || v === "") return fallback;
  if (!/^\d{1,15}$/.test(v)) throw badRequest(`${name} must be a non-negative integer`);
  return Number(v);
}

chunks.get("/:id/chunks", sessionAuth("read"), async (c) => {
  // A client of another wire version is refused before anything is read (a version-1 SDK asks for application/json).
  const accept = c.req.header("accept");
  if (framesAcceptance(accept) !== "ok") {
    throw unsupportedFormat(406, `this store streams wire format version ${WIRE_FORMAT_VERSION} (Accept: ${FRAMES_CONTENT_TYPE}), the request accepts ${JSON.stringify(accept?.slice(0, 120))}: update the client`);
  }
  const from = intParam(c.req.query("from"), "from", 0);
  const to = intParam(c.req.query("to"), "to", Number.MAX_SAFE_INTEGER);
  if (to < from) throw badRequest(`to (${to}) is before from (${from})`);
  const layers = c.req.query("layers");
  let layerStart = 0;
  let layerEnd = Number.MAX_SAFE_INTEGER;
  if (layers !== undefined) {
    const m = /^(\d{1,6})-(\d{1,6})$/.exec(layers);
    if (m === null || Number(m[2]) < Number(m[1])) throw badRequest("layers must be a-b with a ≤ b (inclusive)");
    layerStart = Number(m[1]);
    layerEnd = Number(m[2]) + 1;
  }
  const tenant = c.get("tenant");
  const r = await sessionStub(c.env, tenant, c.req.param("id")).resolve(from, to, layerStart, layerEnd);
  if (r === null) throw notFound();
  if (layers !== undefined && layerEnd > r.meta.spec.layers) throw badRequest(`layers ${layers} goes past the model's ${r.meta.spec.layers} layers`);
  const header: RestoreHeader = {
    head: r.head,
    tokens: r.tokens,
    from: Math.min(from, r.tokens),
    to: Math.min(to, r.tokens),
    layerStart,
    layerEnd: Math.min(layerEnd, r.meta.spec.layers),
    chunks: r.refs.map((ref) => ({
      slot: ref.slot,
      tokenStart: ref.tokenStart,
      tokenCount: ref.tokenCount,
      layerStart: ref.layerStart,
      layerCount: ref.layerCount,
      sealed: ref.sealed,
      bytes: ref.bytes,
      key: ref.key,
    })),
  };
  // The first chunk is checked before the response starts, so a bad first row is a plain JSON error.
  const source = { env: c.env, ctx: c.executionCtx, tenant, sessionId: r.meta.id, specHash: r.meta.specHash };
  return new Response(await openRestoreStream(source, header, r.refs), {
    headers: { "content-type": FRAMES_CONTENT_TYPE, "cache-control": "no-store" },
  });
});

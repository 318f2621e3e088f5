// Session resource: create, manifest, delete, fork, truncate, mint token.
import { Hono } from "hono";
import { validateCacheSpec, CacheSpecError, type CacheSpec } from "../../format/cache-spec.ts";
import { planChunkLayerRanges } from "../../format/chunk/plan.ts";
import { ChunkError } from "../../format/chunk/types.ts";
import { CODEC_BITS_TEXT, isBits, type CodecParams } from "../../format/codec/types.ts";
import { specHashHex } from "../../format/hash/spec-hash.ts";
import type { Manifest, ModelRef, SessionCreated, TokenScope } from "../../format/wire/messages.ts";
import { isWellFormedText } from "../../format/wire/well-formed.ts";
import { sessionAuth, tenantAuth } from "../auth/middleware.ts";
import { requireSecret } from "../auth/tenants.ts";
import { DEFAULT_TOKEN_TTL_MS, mintToken } from "../auth/tokens.ts";
import { intField, readJson, sessionStub, type AppContext, type AppEnv } from "../context.ts";
import { ApiError, badRequest, notFound } from "../errors.ts";
import { DEFAULT_TTL_SECONDS, MAX_SESSION_CHUNK_TOKENS, MAX_TTL_SECONDS } from "../limits.ts";
import { toCacheSpec, type SessionMeta } from "../objects/session-types.ts";
import { chunkCodecOf } from "../append/plan.ts";
import { DEFAULT_CHUNK_TOKENS } from "../../format/chunk/types.ts";
import { recordEvent } from "../telemetry/index.ts";
import { pausePoint } from "../testing/pause-points.ts";

export const sessions = new Hono<AppEnv>();

function parseSpec(v: unknown): CacheSpec {
  if (typeof v !== "object" || v === null) throw badRequest("spec must be a cache spec object (format/cache-spec.ts)");
  const s = v as Record<string, unknown>;
  const spec = {
    layers: s.layers,
    heads: s.heads,
    kvHeads: s.kvHeads,
    headDim: s.headDim,
    ropeDims: s.ropeDims,
    dKv: s.dKv,
    latentSpaces: s.latentSpaces,
    mropeSection: s.mropeSection ?? null,
  } as CacheSpec;
  if (spec.mropeSection !== null && !Array.isArray(spec.mropeSection)) throw badRequest("spec.mropeSection must be an array of 3 integers or null");
  try {
    return validateCacheSpec(spec);
  } catch (e) {
    if (e instanceof CacheSpecError) throw badRequest(`invalid spec: ${e.message}`, e.code);
    throw e;
  }
}

function parseModel(v: unknown): ModelRef {
  const m = (typeof v === "object" && v !== null ? v : {}) as Record<string, unknown>;
  const ok = (x: unknown): x is string => typeof x === "string" && x.length >= 1 && x.length <= 256;
  if (!ok(m.id) || !ok(m.conversion)) throw badRequest("model must be {id, conversion} with strings of 1 to 256 characters");
  // A lone surrogate would encode as U+FFFD and give another model's (or conversion's) chunk keys.
  if (!isWellFormedText(m.id)) throw badRequest("model.id is not well-formed UTF-16 (a lone surrogate)", "ill_formed_text");
  if (!isWellFormedText(m.conversion)) throw badRequest("model.conversion is not well-formed UTF-16 (a lone surrogate)", "ill_formed_text");
  return { id: m.id, conversion: m.conversion };
}

function parseCodec(v: unknown): CodecParams {
  const c = (typeof v === "object" && v !== null ? v : {}) as Record<string, unknown>;
  if (!isBits(c.bits)) throw badRequest(`codec.bits must be ${CODEC_BITS_TEXT}`);
  if (c.group !== 32 && c.group !== 64 && c.group !== 128) throw badRequest("codec.group must be 32, 64 or 128");
  if (c.axis !== "token" && c.axis !== "channel") throw badRequest("codec.axis must be token or channel");
  if (c.rope !== "fp16" && c.rope !== "int8" && c.rope !== "int4") throw badRequest("codec.rope must be fp16, int8 or int4");
  return { bits: c.bits, group: c.group, axis: c.axis, rope: c.rope };
}

function parseScopes(v: unknown): TokenScope[] {
  if (v === undefined) return ["read", "write"];
  if (!Array.isArray(v) || v.length === 0 || v.some((s) => s !== "read" && s !== "write")) throw badRequest('scopes must be a non-empty array of "read" and "write"');
  return [...new Set(v as TokenScope[])];
}

async function issue(c: AppContext, tenant: string, meta: SessionMeta, scopes: TokenScope[], ttlMs = DEFAULT_TOKEN_TTL_MS): Promise<SessionCreated> {
  const tokenExpiresAt = Date.now() + ttlMs;
  const token = await mintToken(requireSecret(c.env.SIGNING_SECRET, "SIGNING_SECRET"), { v: 1, tenant, session: meta.id, scopes, exp: tokenExpiresAt });
  return { id: meta.id, token, tokenExpiresAt, expiresAt: meta.expiresAt, specHash: meta.specHash };
}

sessions.post("/", tenantAuth(), async (c) => {
  const body = await readJson(c);
  const spec = parseSpec(body.spec);
  const model = parseModel(body.model);
  const codec = parseCodec(body.codec);
  const chunkTokens = intField(body, "chunkTokens", 1, MAX_SESSION_CHUNK_TOKENS, DEFAULT_CHUNK_TOKENS);
  const ttlSeconds = intField(body, "ttlSeconds", 1, MAX_TTL_SECONDS, DEFAULT_TTL_SECONDS);
  const storage = body.storage ?? "quantized";
  if (storage !== "quantized" && storage !== "raw") throw badRequest('storage must be "quantized" or "raw"');
  try {
    // Every chunk the session can produce (sealed C tokens, raw tail up to C − 1, or raw C) must fit rows ≤ MAX_CHUNK_BYTES.
    if (storage === "quantized") planChunkLayerRanges(spec, chunkCodecOf(codec, true), chunkTokens);
    else planChunkLayerRanges(spec, chunkCodecOf(codec, false), chunkTokens);
    if (chunkTokens > 1) planChunkLayerRanges(spec, chunkCodecOf(codec, false), chunkTokens - 1);
  } catch (e) {
    if (e instanceof ChunkError) throw badRequest(`chunkTokens ${chunkTokens} does not fit this spec and codec: ${e.message}`, e.code);
    throw e;
  }
  const tenant = c.get("tenant");
  const now = Date.now();
  const meta: SessionMeta = {
    id: crypto.randomUUID(),
    tenant,
    spec,
    specHash: specHashHex(spec),
    model,
    codec,
    storage,
    chunkTokens,
    ttlMs: ttlSeconds * 1000,
    createdAt: now,
    expiresAt: now + ttlSeconds * 1000,
    parent: null,
  };
  if (!(await sessionStub(c.env, tenant, meta.id).create(meta))) throw new ApiError(500, "internal", "session id collision");
  recordEvent(c.env, c.executionCtx, { kind: "session_created", sessionId: meta.id });
  return c.json(await issue(c, tenant, meta, ["read", "write"]), 201);
});

sessions.get("/:id", sessionAuth("read"), async (c) => {
  const data = await sessionStub(c.env, c.get("tenant"), c.req.param("id")).manifest();
  if (data === null) throw notFound();
  const { meta, turns } = data;
  const last = turns.at(-1);
  const tokens = last === undefined ? 0 : last.tokenStart + last.tokenCount;
  const nextPosition = last?.nextPosition ?? 0;
  return c.json({
    id: meta.id,
    spec: toCacheSpec(meta.spec),
    specHash: meta.specHash,
    model: meta.model,
    codec: meta.codec,
    storage: meta.storage,
    chunkTokens: meta.chunkTokens,
    head: last?.seq ?? 0,
    tokens,
    turns,
    bytesStored: data.bytesStored,
    bytesUploaded: turns.reduce((s, t) => s + t.bytesStored, 0),
    bytesUncompressed: turns.reduce((s, t) => s + t.bytesUncompressed, 0),
    nextPosition,
    ropeDelta: nextPosition - tokens,
    parent: meta.parent,
    createdAt: meta.createdAt,
    expiresAt: meta.expiresAt,
  } satisfies Manifest);
});

sessions.delete("/:id", sessionAuth("write"), async (c) => {
  const existed = await sessionStub(c.env, c.get("tenant"), c.req.param("id")).destroy();
  if (!existed) throw notFound();
  return c.body(null, 204);
});

sessions.post("/:id/truncate", sessionAuth("write"), async (c) => {
  const body = await readJson(c);
  const toSeq = intField(body, "toSeq", 0, Number.MAX_SAFE_INTEGER);
  const r = await sessionStub(c.env, c.get("tenant"), c.req.param("id")).truncate(toSeq);
  if (r.status === "not_found") throw notFound();
  if (r.status === "bad_seq") throw badRequest(`toSeq ${toSeq} is after the head ${r.head}`);
  return c.json({ head: r.head, tokens: r.tokens });
});

sessions.post("/:id/fork", sessionAuth("read"), async (c) => {
  const body = await readJson(c);
  const atSeq = intField(body, "atSeq", 0, Number.MAX_SAFE_INTEGER);
  const tenant = c.get("tenant");
  const parentId = c.req.param("id");
  const snap = await sessionStub(c.env, tenant, parentId).snapshot(atSeq);
  if (snap === null) throw notFound();
  if ("status" in snap) throw badRequest(`atSeq ${atSeq} is after the head ${snap.head}`);
  const ttlSeconds = intField(body, "ttlSeconds", 1, MAX_TTL_SECONDS, snap.meta.ttlMs / 1000);
  const now = Date.now();
  const meta: SessionMeta = {
    ...snap.meta,
    id: crypto.randomUUID(),
    ttlMs: ttlSeconds * 1000,
    createdAt: now,
    expiresAt: now + ttlSeconds * 1000,
    parent: { id: parentId, seq: atSeq },
  };
  await pausePoint(c.env, "fork.afterSnapshot", parentId);
  const r = await sessionStub(c.env, tenant, meta.id).initFork(meta, snap);
  if (r.status === "missing") throw new ApiError(409, "turn_conflict", "the parent changed during the fork (its chunks were released or replaced): retry", "parent_changed");
  if (r.status === "exists") throw new ApiError(500, "internal", "session id collision");
  recordEvent(c.env, c.executionCtx, { kind: "fork", sessionId: parentId, childSessionId: meta.id });
  return c.json(await issue(c, tenant, meta, ["read", "write"]), 201);
});

sessions.post("/:id/tokens", tenantAuth(), async (c) => {
  const body = await readJson(c);
  const scopes = parseScopes(body.scopes);
  const ttlSeconds = intField(body, "ttlSeconds", 1, MAX_TTL_SECONDS, DEFAULT_TOKEN_TTL_MS / 1000);
  const tenant = c.get("tenant");
  const meta = await sessionStub(c.env, tenant, c.req.param("id")).touch();
  if (meta === null) throw notFound();
  return c.json(await issue(c, tenant, meta, scopes, ttlSeconds * 1000), 201);
});

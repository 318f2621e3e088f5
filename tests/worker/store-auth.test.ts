// Auth, tenancy and request validation of every session route: tenant keys mint HMAC session tokens; tokens are
// checked for signature, expiry, session and scope on every route; errors are {error:{code,message}}.
import { describe, expect, it } from "vitest";
import { qwen25vl7bSpec } from "../../format/cache-spec.ts";
import { FRAMES_CONTENT_TYPE } from "../../format/wire/frames.ts";
import type { SessionCreated } from "../../format/wire/messages.ts";
import { mintToken } from "../../worker/auth/tokens.ts";
import { Conversation } from "./helpers/conversation.ts";
import { append, call, createSession, errorOf, OPERATOR_KEY, TENANT_KEYS, testEnv, TINY_C, TINY_CODEC, TINY_SPEC } from "./helpers/store.ts";

const json = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify(body),
});

/** Every session route with the scope it needs. */
const ROUTES: Array<{ name: string; scope: "read" | "write"; init: (id: string) => [string, RequestInit] }> = [
  { name: "manifest", scope: "read", init: (id) => [`/v1/sessions/${id}`, {}] },
  { name: "restore", scope: "read", init: (id) => [`/v1/sessions/${id}/chunks`, {}] },
  { name: "fork", scope: "read", init: (id) => [`/v1/sessions/${id}/fork`, json({ atSeq: 0 })] },
  { name: "append", scope: "write", init: (id) => [`/v1/sessions/${id}/turns`, { method: "POST", headers: { "content-type": FRAMES_CONTENT_TYPE }, body: new Uint8Array(0) }] },
  { name: "truncate", scope: "write", init: (id) => [`/v1/sessions/${id}/truncate`, json({ toSeq: 0 })] },
  { name: "delete", scope: "write", init: (id) => [`/v1/sessions/${id}`, { method: "DELETE" }] },
];

function withAuth([path, init]: [string, RequestInit], authorization?: string): [string, RequestInit] {
  const headers = new Headers(init.headers);
  if (authorization !== undefined) headers.set("authorization", authorization);
  return [path, { ...init, headers }];
}

describe("create", () => {
  it("should create a session with a token, expiry and the spec hash", async () => {
    const before = Date.now();
    const s = await createSession("alpha", { ttlSeconds: 3600 });
    expect(s.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(s.specHash).toMatch(/^[0-9a-f]{64}$/);
    expect(s.expiresAt).toBeGreaterThanOrEqual(before + 3600_000);
    expect(s.expiresAt).toBeLessThanOrEqual(Date.now() + 3600_000);
    expect(s.token.split(".")).toHaveLength(2);
  });

  it("should refuse a missing or unknown tenant key with 401", async () => {
    const body = { spec: TINY_SPEC, codec: TINY_CODEC, model: { id: "m", conversion: "c" } };
    const attempts: Array<Record<string, string>> = [{}, { authorization: "Bearer nope" }, { authorization: `Basic ${TENANT_KEYS.alpha}` }];
    for (const headers of attempts) {
      const res = await call("/v1/sessions", json(body, headers));
      expect(res.status).toBe(401);
      expect((await errorOf(res)).code).toBe("unauthorized");
    }
  });

  it("should refuse invalid specs, codecs, models, chunk sizes and TTLs with 400", async () => {
    const auth = { authorization: `Bearer ${TENANT_KEYS.alpha}` };
    const good = { spec: TINY_SPEC, codec: TINY_CODEC, model: { id: "m", conversion: "c" }, chunkTokens: TINY_C };
    const bad: unknown[] = [
      { ...good, spec: { ...TINY_SPEC, heads: 3, kvHeads: 2 } },
      { ...good, spec: "qwen" },
      { ...good, codec: { ...TINY_CODEC, bits: 3 } },
      { ...good, codec: { ...TINY_CODEC, rope: "bf16" } },
      { ...good, model: { id: "" , conversion: "c" } },
      { ...good, chunkTokens: 0 },
      { ...good, ttlSeconds: -5 },
      // Qwen2.5-VL-7B d_kv 128: a raw tail of 1,023 tokens cannot fit a row whatever the layer split.
      { ...good, spec: qwen25vl7bSpec(128), chunkTokens: 1024 },
    ];
    for (const body of bad) {
      const res = await call("/v1/sessions", json(body, auth));
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect((await errorOf(res)).code).toBe("bad_request");
    }
    const notJson = await call("/v1/sessions", { method: "POST", headers: auth, body: "{" });
    expect(notJson.status).toBe(400);
  });
});

describe("session tokens", () => {
  for (const route of ROUTES) {
    it(`${route.name}: 401 without or with a forged token, 403 for another session or a missing scope`, async () => {
      const s = await createSession("alpha");
      const other = await createSession("alpha");
      const missing = await call(...withAuth(route.init(s.id)));
      expect(missing.status).toBe(401);
      expect((await errorOf(missing)).code).toBe("unauthorized");

      const [payload, sig] = s.token.split(".");
      const forged = `${payload}.${sig.slice(0, -2)}${sig.endsWith("AA") ? "BB" : "AA"}`;
      expect((await call(...withAuth(route.init(s.id), `Bearer ${forged}`))).status).toBe(401);
      expect((await call(...withAuth(route.init(s.id), `Bearer ${TENANT_KEYS.alpha}`))).status).toBe(401);

      const wrongSession = await call(...withAuth(route.init(s.id), other.auth.authorization));
      expect(wrongSession.status).toBe(403);
      expect((await errorOf(wrongSession)).code).toBe("forbidden");

      const lacking = route.scope === "read" ? "write" : "read";
      const mint = await call(`/v1/sessions/${s.id}/tokens`, json({ scopes: [lacking] }, { authorization: `Bearer ${TENANT_KEYS.alpha}` }));
      expect(mint.status).toBe(201);
      const narrow = (await mint.json()) as SessionCreated;
      const res = await call(...withAuth(route.init(s.id), `Bearer ${narrow.token}`));
      expect(res.status).toBe(403);
    });
  }

  it("should refuse an expired token with 401 token_expired", async () => {
    const s = await createSession("alpha");
    const expired = await mintToken(testEnv.SIGNING_SECRET ?? "", { v: 1, tenant: "alpha", session: s.id, scopes: ["read"], exp: Date.now() - 1 });
    const res = await call(`/v1/sessions/${s.id}`, { headers: { authorization: `Bearer ${expired}` } });
    expect(res.status).toBe(401);
    expect((await errorOf(res)).code).toBe("token_expired");
  });

  it("should keep tenants apart: another tenant's key cannot mint tokens for a session, and gets 404", async () => {
    const s = await createSession("alpha");
    const res = await call(`/v1/sessions/${s.id}/tokens`, json({}, { authorization: `Bearer ${TENANT_KEYS.beta}` }));
    expect(res.status).toBe(404);
    // A token signed for tenant beta naming alpha's session id resolves to beta's (empty) namespace.
    const crossed = await mintToken(testEnv.SIGNING_SECRET ?? "", { v: 1, tenant: "beta", session: s.id, scopes: ["read"], exp: Date.now() + 60_000 });
    expect((await call(`/v1/sessions/${s.id}`, { headers: { authorization: `Bearer ${crossed}` } })).status).toBe(404);
  });

  it("should accept a minted read token for reads and the token in ?token= only for WebSocket upgrades", async () => {
    const s = await createSession("alpha");
    expect((await call(`/v1/sessions/${s.id}`, { headers: s.auth })).status).toBe(200);
    expect((await call(`/v1/sessions/${s.id}?token=${s.token}`)).status).toBe(401);
  });
});

describe("errors", () => {
  it("should answer 404 for unknown routes and sessions, 400 for bad parameters", async () => {
    const s = await createSession("alpha");
    expect((await call("/v1/nothing")).status).toBe(404);
    const restoreBad = await call(`/v1/sessions/${s.id}/chunks?layers=3-1`, { headers: s.auth });
    expect(restoreBad.status).toBe(400);
    expect((await call(`/v1/sessions/${s.id}/chunks?layers=0-9`, { headers: s.auth })).status).toBe(400);
    expect((await call(`/v1/sessions/${s.id}/chunks?from=x`, { headers: s.auth })).status).toBe(400);
    expect((await call(`/v1/sessions/${s.id}/truncate`, json({ toSeq: 3 }, s.auth))).status).toBe(400);
    expect((await call(`/v1/sessions/${s.id}/fork`, json({ atSeq: 1 }, s.auth))).status).toBe(400);
    const wrongType = await call(`/v1/sessions/${s.id}/turns`, { method: "POST", headers: { ...s.auth, "content-type": "application/json" }, body: "{}" });
    expect(wrongType.status).toBe(400);
    const tooBig = await call(`/v1/sessions/${s.id}/turns`, {
      method: "POST",
      headers: { ...s.auth, "content-type": FRAMES_CONTENT_TYPE, "content-length": String(200_000_000) },
      body: new Uint8Array(8),
    });
    expect(tooBig.status).toBe(413);
    expect(await errorOf(tooBig)).toMatchObject({ code: "too_large" });
    const bigJson = await call(`/v1/sessions/${s.id}/truncate`, json({ toSeq: 0, pad: "x".repeat(70_000) }, s.auth));
    expect(bigJson.status).toBe(413);
    expect((await call(`/v1/sessions/${s.id}/turns/ws`, { headers: s.auth })).status).toBe(426);
  });

  it("should answer 404 not_found on every route of a deleted session", async () => {
    const s = await createSession("alpha");
    expect((await call(`/v1/sessions/${s.id}`, { method: "DELETE", headers: s.auth })).status).toBe(204);
    for (const route of ROUTES) {
      const res = await call(...withAuth(route.init(s.id), s.auth.authorization));
      expect(res.status, route.name).toBe(404);
      expect((await errorOf(res)).code).toBe("not_found");
    }
    const conv = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C);
    expect((await append(s, conv.build(2).frames)).status).toBe(404);
  });

  it("should gate the operator stats route by OPERATOR_KEY", async () => {
    expect((await call("/v1/admin/tenants/alpha/chunks")).status).toBe(401);
    expect((await call("/v1/admin/tenants/alpha/chunks", { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
    const ok = await call("/v1/admin/tenants/alpha/chunks", { headers: { authorization: `Bearer ${OPERATOR_KEY}` } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ tenant: "alpha", rows: expect.any(Number) });
  });
});

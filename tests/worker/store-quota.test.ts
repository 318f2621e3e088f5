// Per-tenant storage quotas inside workerd (TENANT_QUOTAS): an append is refused with 413 too_large / tenant_quota once
// the tenant's rows hold its quota, nothing of the refused turn is stored, other tenants are unaffected, "*" sets a
// default, a delete frees room again, the tenant (GET /v1/usage) and operator routes report usage and quota, and a
// malformed setting is a clear 500.
import { describe, expect, it } from "vitest";
import type { Manifest, TenantUsage } from "../../format/wire/messages.ts";
import { Conversation } from "./helpers/conversation.ts";
import { append, call, createSession, errorOf, OPERATOR_KEY, TENANT_KEYS, tenantChunkStats, TINY_C, TINY_CODEC, TINY_SPEC } from "./helpers/store.ts";

const quotas = (q: Record<string, number>) => ({ TENANT_QUOTAS: JSON.stringify(q) });

describe("tenant storage quotas", () => {
  it("should refuse appends once the tenant's rows hold its quota, store nothing of the refused turn, and accept again after a delete", async () => {
    // Other files may have stored rows for alpha: the quota is set relative to what it holds now.
    const used0 = (await tenantChunkStats("alpha")).bytes;
    const env = quotas({ alpha: used0 + 1 });
    const s = await createSession("alpha");
    const conv = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C);
    const t1 = conv.build(10);
    expect((await append(s, t1.frames, env)).status).toBe(201); // under the quota before it: allowed (soft quota)
    conv.accept(t1);
    const after1 = await tenantChunkStats("alpha");
    expect(after1.bytes).toBeGreaterThan(used0);

    const t2 = conv.build(6);
    const refused = await append(s, t2.frames, env);
    expect(refused.status).toBe(413);
    const err = await errorOf(refused);
    expect(err).toMatchObject({ code: "too_large", reason: "tenant_quota" });
    expect(err.message).toContain(`stores ${after1.bytes} bytes of its ${used0 + 1}-byte quota`);
    expect(await tenantChunkStats("alpha")).toEqual(after1); // no row, chunk or hold of the refused turn
    const m = (await (await call(`/v1/sessions/${s.id}`, { headers: s.auth })).json()) as Manifest;
    expect([m.head, m.tokens]).toEqual([1, 10]);

    // Another tenant has no entry and there is no "*": unlimited. With "*" it gets the default.
    const b = await createSession("beta");
    const convB = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C);
    const tb = convB.build(5);
    expect((await append(b, tb.frames, env)).status).toBe(201);
    convB.accept(tb);
    const refusedB = await append(b, convB.build(3).frames, quotas({ alpha: used0 + 1, "*": 0 }));
    expect([refusedB.status, (await errorOf(refusedB)).reason]).toEqual([413, "tenant_quota"]);

    // The tenant sees its own usage and quota (tenant key; a session token is not enough).
    const usage = await call("/v1/usage", { headers: { authorization: `Bearer ${TENANT_KEYS.alpha}` } }, env);
    expect(usage.status).toBe(200);
    expect(await usage.json()).toEqual({ tenant: "alpha", bytes: after1.bytes, quotaBytes: used0 + 1 });
    const betaUsage = (await (await call("/v1/usage", { headers: { authorization: `Bearer ${TENANT_KEYS.beta}` } }, env)).json()) as TenantUsage;
    expect(betaUsage).toEqual({ tenant: "beta", bytes: (await tenantChunkStats("beta")).bytes, quotaBytes: null });
    expect((await call("/v1/usage", { headers: s.auth }, env)).status).toBe(401);
    expect((await call("/v1/usage")).status).toBe(401);

    // The operator route reports the quota that applies.
    const stats = await call("/v1/admin/tenants/alpha/chunks", { headers: { authorization: `Bearer ${OPERATOR_KEY}` } }, env);
    expect(await stats.json()).toMatchObject({ bytes: after1.bytes, quotaBytes: used0 + 1 });

    // Deleting the session frees its rows: appends are accepted again.
    expect((await call(`/v1/sessions/${s.id}`, { method: "DELETE", headers: s.auth })).status).toBe(204);
    expect((await tenantChunkStats("alpha")).bytes).toBe(used0);
    const s2 = await createSession("alpha");
    expect((await append(s2, new Conversation(TINY_SPEC, TINY_CODEC, TINY_C).build(4).frames, env)).status).toBe(201);
  });

  it("should answer a malformed TENANT_QUOTAS with a 500 that names it, and store nothing", async () => {
    const s = await createSession("alpha");
    const conv = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C);
    const before = await tenantChunkStats("alpha");
    for (const [value, message] of [
      ["{not json", /TENANT_QUOTAS is not valid JSON/],
      ["[1, 2]", /TENANT_QUOTAS must be a JSON object/],
      ['{"alpha": -5}', /TENANT_QUOTAS entry for alpha must be a non-negative integer/],
      ['{"*": 1.5}', /TENANT_QUOTAS entry for \* must be a non-negative integer/],
    ] as const) {
      const res = await append(s, conv.build(4).frames, { TENANT_QUOTAS: value });
      expect(res.status).toBe(500);
      expect((await errorOf(res)).message).toMatch(message);
    }
    expect(await tenantChunkStats("alpha")).toEqual(before);
  });
});

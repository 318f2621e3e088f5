// Operator route: chunk-row statistics of a tenant (rows, the chunks they pack, bytes, holds) summed over its shards.
// Off unless OPERATOR_KEY is set; used by operators and by the integration tests to count rows.
import { Hono } from "hono";
import { keyMatches, requireSecret, TENANT_ID_PATTERN } from "../auth/tenants.ts";
import type { AppEnv } from "../context.ts";
import { ApiError, badRequest, notFound } from "../errors.ts";
import { tenantChunkStats } from "../objects/tenant-chunk-stats.ts";
import { tenantQuotaBytes } from "../append/tenant-quota.ts";

export const admin = new Hono<AppEnv>();

admin.get("/tenants/:tenant/chunks", async (c) => {
  const configured = c.env.OPERATOR_KEY;
  if (configured === undefined || configured === "") throw notFound("operator routes are off (no OPERATOR_KEY)");
  const presented = /^Bearer\s+(\S+)$/i.exec(c.req.header("authorization") ?? "")?.[1];
  if (presented === undefined) throw new ApiError(401, "unauthorized", "missing Authorization: Bearer <operator key>");
  if (!(await keyMatches(requireSecret(c.env.SIGNING_SECRET, "SIGNING_SECRET"), configured, presented))) {
    throw new ApiError(401, "unauthorized", "wrong operator key");
  }
  const tenant = c.req.param("tenant");
  if (!TENANT_ID_PATTERN.test(tenant)) throw badRequest("bad tenant id");
  return c.json({ tenant, ...(await tenantChunkStats(c.env, tenant)), quotaBytes: tenantQuotaBytes(c.env, tenant) });
});

// Tenant route: the storage the tenant's chunk rows hold and the quota that applies, so an app can show "storage
// used" and clean up before appends are refused (413 too_large / tenant_quota).
import { Hono } from "hono";
import type { TenantUsage } from "../../format/wire/messages.ts";
import { tenantQuotaBytes, tenantStoredBytes } from "../append/tenant-quota.ts";
import { tenantAuth } from "../auth/middleware.ts";
import type { AppEnv } from "../context.ts";

export const usage = new Hono<AppEnv>();

usage.get("/", tenantAuth(), async (c) => {
  const tenant = c.get("tenant");
  const body: TenantUsage = { tenant, bytes: await tenantStoredBytes(c.env, tenant), quotaBytes: tenantQuotaBytes(c.env, tenant) };
  return c.json(body);
});

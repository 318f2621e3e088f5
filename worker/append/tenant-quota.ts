// Per-tenant storage quotas (env TENANT_QUOTAS, JSON {"tenant": bytes, "*": default bytes}): an append is refused with
// 413 too_large / reason tenant_quota while the tenant's chunk rows already hold its quota. Soft by design: usage is
// read before the upload (summed over the tenant's shards), so one append can end above the quota by at most its own
// size, and two concurrent appends may both pass. Tenants without an entry (and no "*") are unlimited.
import type { Env } from "../env.ts";
import { ApiError } from "../errors.ts";
import { tenantChunkStats } from "../objects/tenant-chunk-stats.ts";

/** The tenant's quota in bytes, or null when it has none. */
export function tenantQuotaBytes(env: Pick<Env, "TENANT_QUOTAS">, tenant: string): number | null {
  const json = env.TENANT_QUOTAS;
  if (json === undefined || json.trim() === "") return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new ApiError(500, "internal", "TENANT_QUOTAS is not valid JSON (expected {\"tenant\": bytes, \"*\": bytes})");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ApiError(500, "internal", "TENANT_QUOTAS must be a JSON object {\"tenant\": bytes, \"*\": bytes}");
  }
  const quotas = parsed as Record<string, unknown>;
  const value = Object.hasOwn(quotas, tenant) ? quotas[tenant] : quotas["*"];
  if (value === undefined) return null;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new ApiError(500, "internal", `TENANT_QUOTAS entry for ${Object.hasOwn(quotas, tenant) ? tenant : "*"} must be a non-negative integer byte count`);
  }
  return value;
}

/** Bytes of chunk rows the tenant holds now, over all its shards (rows shared by forks and dedupe count once). */
export async function tenantStoredBytes(env: Env, tenant: string): Promise<number> {
  return (await tenantChunkStats(env, tenant)).bytes;
}

/** Refuses the append when the tenant is at or above its quota; free when the tenant has no quota. */
export async function checkTenantQuota(env: Env, tenant: string): Promise<void> {
  const quota = tenantQuotaBytes(env, tenant);
  if (quota === null) return;
  const used = await tenantStoredBytes(env, tenant);
  if (used >= quota) {
    throw new ApiError(
      413,
      "too_large",
      `tenant ${tenant} stores ${used} bytes of its ${quota}-byte quota: delete or truncate sessions (or raise TENANT_QUOTAS) before appending`,
      "tenant_quota",
    );
  }
}

// Tenant API keys (env TENANT_KEYS, JSON {"tenant": "key"}) and the per-tenant salt mixed into every chunk key.
import { ApiError } from "../errors.ts";
import { constantTimeEqual, hmac } from "./hmac.ts";

const SALT_LABEL = "mla-edge/tenant-salt/v1";
const KEY_CMP_LABEL = "mla-edge/api-key-compare/v1";

/** Tenant ids appear in Durable Object names and holder columns: keep them plain. */
export const TENANT_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

export function requireSecret(value: string | undefined, name: string): string {
  if (value === undefined || value.length < 16) {
    throw new ApiError(500, "internal", `${name} is not configured (at least 16 characters): set it with wrangler secret put or .dev.vars`);
  }
  return value;
}

function parseTenantKeys(json: string | undefined): Array<[string, string]> {
  if (json === undefined) throw new ApiError(500, "internal", "TENANT_KEYS is not configured");
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new ApiError(500, "internal", "TENANT_KEYS is not valid JSON");
  }
  if (typeof parsed !== "object" || parsed === null) throw new ApiError(500, "internal", "TENANT_KEYS must be a JSON object");
  return Object.entries(parsed).filter((e): e is [string, string] => typeof e[1] === "string" && TENANT_ID_PATTERN.test(e[0]));
}

/**
 * The tenant whose API key equals `presented`, or null. Every configured key is compared (through HMAC digests, so
 * the comparison time depends on neither the key lengths nor the first differing byte).
 */
export async function tenantForKey(env: { TENANT_KEYS?: string; SIGNING_SECRET?: string }, presented: string): Promise<string | null> {
  const secret = requireSecret(env.SIGNING_SECRET, "SIGNING_SECRET");
  const want = await hmac(secret, KEY_CMP_LABEL, presented);
  let found: string | null = null;
  for (const [tenant, digest] of await keyDigests(secret, env.TENANT_KEYS)) {
    if (constantTimeEqual(want, digest) && found === null) found = tenant;
  }
  return found;
}

/** Digests of the configured keys, computed once per isolate and configuration. */
const digestCache = new Map<string, Promise<Array<[string, Uint8Array]>>>();

function keyDigests(secret: string, json: string | undefined): Promise<Array<[string, Uint8Array]>> {
  const cacheKey = `${secret}\u0000${json ?? ""}`;
  let digests = digestCache.get(cacheKey);
  if (digests === undefined) {
    const entries = parseTenantKeys(json);
    digests = Promise.all(entries.map(async ([tenant, key]): Promise<[string, Uint8Array]> => [tenant, await hmac(secret, KEY_CMP_LABEL, key)]));
    digestCache.clear(); // one configuration per isolate; a rotated secret replaces it
    digestCache.set(cacheKey, digests);
  }
  return digests;
}

/** Same comparison for a single configured key (the operator key). */
export async function keyMatches(secret: string, configured: string, presented: string): Promise<boolean> {
  return constantTimeEqual(await hmac(secret, KEY_CMP_LABEL, configured), await hmac(secret, KEY_CMP_LABEL, presented));
}

/** Salt = HMAC(SIGNING_SECRET, tenant): chunk keys of different tenants never collide, so rows are never shared. */
export function tenantSalt(secret: string, tenant: string): Promise<Uint8Array> {
  return hmac(secret, SALT_LABEL, tenant);
}

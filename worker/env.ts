// Bindings of the edge-store Worker (wrangler.jsonc). Secrets come from `wrangler secret put` in production and from
// `.dev.vars` (written by scripts/start.mjs) or `--var` locally.
import type { ObjectBindings } from "./objects/bindings.ts";
import type { SessionObject } from "./objects/session-object.ts";
import type { MetricsObject } from "./telemetry/index.ts";

export interface Env extends ObjectBindings {
  readonly SESSIONS: DurableObjectNamespace<SessionObject>;
  /** Telemetry aggregate (worker/telemetry); TELEMETRY=off turns recording off. */
  readonly METRICS: DurableObjectNamespace<MetricsObject>;
  readonly TELEMETRY?: string;
  /** JSON `{"tenantId": "apiKey", ...}`. */
  readonly TENANT_KEYS?: string;
  /** Signs session tokens and derives tenant salts; rotating it invalidates tokens and dedupe keys. */
  readonly SIGNING_SECRET?: string;
  /** Bearer key of the operator stats route; the route is off when unset. */
  readonly OPERATOR_KEY?: string;
  /** Storage quotas, JSON `{"tenantId": bytes, "*": bytes}` (worker/append/tenant-quota.ts); unset: no quotas. */
  readonly TENANT_QUOTAS?: string;
  /** Tests only (worker/testing/pause-points.ts): the write step at which requests wait, so a test can kill the process there. */
  readonly TEST_PAUSE_AT?: string;
}

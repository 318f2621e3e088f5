// Bindings the telemetry module reads. The main Worker's Env satisfies this once METRICS is bound (docs/telemetry.md).
import type { MetricsObject } from "./metrics-object.ts";

export interface TelemetryEnv {
  readonly METRICS: DurableObjectNamespace<MetricsObject>;
  /** Bearer key for /metrics and the dashboard data; operator routes answer 403 while it is unset. */
  readonly OPERATOR_KEY?: string;
  /** "off" disables all recording (request middleware, store events, client reports); routes still answer. */
  readonly TELEMETRY?: string;
}

/** True unless `TELEMETRY=off` (also "0"/"false"), the switch the store benchmark flips to measure overhead. */
export const telemetryEnabled = (env: Pick<TelemetryEnv, "TELEMETRY">): boolean => {
  const v = env.TELEMETRY?.trim().toLowerCase();
  return v !== "off" && v !== "0" && v !== "false";
};

/** The object every isolate reports to: one global aggregate (shard by name if it ever becomes a hot spot). */
export const METRICS_OBJECT_NAME = "global";

export const metricsStub = (env: TelemetryEnv) => env.METRICS.get(env.METRICS.idFromName(METRICS_OBJECT_NAME));

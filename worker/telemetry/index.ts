// Public surface of the telemetry module: what the main Worker wires in (docs/telemetry.md "Wiring").
export { createTelemetryApp, type TelemetryAppOptions } from "./app.ts";
export { MetricsObject } from "./metrics-object.ts";
export { recordRequests, type RecordRequestsOptions } from "./record-requests.ts";
export { recordEvent } from "./record-event.ts";
export { flushTelemetry, type WaitUntil } from "./recorder.ts";
export { defaultRouteClassifier, type RouteClassifier, type RouteClass } from "./route-classifier.ts";
export { telemetryEnabled, type TelemetryEnv } from "./env.ts";
export type { StoreEvent, TelemetryEvent, Operation, EvictionReason } from "./events.ts";

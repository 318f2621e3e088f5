// The bindings the Durable Objects themselves use (chunk shards, telemetry). worker/env.ts builds the Worker's Env on
// top of this leaf, so no object imports env.ts and env.ts ⇄ objects/* is not a loop.
import type { TelemetryEnv } from "../telemetry/env.ts";
import type { ChunkObject } from "./chunk-object.ts";

export interface ObjectBindings extends TelemetryEnv {
  readonly CHUNKS: DurableObjectNamespace<ChunkObject>;
  /** Tests only (worker/testing/pause-points.ts): the named pause point holds its request; unset in production. */
  readonly TEST_PAUSE_AT?: string;
}

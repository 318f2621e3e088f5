// Worker entry: the HTTP front of the edge store (worker/app.ts) and its two Durable Object classes.
import { app } from "./app.ts";
import type { Env } from "./env.ts";

export { ChunkObject } from "./objects/chunk-object.ts";
export { SessionObject } from "./objects/session-object.ts";
export { MetricsObject } from "./telemetry/index.ts";
export type { Env } from "./env.ts";

export default {
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;

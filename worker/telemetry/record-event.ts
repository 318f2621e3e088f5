// The store's entry point for events only it knows about (dedupe hits, chunk bytes, forks, TTL evictions, WebSocket
// turns): `recordEvent(env, ctx, { kind: "fork", sessionId, childSessionId })`. Returns at once; the send is batched.
import type { TelemetryEnv } from "./env.ts";
import type { StoreEvent } from "./events.ts";
import { enqueue, type WaitUntil } from "./recorder.ts";

/**
 * Records one store event. `ctx` is the request's (or DO's / alarm's) execution context: the flush runs under its
 * waitUntil, so it never delays the response. Inside a Durable Object pass `this.ctx`.
 *
 * @example recordEvent(c.env, c.executionCtx, { kind: "dedupe_hit", sessionId, chunks: 3, tokens: 192, bytesSaved: 4_200_000 })
 */
export function recordEvent(env: TelemetryEnv, ctx: WaitUntil, event: StoreEvent): void {
  enqueue(env, ctx, event);
}

// Per-isolate batching of telemetry events: requests push events into a module-level buffer and one waitUntil'd flush
// per FLUSH_DELAY_MS sends the whole batch to the MetricsObject in a single RPC, so recording costs the request path a
// push and the DO one write per batch, not per request.
import { metricsStub, telemetryEnabled, type TelemetryEnv } from "./env.ts";
import type { TelemetryEvent } from "./events.ts";

/** How long events wait for company before a flush; bounds how stale /metrics is across isolates. */
export const FLUSH_DELAY_MS = 250;
/** Flush at once when this many events are waiting (bounds isolate memory under bursts). */
export const MAX_BATCH_EVENTS = 256;
/** Events kept while the MetricsObject is unreachable; beyond it new events are dropped and counted. */
export const MAX_BUFFERED_EVENTS = 4096;

/** A flush timer older than this is presumed dead (its request context ended before it fired) and is re-armed. */
const STALE_TIMER_MS = 4 * FLUSH_DELAY_MS;

interface Pending {
  events: TelemetryEvent[];
  /** performance.now() when the pending flush timer was armed; null when none is. */
  timerArmedAt: number | null;
  dropped: number;
}

// One buffer per isolate. Only plain data crosses requests; each flush makes its RPC from the request that runs it.
const pending: Pending = { events: [], timerArmedAt: null, dropped: 0 };

/** Execution context surface recording needs (Hono's c.executionCtx and the Worker's ctx both satisfy it). */
export interface WaitUntil {
  waitUntil(promise: Promise<unknown>): void;
}

/** A Hono context's execution context, or undefined where it has none (Hono's getter throws there). */
export function executionContextOf(c: { readonly executionCtx: WaitUntil }): WaitUntil | undefined {
  try {
    return c.executionCtx;
  } catch {
    return undefined;
  }
}

/** Sends everything buffered now. Safe to call any time; routes that read metrics call it first. */
export async function flushTelemetry(env: TelemetryEnv): Promise<void> {
  if (pending.events.length === 0) return;
  const batch = pending.events;
  pending.events = [];
  try {
    await metricsStub(env).record(batch);
  } catch (err) {
    // Telemetry must never fail the store: put the batch back (bounded) and let the next flush retry.
    const room = MAX_BUFFERED_EVENTS - pending.events.length;
    pending.dropped += Math.max(0, batch.length - room);
    pending.events.unshift(...batch.slice(0, Math.max(0, room)));
    console.error("telemetry: MetricsObject.record failed", err);
  }
}

/**
 * Queues events for the MetricsObject; no-op with TELEMETRY=off. Never awaits anything on the caller's path. Without
 * an execution context (e.g. `app.request()` in a unit test) the events wait for the next flush armed elsewhere or
 * for a read of /metrics.
 */
export function enqueue(env: TelemetryEnv, ctx: WaitUntil | undefined, ...events: TelemetryEvent[]): void {
  if (!telemetryEnabled(env)) return;
  if (pending.events.length + events.length > MAX_BUFFERED_EVENTS) {
    pending.dropped += events.length;
    return;
  }
  pending.events.push(...events);
  if (ctx === undefined) return;
  if (pending.events.length >= MAX_BATCH_EVENTS) {
    ctx.waitUntil(flushTelemetry(env));
    return;
  }
  const now = performance.now();
  // A timer armed under a context that ended without waitUntil support never fires: re-arm rather than stall.
  if (pending.timerArmedAt !== null && now - pending.timerArmedAt < STALE_TIMER_MS) return;
  pending.timerArmedAt = now;
  ctx.waitUntil(
    new Promise<void>((resolve) => setTimeout(resolve, FLUSH_DELAY_MS)).then(() => {
      pending.timerArmedAt = null;
      return flushTelemetry(env);
    }),
  );
}

/** Events dropped by this isolate because its buffer was full (for tests and debugging). */
export const droppedEventCount = (): number => pending.dropped;

/** Events waiting in this isolate's buffer (for tests and debugging). */
export const pendingEventCount = (): number => pending.events.length;

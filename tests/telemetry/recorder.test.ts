// Per-isolate batching: events wait for one timer-driven flush (one RPC per batch), a full batch flushes at once,
// TELEMETRY=off records nothing, and a failing MetricsObject neither throws into the caller nor loses the batch.
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { TelemetryEnv } from "../../worker/telemetry/env.ts";
import type { TelemetryEvent } from "../../worker/telemetry/events.ts";

type Recorder = typeof import("../../worker/telemetry/recorder.ts");

const event = (i: number): TelemetryEvent => ({ kind: "session_created", sessionId: `s${i}` });

/** A METRICS namespace whose single object records batches (or fails while `failing` is set). */
function fakeEnv(telemetry?: string) {
  const batches: TelemetryEvent[][] = [];
  const state = { failing: false };
  const stub = {
    record: async (batch: TelemetryEvent[]) => {
      if (state.failing) throw new Error("object unavailable");
      batches.push(batch);
      return batch.length;
    },
  };
  const env = {
    METRICS: { idFromName: (n: string) => n, get: () => stub },
    ...(telemetry !== undefined ? { TELEMETRY: telemetry } : {}),
  } as unknown as TelemetryEnv;
  return { env, batches, state };
}

function fakeCtx() {
  const promises: Promise<unknown>[] = [];
  return { ctx: { waitUntil: (p: Promise<unknown>) => void promises.push(p) }, settle: () => Promise.all(promises) };
}

let recorder: Recorder;
beforeEach(async () => {
  vi.resetModules(); // the buffer is module state: a fresh module per test
  recorder = await import("../../worker/telemetry/recorder.ts");
});

describe("enqueue", () => {
  it("should send events from several requests in one batch after the flush delay", async () => {
    const { env, batches } = fakeEnv();
    const a = fakeCtx();
    const b = fakeCtx();
    recorder.enqueue(env, a.ctx, event(1));
    recorder.enqueue(env, b.ctx, event(2), event(3));
    expect(batches).toEqual([]); // nothing on the request path
    await Promise.all([a.settle(), b.settle()]);
    expect(batches.map((x) => x.length)).toEqual([3]);
  });

  it("should flush at once when a batch is full", async () => {
    const { env, batches } = fakeEnv();
    const c = fakeCtx();
    recorder.enqueue(env, c.ctx, ...Array.from({ length: recorder.MAX_BATCH_EVENTS }, (_, i) => event(i)));
    await c.settle();
    expect(batches[0].length).toBe(recorder.MAX_BATCH_EVENTS);
  });

  it("should record nothing with TELEMETRY=off", async () => {
    const { env, batches } = fakeEnv("off");
    const c = fakeCtx();
    recorder.enqueue(env, c.ctx, event(1));
    await c.settle();
    await recorder.flushTelemetry(env);
    expect(batches).toEqual([]);
    expect(recorder.pendingEventCount()).toBe(0);
  });

  it("should keep a failed batch for the next flush instead of throwing", async () => {
    const { env, batches, state } = fakeEnv();
    const errors = vi.spyOn(console, "error").mockImplementation(() => undefined);
    state.failing = true;
    recorder.enqueue(env, undefined, event(1), event(2));
    await expect(recorder.flushTelemetry(env)).resolves.toBeUndefined();
    expect(recorder.pendingEventCount()).toBe(2);
    state.failing = false;
    await recorder.flushTelemetry(env);
    expect(batches.map((x) => x.length)).toEqual([2]);
    expect(errors).toHaveBeenCalledOnce();
    errors.mockRestore();
  });

  it("should drop and count events beyond the buffer bound", () => {
    const { env } = fakeEnv();
    recorder.enqueue(env, undefined, ...Array.from({ length: recorder.MAX_BUFFERED_EVENTS }, (_, i) => event(i)));
    recorder.enqueue(env, undefined, event(-1), event(-2));
    expect(recorder.pendingEventCount()).toBe(recorder.MAX_BUFFERED_EVENTS);
    expect(recorder.droppedEventCount()).toBe(2);
  });
});

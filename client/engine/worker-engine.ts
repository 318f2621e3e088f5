// The page's side of a chat engine in a dedicated Web Worker: `createClient({ baseUrl, engine: new WorkerEngine(worker) })`
// keeps `client.chat.completions.create` exactly as it is, while tokenizing, the vision tower, prefill, decoding and
// the session cache all run in the worker (client/engine/worker-host.ts serves it there), so the page's main thread
// never blocks on the model. Chunks stream back by postMessage; an abort (break, stream.controller.abort(), the
// request's signal) is posted to the worker, which stops and rolls the turn back. Errors come back as the SDK's own
// classes (InvalidRequestError, APIUserAbortError, RuntimeError, the APIError subclasses).

import { APIError, APIUserAbortError, MlaEdgeError } from "../core/error.ts";
import { InvalidRequestError, type ChatCompletionChunk, type ChatCompletionCreateParams, type ChatEngine, type InvalidRequestCode } from "../chat/completions.ts";
import { RuntimeError, type RuntimeErrorCode } from "../../runtime/errors.ts";
import type { EngineReply, EngineRequest, MessageEndpoint, WireError } from "./protocol.ts";

interface Pending {
  readonly queue: ChatCompletionChunk[];
  done: boolean;
  error: unknown;
  started: boolean;
  wake: (() => void) | null;
  /** A pull was posted and its chunk (or the end) has not come yet. */
  pulled: boolean;
  onStart: ((ok: boolean) => void) | null;
}

/** Rebuilds the typed error a worker sent. */
export function errorFromWire(e: WireError): Error {
  switch (e.name) {
    case "InvalidRequestError":
      return new InvalidRequestError(e.param ?? null, e.detail ?? e.message, (e.code ?? "invalid_request") as InvalidRequestCode);
    case "APIUserAbortError":
      return new APIUserAbortError();
    case "RuntimeError":
      return new RuntimeError((e.code ?? "bad_messages") as RuntimeErrorCode, e.message);
    default:
      if (e.status !== undefined) return APIError.generate(e.status, e.body, e.message, new Headers());
      return new MlaEdgeError(`${e.name}: ${e.message}`);
  }
}

export class WorkerEngine implements ChatEngine {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listener = (ev: { data: unknown }) => this.onMessage(ev.data as EngineReply);

  constructor(private readonly worker: MessageEndpoint) {
    worker.addEventListener("message", this.listener);
  }

  /** Stops listening (the caller terminates the worker). */
  close(): void {
    this.worker.removeEventListener?.("message", this.listener);
    for (const p of this.pending.values()) {
      p.error ??= new MlaEdgeError("the engine was closed");
      p.done = true;
      p.wake?.();
      p.onStart?.(false);
    }
    this.pending.clear();
  }

  async stream(params: ChatCompletionCreateParams, signal: AbortSignal): Promise<AsyncIterable<ChatCompletionChunk>> {
    const id = this.nextId++;
    const p: Pending = { queue: [], done: false, error: null, started: false, wake: null, pulled: true, onStart: null };
    this.pending.set(id, p);
    const abort = () => this.post({ type: "abort", id });
    signal.addEventListener("abort", abort, { once: true });
    this.post({ type: "completion", id, params });
    // like the in-process engine, a request that fails before its first chunk rejects here
    await new Promise<boolean>((resolve) => {
      if (p.started || p.done) resolve(true);
      else p.onStart = resolve;
    });
    if (p.error !== null && p.queue.length === 0) {
      this.pending.delete(id);
      signal.removeEventListener("abort", abort);
      throw p.error;
    }
    const engine = this;
    return {
      [Symbol.asyncIterator](): AsyncIterator<ChatCompletionChunk> {
        return {
          async next(): Promise<IteratorResult<ChatCompletionChunk>> {
            for (;;) {
              const c = p.queue.shift();
              if (c !== undefined) return { value: c, done: false };
              if (p.done) {
                engine.pending.delete(id);
                signal.removeEventListener("abort", abort);
                if (p.error !== null) throw p.error;
                return { value: undefined, done: true };
              }
              if (!p.pulled) {
                p.pulled = true;
                engine.post({ type: "pull", id });
              }
              await new Promise<void>((r) => (p.wake = r));
              p.wake = null;
            }
          },
          async return(): Promise<IteratorResult<ChatCompletionChunk>> {
            if (!p.done) abort();
            engine.pending.delete(id);
            signal.removeEventListener("abort", abort);
            return { value: undefined, done: true };
          },
        };
      },
    };
  }

  private post(m: EngineRequest): void {
    this.worker.postMessage(m);
  }

  private onMessage(m: EngineReply): void {
    const p = this.pending.get(m?.id);
    if (p === undefined) return;
    p.pulled = false;
    if (m.type === "chunk") p.queue.push(m.chunk);
    else {
      p.done = true;
      if (m.type === "error") p.error = errorFromWire(m.error);
    }
    p.started = true;
    p.onStart?.(true);
    p.onStart = null;
    p.wake?.();
  }
}

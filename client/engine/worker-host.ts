// The worker's side of client/engine/worker-engine.ts: serves `chat.completions.create` of a client that holds the
// model (in the worker) to the page, one postMessage per chunk. Call it in a dedicated worker's module once the model
// is loaded: `serveChatEngine(self, createClient({ baseUrl, apiKey, model }))`.

import { APIError, APIUserAbortError } from "../core/error.ts";
import { InvalidRequestError, type ChatCompletionChunk } from "../chat/completions.ts";
import type { Stream } from "../core/stream.ts";
import type { EngineReply, EngineRequest, MessageEndpoint, WireError } from "./protocol.ts";

export interface EngineClient {
  readonly chat: { readonly completions: { create(params: never, options?: { signal?: AbortSignal }): Promise<unknown> } };
}

export function errorToWire(e: unknown): WireError {
  if (e instanceof InvalidRequestError) return { name: e.name, message: e.message, code: e.code, param: e.param, detail: e.detail };
  if (e instanceof APIError) return { name: e.name, message: e.message, status: e.status, body: e.error ? { error: e.error } : undefined, ...(e.code ? { code: e.code } : {}) };
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return { name: e.name, message: e.message, ...(typeof code === "string" ? { code } : {}) };
  }
  return { name: "Error", message: String(e) };
}

/** Answers the page's completion requests on `scope` (the worker's global scope) with `client`. Returns a stop function. */
export function serveChatEngine(scope: MessageEndpoint, client: EngineClient): () => void {
  const running = new Map<number, { controller: AbortController; credits: number; wake: (() => void) | null }>();
  const reply = (m: EngineReply) => scope.postMessage(m);
  const listener = (ev: { data: unknown }) => {
    const m = ev.data as EngineRequest;
    const r = running.get(m?.id);
    if (m?.type === "abort" || m?.type === "pull") {
      if (r === undefined) return;
      if (m.type === "abort") r.controller.abort();
      else r.credits++;
      r.wake?.();
      return;
    }
    if (m?.type !== "completion") return;
    const run = { controller: new AbortController(), credits: 1, wake: null as (() => void) | null };
    running.set(m.id, run);
    const credit = async (): Promise<void> => {
      while (run.credits === 0 && !run.controller.signal.aborted) await new Promise<void>((w) => (run.wake = w));
      run.wake = null;
      run.credits--;
    };
    void (async () => {
      let it: AsyncIterator<ChatCompletionChunk> | null = null;
      try {
        const stream = (await client.chat.completions.create({ ...m.params, stream: true } as never, { signal: run.controller.signal })) as Stream<ChatCompletionChunk>;
        it = stream[Symbol.asyncIterator]();
        for (;;) {
          await credit();
          if (run.controller.signal.aborted) throw new APIUserAbortError();
          const r = await it.next();
          if (r.done === true) break;
          reply({ type: "chunk", id: m.id, chunk: r.value });
        }
        it = null;
        reply({ type: "end", id: m.id });
      } catch (e) {
        reply({ type: "error", id: m.id, error: errorToWire(e) });
      } finally {
        // an abort between chunks: stop the producer, which rolls the turn back
        if (it !== null) await it.return?.().catch(() => undefined);
        running.delete(m.id);
      }
    })();
  };
  scope.addEventListener("message", listener);
  return () => {
    scope.removeEventListener?.("message", listener);
    for (const r of running.values()) {
      r.controller.abort();
      r.wake?.();
    }
  };
}

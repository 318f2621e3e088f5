// The engine protocol of client/engine/ over a MessageChannel in Node (the Chromium test runs it in a real Web
// Worker): a page-side client with `engine: new WorkerEngine(port)` and no model gets the same chunks, answers and
// usage as the in-process client; an abort stops the turn in the host (the session is unchanged); errors come back as
// the SDK's typed classes (InvalidRequestError with its param, AuthenticationError for a bad session token).

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MessageChannel } from "node:worker_threads";
import { APIUserAbortError, AuthenticationError, createClient, InvalidRequestError, serveChatEngine, WorkerEngine, type ChatCompletionChunk, type MessageEndpoint, type MlaEdge } from "../../client/index.ts";
import type { ChatModel } from "../../runtime/chat-model.ts";
import { caseImage, demoChatModel, readEvalCases, type EvalCase } from "./fixture-model.ts";
import { startEdgeServer, type EdgeServer } from "../e2e/edge-server.ts";

let edge: EdgeServer;
let model: ChatModel;
let cases: EvalCase[];
let local: MlaEdge;
let remote: MlaEdge;
let stop: () => void;
let engine: WorkerEngine;
const mla = { codec: { bits: 4, group: 32, axis: "token", rope: "int8" } as const, chunk_tokens: 16 };

beforeAll(async () => {
  edge = await startEdgeServer();
  model = await demoChatModel();
  cases = await readEvalCases(2);
  local = createClient({ baseUrl: edge.url, apiKey: edge.apiKey, model });
  const { port1, port2 } = new MessageChannel();
  port1.start();
  port2.start();
  stop = serveChatEngine(port2 as unknown as MessageEndpoint, createClient({ baseUrl: edge.url, apiKey: edge.apiKey, model }));
  engine = new WorkerEngine(port1 as unknown as MessageEndpoint);
  remote = createClient({ baseUrl: edge.url, apiKey: edge.apiKey, engine });
  (globalThis as { __ports?: unknown }).__ports = [port1, port2];
});

afterAll(async () => {
  stop?.();
  engine?.close();
  for (const p of ((globalThis as { __ports?: { close(): void }[] }).__ports ?? [])) p.close();
  await edge?.stop();
});

describe("chat engine over postMessage", () => {
  it("should stream the same completion as the in-process engine, then continue the session", async () => {
    const c = cases[0];
    const messages = [{ role: "user" as const, content: [{ type: "image" as const, image: caseImage(c) }, { type: "text" as const, text: c.turns[0].question }] }];
    const want = await local.chat.completions.create({ messages, temperature: 0, max_tokens: 8, mla_edge: mla });
    const chunks: ChatCompletionChunk[] = [];
    const stream = await remote.chat.completions.create({ messages, temperature: 0, max_tokens: 8, mla_edge: mla, stream: true });
    for await (const ch of stream) chunks.push(ch);
    const last = chunks[chunks.length - 1];
    expect(chunks[0].choices[0].delta.role).toBe("assistant");
    expect(chunks.map((ch) => ch.choices[0]?.delta.content ?? "").join("")).toBe(want.choices[0].message.content);
    expect(last.mla_edge?.completion_ids).toEqual(want.mla_edge.completion_ids);
    expect(last.usage).toEqual(want.usage);
    const s = last.mla_edge!.session!;
    // non-streamed through the engine: the next turn on the same session, as the in-process client answers it
    const next = [{ role: "user" as const, content: c.turns[1].question }];
    const a = await local.chat.completions.create({ messages: next, temperature: 0, max_tokens: 8, mla_edge: { session: want.mla_edge.session } });
    const b = await remote.chat.completions.create({ messages: next, temperature: 0, max_tokens: 8, mla_edge: { session: { id: s.id, token: s.token } } });
    expect(b.object).toBe("chat.completion");
    expect(b.mla_edge.completion_ids).toEqual(a.mla_edge.completion_ids);
    expect(b.usage.prompt_tokens_details.cached_tokens).toBe(s.tokens);
  });

  it("should abort in the host and pass typed errors back", async () => {
    const c = cases[1];
    const first = await remote.chat.completions.create({ messages: [{ role: "user", content: [{ type: "image", image: caseImage(c) }, { type: "text", text: c.turns[0].question }] }], temperature: 0, max_tokens: 8, mla_edge: mla });
    const s = first.mla_edge.session;
    const st = await remote.chat.completions.create({ messages: [{ role: "user", content: c.turns[1].question }], temperature: 2, seed: 3, max_tokens: 8, logit_bias: { [String(model.format.stopIds[0])]: -100 }, stream: true, mla_edge: { session: { id: s.id, token: s.token } } });
    const err = await (async () => {
      try {
        for await (const ch of st) if (ch.choices[0]?.delta.content) st.controller.abort();
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(APIUserAbortError);
    await new Promise((r) => setTimeout(r, 50));
    const m = await local.store.sessions.retrieve(s.id, { token: s.token });
    expect(m.head).toBe(1);

    const bad = await remote.chat.completions.create({ messages: [{ role: "user", content: "color at b3" }], n: 3 }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(InvalidRequestError);
    expect([(bad as InvalidRequestError).param, (bad as InvalidRequestError).code, (bad as InvalidRequestError).message]).toEqual(["n", "invalid_request", "n: only n = 1 is supported, got 3"]);
    const denied = await remote.chat.completions.create({ messages: [{ role: "user", content: "color at b3" }], mla_edge: { session: { id: s.id, token: "not-a-token" } } }).catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(AuthenticationError);
    expect((denied as AuthenticationError).status).toBe(401);
  });
});

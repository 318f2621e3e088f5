// chat.completions.create on fixtures/qwen25vl-mini (its full-rank MLA conversion, the model's own tokenizer, chat
// template, image processor and vision transformer) against the real edge store, checked against reference.json
// (transformers' ids): a streamed completion with a data: URL image gives the reference's greedy ids (one_image); the
// stateless OpenAI-style two_turn conversation (image, the given assistant answer, a new question) with no session
// replays turn 1 into a new session exactly as the template renders it (45 prompt + 14 answer + <|im_end|> \n) and
// answers with the reference's greedy ids; a new client (a reload) continues that session from the edge with
// cached_tokens = the restored prefix and the answer of the uninterrupted client.

import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type ChatCompletionChunk, type ChatCompletionMessageParam } from "../../client/index.ts";
import { loadNodeCodec } from "../../format/codec/wasm.node.ts";
import { loadChatModelDir } from "../../runtime/chat-model.node.ts";
import type { ChatModel } from "../../runtime/chat-model.ts";
import { decodeImageBytes } from "../../runtime/inputs/image-decode.node.ts";
import { runCli } from "../cli/run-cli.ts";
import { loadReference, refCase } from "../runtime/qwen25vl-fixture.ts";
import { startEdgeServer, type EdgeServer } from "./edge-server.ts";

const MINI = fileURLToPath(new URL("../../fixtures/qwen25vl-mini/", import.meta.url));
// C = 128: longer than any reference case with its answer, so no slot is sealed (quantized) before the reference's
// ids are compared (the quantized path is tests/e2e/qwen25vl-restore.test.ts'); the reload part restores raw chunks.
const mla = { codec: { bits: 4, group: 32, axis: "token", rope: "int8" } as const, chunk_tokens: 128 };

let edge: EdgeServer;
let model: ChatModel;
let tmp: string;

const client = () => createClient({ baseUrl: edge.url, apiKey: edge.apiKey, model, decodeImage: decodeImageBytes });

async function withDataUrls(messages: ChatCompletionMessageParam[]): Promise<ChatCompletionMessageParam[]> {
  const out: ChatCompletionMessageParam[] = [];
  for (const m of messages) {
    if (typeof m.content === "string" || m.content === null) {
      out.push(m);
      continue;
    }
    const parts = [];
    for (const p of m.content) {
      if (p.type === "image_url" && typeof p.image_url.url === "string") {
        const bytes = await readFile(join(MINI, p.image_url.url));
        parts.push({ type: "image_url" as const, image_url: { url: `data:image/png;base64,${bytes.toString("base64")}` } });
      } else parts.push(p);
    }
    out.push({ ...m, content: parts });
  }
  return out;
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "mla-edge-qwen-completions-"));
  const mlaDir = join(tmp, "mini-mla");
  const r = await runCli(["convert", "--model", MINI, "--out", mlaDir, "--strategy", "high", "--rope-dims", "16", "--svd", "none", "--json"]);
  if (r.code !== 0) throw new Error(r.stderr);
  edge = await startEdgeServer();
  model = await loadChatModelDir(mlaDir, { codec: loadNodeCodec() });
}, 180_000);

afterAll(async () => {
  await edge?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe("chat.completions on qwen25vl-mini", () => {
  it("should stream the reference's greedy ids for an image given as a data: URL", async () => {
    const c = refCase(loadReference(), "one_image") as unknown as { messages: ChatCompletionMessageParam[]; greedy: { ids: number[] }; num_tokens: number };
    const stream = await client().chat.completions.create({ messages: await withDataUrls(c.messages), stream: true, temperature: 0, max_tokens: c.greedy.ids.length, mla_edge: mla });
    const chunks: ChatCompletionChunk[] = [];
    for await (const ch of stream) chunks.push(ch);
    const last = chunks[chunks.length - 1];
    expect(last.mla_edge?.completion_ids).toEqual(c.greedy.ids);
    expect(last.usage?.prompt_tokens).toBe(c.num_tokens);
    expect(chunks.map((ch) => ch.choices[0]?.delta.content ?? "").join("")).toBe(model.processor.decode(c.greedy.ids, { skipSpecialTokens: true }));
  }, 300_000);

  it("should replay a stateless two-turn conversation as the template renders it, answer like the reference, and continue after a reload", async () => {
    const c = refCase(loadReference(), "two_turn") as unknown as {
      messages: ChatCompletionMessageParam[];
      greedy: { ids: number[] };
      num_tokens: number;
      turn1: { input_ids_len: number; answer_ids: number[] };
    };
    const messages = await withDataUrls(c.messages);
    const a = client();
    const r = await a.chat.completions.create({ messages, temperature: 0, max_tokens: c.greedy.ids.length, mla_edge: mla });
    expect(r.mla_edge.replayed_tokens).toBe(c.turn1.input_ids_len + c.turn1.answer_ids.length + 2);
    expect(r.usage.prompt_tokens).toBe(c.num_tokens);
    expect(r.usage.prompt_tokens_details.cached_tokens).toBe(0);
    expect(r.mla_edge.completion_ids).toEqual(c.greedy.ids);

    // a third turn: the uninterrupted client continues from its cache; a new client (reload) restores from the edge
    const history: ChatCompletionMessageParam[] = [...messages, { role: "assistant", content: r.choices[0].message.content }, { role: "user", content: "And which colors?" }];
    const s = r.mla_edge.session;
    const reloaded = await client().chat.completions.create({ messages: history, temperature: 0, max_tokens: 8, mla_edge: { session: { id: s.id, token: s.token } } });
    expect(reloaded.mla_edge.restored_tokens).toBe(s.tokens);
    expect(reloaded.usage.prompt_tokens_details.cached_tokens).toBe(s.tokens);
    // the same question on a fork of the same turn, continued by the first client's in-memory copy of the parent
    const uninterrupted = await a.chat.completions.create({ messages: history, temperature: 0, max_tokens: 8, mla_edge: { session: { id: s.id, token: s.token }, fork_at: 2 } });
    expect(uninterrupted.mla_edge.completion_ids).toEqual(reloaded.mla_edge.completion_ids);
  }, 300_000);
});

// client.chat.completions.create against the real edge store (wrangler's workerd in process) on the demo's converted
// tiny-qwen-vl: OpenAI request/response shapes, a streamed completion with an image (data: URL PNG), then a second
// request from a new client (a "reload") whose cached_tokens is the restored prefix and whose answer equals an
// uninterrupted run of the session API; stop strings, max_tokens, seeded sampling, temperature 0 = greedy, history
// replay into a new session, fork_at, abort, and typed errors for bad params.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PNG } from "pngjs";
import { createServer } from "node:http";
import {
  APIUserAbortError,
  createClient,
  InvalidRequestError,
  type ChatCompletionChunk,
  type ChatCompletionMessageParam,
  type Fetch,
  type MlaEdge,
} from "../../client/index.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import { decodeImageBytes } from "../../runtime/inputs/image-decode.node.ts";
import type { ChatModel } from "../../runtime/chat-model.ts";
import type { RgbImage } from "../../runtime/inputs/messages.ts";
import { caseImage, demoChatModel, readEvalCases, type EvalCase } from "./fixture-model.ts";
import { startEdgeServer, type EdgeServer } from "../e2e/edge-server.ts";

const CODEC: CodecParams = { bits: 4, group: 32, axis: "token", rope: "int8" };
const CHUNK_TOKENS = 16;

let edge: EdgeServer;
let model: ChatModel;
let cases: EvalCase[];
const requests: string[] = [];

function client(): MlaEdge {
  const fetch: Fetch = (input, init) => {
    requests.push(`${init?.method ?? "GET"} ${String(input)}`);
    return globalThis.fetch(input, init);
  };
  return createClient({ baseUrl: edge.url, apiKey: edge.apiKey, model, decodeImage: decodeImageBytes, fetch });
}

function pngDataUrl(img: RgbImage): string {
  const png = new PNG({ width: img.width, height: img.height });
  for (let i = 0; i < img.width * img.height; i++) {
    png.data[i * 4] = img.data[i * 3];
    png.data[i * 4 + 1] = img.data[i * 3 + 1];
    png.data[i * 4 + 2] = img.data[i * 3 + 2];
    png.data[i * 4 + 3] = 255;
  }
  return `data:image/png;base64,${PNG.sync.write(png).toString("base64")}`;
}

const mla = { codec: CODEC, chunk_tokens: CHUNK_TOKENS };

beforeAll(async () => {
  edge = await startEdgeServer();
  model = await demoChatModel();
  cases = await readEvalCases(4);
});

afterAll(async () => {
  await edge?.stop();
});

describe("chat.completions.create", () => {
  it("should stream a completion with an image, then continue it after a reload from the restored cache like an uninterrupted run", async () => {
    const c = cases[0];
    const image = caseImage(c);
    const q = c.turns.map((t) => t.question);
    // The reference: the session API, uninterrupted, greedy.
    const ref = await client().sessions.create({ codec: CODEC, chunkTokens: CHUNK_TOKENS });
    const r1 = await ref.chat({ messages: [{ role: "user", content: [{ type: "image", image }, { type: "text", text: q[0] }] }], maxTokens: 8 });
    const lengthAfter1 = ref.length;
    const r2 = await ref.chat({ messages: [{ role: "user", content: q[1] }], maxTokens: 8 });

    const first = client();
    const stream = await first.chat.completions.create({
      model: "tiny-qwen-vl",
      messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: pngDataUrl(image) } }, { type: "text", text: q[0] }] }],
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0,
      max_tokens: 8,
      mla_edge: mla,
    });
    expect(typeof stream.controller.abort).toBe("function");
    const chunks: ChatCompletionChunk[] = [];
    for await (const ch of stream) chunks.push(ch);
    expect(chunks.every((ch) => ch.object === "chat.completion.chunk" && ch.id === chunks[0].id && ch.model === "tiny-qwen-vl")).toBe(true);
    expect(chunks[0].choices[0].delta).toEqual({ role: "assistant", content: "" });
    const content = chunks.map((ch) => ch.choices[0]?.delta.content ?? "").join("");
    expect(content).toBe(r1.message.content);
    const finishing = chunks[chunks.length - 2];
    expect(finishing.choices[0].finish_reason).toBe("stop"); // the model ended with its end token
    expect(finishing.mla_edge?.completion_ids).toEqual(r1.tokenIds);
    const usageChunk = chunks[chunks.length - 1];
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage).toEqual({
      prompt_tokens: r1.usage.prompt_tokens,
      completion_tokens: r1.tokenIds.length,
      total_tokens: r1.usage.prompt_tokens + r1.tokenIds.length,
      prompt_tokens_details: { cached_tokens: 0 },
    });
    const session = usageChunk.mla_edge!.session!;
    expect(session.turns).toBe(1);
    expect(session.tokens).toBe(lengthAfter1);

    // Reload: a new client knows only id + token; the history comes back from the edge, not from prefill.
    const visionBefore = model.vision.calls;
    const reloaded = client();
    const second = await reloaded.chat.completions.create({
      messages: [
        { role: "user", content: [{ type: "image_url", image_url: { url: pngDataUrl(image) } }, { type: "text", text: q[0] }] },
        { role: "assistant", content: content },
        { role: "user", content: q[1] },
      ],
      temperature: 0,
      max_tokens: 8,
      mla_edge: { session: { id: session.id, token: session.token } },
    });
    expect(model.vision.calls).toBe(visionBefore); // the image of turn 1 is not encoded again
    expect(second.object).toBe("chat.completion");
    expect(second.mla_edge.restored_tokens).toBe(lengthAfter1);
    expect(second.usage.prompt_tokens_details.cached_tokens).toBe(lengthAfter1);
    expect(second.usage.prompt_tokens).toBe(lengthAfter1 + r2.usage.prompt_tokens);
    expect(second.usage.total_tokens).toBe(second.usage.prompt_tokens + second.usage.completion_tokens);
    expect(second.mla_edge.completion_ids).toEqual(r2.tokenIds);
    expect(second.choices[0].message).toEqual({ role: "assistant", content: r2.message.content, refusal: null });
    expect(second.mla_edge.session).toEqual({ id: session.id, token: session.token, turns: 2, tokens: ref.length });
    expect(second.mla_edge.kv_bytes).toBe(ref.kvBytes.stored);
    expect(second.mla_edge.kv_bytes_bf16).toBe(ref.kvBytes.uncompressed);

    // image_url as an http(s) URL and as a Blob give the same answer as the data: URL and the pixels
    const png = Buffer.from(pngDataUrl(image).split(",")[1], "base64");
    const srv = createServer((_req, res) => res.writeHead(200, { "content-type": "image/png" }).end(png));
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    try {
      const port = (srv.address() as { port: number }).port;
      for (const url of [`http://127.0.0.1:${port}/grid.png`, new Blob([png], { type: "image/png" })]) {
        const r = await client().chat.completions.create({ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url } }, { type: "text", text: q[0] }] }], temperature: 0, max_tokens: 8, mla_edge: mla });
        expect(r.mla_edge.completion_ids, String(url)).toEqual(r1.tokenIds);
      }
    } finally {
      srv.close();
    }

    // The same client continues from its session cache: nothing restored, the whole history cached.
    const third = await reloaded.chat.completions.create({ messages: [{ role: "user", content: q[2] }], temperature: 0, max_tokens: 8, mla_edge: { session: { id: session.id, token: session.token } } });
    const r3 = await ref.chat({ messages: [{ role: "user", content: q[2] }], maxTokens: 8 });
    expect(third.mla_edge.restored_tokens).toBe(0);
    expect(third.usage.prompt_tokens_details.cached_tokens).toBe(second.mla_edge.session.tokens);
    expect(third.mla_edge.completion_ids).toEqual(r3.tokenIds);
  });

  it("should replay a history the session lacks and answer like the uninterrupted run; fork_at branches", async () => {
    const c = cases[1];
    const image = caseImage(c);
    const q = c.turns.map((t) => t.question);
    const ref = await client().sessions.create({ codec: CODEC, chunkTokens: CHUNK_TOKENS });
    const a1 = await ref.chat({ messages: [{ role: "user", content: [{ type: "image", image }, { type: "text", text: q[0] }] }], maxTokens: 8 });
    const a2 = await ref.chat({ messages: [{ role: "user", content: q[1] }], maxTokens: 8 });
    const history: ChatCompletionMessageParam[] = [
      { role: "user", content: [{ type: "image", image }, { type: "text", text: q[0] }] },
      { role: "assistant", content: a1.message.content },
      { role: "user", content: q[1] },
    ];
    const cl = client();
    const replayed = await cl.chat.completions.create({ messages: history, temperature: 0, max_tokens: 8, mla_edge: mla });
    expect(replayed.mla_edge.replayed_tokens).toBe(a1.usage.prompt_tokens + a1.tokenIds.length);
    expect(replayed.usage.prompt_tokens_details.cached_tokens).toBe(0);
    expect(replayed.mla_edge.completion_ids).toEqual(a2.tokenIds);
    expect(replayed.mla_edge.session.turns).toBe(2);

    // fork at turn 1 and ask the second question again: same answer, in a new session; the parent keeps 2 turns
    const s = replayed.mla_edge.session;
    const forked = await client().chat.completions.create({ messages: history, temperature: 0, max_tokens: 8, mla_edge: { session: { id: s.id, token: s.token }, fork_at: 1 } });
    expect(forked.mla_edge.forked_from).toBe(s.id);
    expect(forked.mla_edge.session.id).not.toBe(s.id);
    expect(forked.mla_edge.session.turns).toBe(2);
    expect(forked.mla_edge.restored_tokens).toBe(a1.usage.prompt_tokens + a1.tokenIds.length);
    expect(forked.mla_edge.completion_ids).toEqual(a2.tokenIds);
    expect((await cl.store.sessions.retrieve(s.id, { token: s.token })).head).toBe(2);

    // a history shorter than the session's, without fork_at, is refused before anything runs
    const err = await cl.chat.completions.create({ messages: history, mla_edge: { session: { id: s.id, token: s.token } }, temperature: 0 }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InvalidRequestError);
    expect((err as InvalidRequestError).code).toBe("history_mismatch");
  });

  it("should end at stop strings (also across tokens and inside a token, stop text not returned), at max_tokens, reproduce a seed, and be greedy at temperature 0", async () => {
    const cl = client();
    const c = cases[2];
    const image = caseImage(c);
    const messages: ChatCompletionMessageParam[] = [{ role: "user", content: [{ type: "image", image }, { type: "text", text: c.turns[0].question }] }];
    const ask = (extra: object) => cl.chat.completions.create({ messages, mla_edge: mla, logit_bias: { [String(model.format.stopIds[0])]: -100 }, ...extra });

    // temperature 0 = the session API's greedy answer
    const greedyRef = await (await cl.sessions.create({ codec: CODEC, chunkTokens: CHUNK_TOKENS })).chat({ messages: [{ role: "user", content: [{ type: "image", image }, { type: "text", text: c.turns[0].question }] }], maxTokens: 8 });
    expect((await cl.chat.completions.create({ messages, mla_edge: mla, temperature: 0, max_tokens: 8 })).mla_edge.completion_ids).toEqual(greedyRef.tokenIds);

    // the end token biased away (logit_bias −100): a hot seeded sample runs the full 8 tokens
    const end = model.format.stopIds[0];
    const noEnd = { [String(end)]: -100 };
    const seed = 1;
    const r = await cl.chat.completions.create({ messages, mla_edge: mla, temperature: 2, seed, max_tokens: 8, logit_bias: noEnd });
    expect(r.mla_edge.completion_ids).toHaveLength(8);
    expect(r.mla_edge.completion_ids).not.toContain(end);
    expect(r.choices[0].finish_reason).toBe("length");
    expect(r.usage.completion_tokens).toBe(8);
    const long = { ids: r.mla_edge.completion_ids, text: r.choices[0].message.content };
    const ids = long.ids;
    expect(new Set(ids).size, `a varied sample: ${long.text}`).toBeGreaterThan(3);
    const words = ids.map((i) => model.processor.decode([i], { skipSpecialTokens: true }));
    expect(long.text).toBe(words.join(" "));

    // same seed → same tokens; other seeds differ somewhere
    expect((await ask({ temperature: 2, seed, max_tokens: 8 })).mla_edge.completion_ids).toEqual(ids);
    const others = await Promise.all([seed + 100, seed + 200].map(async (s) => (await ask({ temperature: 2, seed: s, max_tokens: 8 })).mla_edge.completion_ids));
    expect(others.some((o) => o.join() !== ids.join())).toBe(true);

    // max_tokens: the first k of the same sampled run
    const k3 = await ask({ temperature: 2, seed, max_completion_tokens: 3 });
    expect(k3.mla_edge.completion_ids).toEqual(ids.slice(0, 3));
    expect(k3.choices[0].finish_reason).toBe("length");
    expect(k3.choices[0].message.content).toBe(words.slice(0, 3).join(" "));

    // a stop string spanning tokens 3 and 4 (" w3 w4"): generation ends at token 4, text before the stop only
    const span = ` ${words[2]} ${words[3]}`;
    const firstAt = long.text.indexOf(span);
    const stopped = await ask({ temperature: 2, seed, max_tokens: 8, stop: ["zzz-not-there", span] });
    expect(firstAt).toBeGreaterThan(0);
    const endsAt = Math.min(...[...Array(8).keys()].filter((n) => words.slice(0, n + 1).join(" ").includes(span)));
    expect(stopped.mla_edge.completion_ids).toEqual(ids.slice(0, endsAt + 1));
    expect(stopped.choices[0].finish_reason).toBe("stop");
    expect(stopped.choices[0].message.content).toBe(long.text.slice(0, firstAt));

    // a stop string inside one token's text: the answer stops mid-word
    const w = words[1];
    const inner = w.length >= 2 ? w.slice(1) : w;
    const cut = await ask({ temperature: 2, seed, max_tokens: 8, stop: inner });
    const at = long.text.indexOf(inner);
    expect(cut.choices[0].message.content).toBe(long.text.slice(0, at));
    const cutAt = Math.min(...[...Array(8).keys()].filter((n) => words.slice(0, n + 1).join(" ").includes(inner)));
    expect(cut.mla_edge.completion_ids).toEqual(ids.slice(0, cutAt + 1));
    expect(cut.choices[0].finish_reason).toBe("stop");

    // streamed with the same stop: deltas never include the stop text and add up to the same content
    const st = await cl.chat.completions.create({ messages, mla_edge: mla, logit_bias: noEnd, temperature: 2, seed, max_tokens: 8, stop: span, stream: true });
    const deltas: string[] = [];
    let finish: string | null = null;
    for await (const ch of st) {
      if (ch.choices[0]?.delta.content) deltas.push(ch.choices[0].delta.content);
      if (ch.choices[0]?.finish_reason) finish = ch.choices[0].finish_reason;
    }
    expect(deltas.join("")).toBe(long.text.slice(0, firstAt));
    expect(finish).toBe("stop");
  });

  it("should stop on abort and break, leaving the session as it was", async () => {
    const cl = client();
    const c = cases[3];
    const image = caseImage(c);
    const done = await cl.chat.completions.create({ messages: [{ role: "user", content: [{ type: "image", image }, { type: "text", text: c.turns[0].question }] }], temperature: 0, max_tokens: 8, mla_edge: mla });
    const s = done.mla_edge.session;
    const next = () => cl.chat.completions.create({ messages: [{ role: "user", content: c.turns[1].question }], temperature: 2, seed: 7, max_tokens: 8, stream: true, mla_edge: { session: { id: s.id, token: s.token } } });

    const a = await next();
    for await (const ch of a) if (ch.choices[0]?.delta.content) break; // break after the first content
    const b = await next();
    const caught = await (async () => {
      try {
        for await (const ch of b) if (ch.choices[0]?.delta.content) b.controller.abort();
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(caught).toBeInstanceOf(APIUserAbortError);
    const ac = new AbortController();
    ac.abort();
    await expect(cl.chat.completions.create({ messages: [{ role: "user", content: c.turns[1].question }], mla_edge: { session: { id: s.id, token: s.token } } }, { signal: ac.signal })).rejects.toBeInstanceOf(APIUserAbortError);
    const m = await cl.store.sessions.retrieve(s.id, { token: s.token });
    expect([m.head, m.tokens]).toEqual([1, s.tokens]);
    const ok = await cl.chat.completions.create({ messages: [{ role: "user", content: c.turns[1].question }], temperature: 0, max_tokens: 8, mla_edge: { session: { id: s.id, token: s.token } } });
    expect(ok.mla_edge.session.turns).toBe(2);
    expect(ok.usage.prompt_tokens_details.cached_tokens).toBe(s.tokens);
  });

  it("should refuse bad params with typed errors before any request", async () => {
    const cl = client();
    const user: ChatCompletionMessageParam[] = [{ role: "user", content: "color at b3" }];
    const bad: [object, string | null, string][] = [
      [{ messages: user, n: 2 }, "n", "invalid_request"],
      [{ messages: user, temperature: -1 }, "temperature", "invalid_request"],
      [{ messages: user, temperature: 3 }, "temperature", "invalid_request"],
      [{ messages: user, top_p: 0 }, "top_p", "invalid_request"],
      [{ messages: user, max_tokens: 0 }, "max_tokens", "invalid_request"],
      [{ messages: user, max_tokens: 4, max_completion_tokens: 5 }, "max_completion_tokens", "invalid_request"],
      [{ messages: user, seed: -3 }, "seed", "invalid_request"],
      [{ messages: user, seed: 1.5 }, "seed", "invalid_request"],
      [{ messages: user, stop: ["a", "b", "c", "d", "e"] }, "stop", "invalid_request"],
      [{ messages: user, stop: "" }, "stop", "invalid_request"],
      [{ messages: user, model: "gpt-4o" }, "model", "invalid_request"],
      [{ messages: user, logit_bias: { "999999": 5 } }, "logit_bias", "invalid_request"],
      [{ messages: user, logit_bias: { "5": -101 } }, "logit_bias", "invalid_request"],
      [{ messages: user, logit_bias: { end: -100 } }, "logit_bias", "invalid_request"],
      [{ messages: user, stream_options: { include_usage: true } }, "stream_options", "invalid_request"],
      [{ messages: [] }, "messages", "invalid_request"],
      [{ messages: [...user, { role: "assistant", content: "red" }] }, "messages", "invalid_request"],
      [{ messages: [{ role: "assistant", content: "red" }, ...user] }, "messages[0]", "invalid_request"],
      [{ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "/etc/passwd" } }] }] }, "messages[0].content[0].image_url.url", "invalid_request"],
      [{ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "data:image/png;base64,%%%" } }] }] }, "messages[0].content[0].image_url.url", "invalid_request"],
      [{ messages: [{ role: "user", content: [{ type: "audio", audio: {} }] }] }, "messages[0].content[0].type", "invalid_request"],
      [{ messages: user, mla_edge: { fork_at: 1 } }, "mla_edge.fork_at", "invalid_request"],
      [{ messages: user, mla_edge: { session: { id: "x" } } }, "mla_edge.session", "invalid_request"],
    ];
    const before = requests.length;
    for (const [params, param, code] of bad) {
      const e = await cl.chat.completions.create(params as never).then(
        () => null,
        (x: unknown) => x,
      );
      expect(e, JSON.stringify(params)).toBeInstanceOf(InvalidRequestError);
      expect([(e as InvalidRequestError).param, (e as InvalidRequestError).code], JSON.stringify(params)).toEqual([param, code]);
    }
    expect(requests.length - before).toBe(0); // nothing reached the edge: no session was created
    // a message the model's chat template refuses (the tiny fixture's has no system role): typed, and the session the
    // request created is deleted again
    const sys = await cl.chat.completions.create({ messages: [{ role: "system", content: "be brief" }, ...user], mla_edge: mla }).then(
      () => null,
      (x: unknown) => x,
    );
    expect(sys).toBeInstanceOf(InvalidRequestError);
    expect((sys as InvalidRequestError).param).toBe("messages");
    const made = requests.slice(before).filter((r) => r.startsWith("POST") && r.endsWith("/v1/sessions"));
    const deleted = requests.slice(before).filter((r) => r.startsWith("DELETE"));
    expect([made.length, deleted.length]).toEqual([1, 1]);
    // a client without an image decoder (Node, no createImageBitmap) says so
    const plain = createClient({ baseUrl: edge.url, apiKey: edge.apiKey, model });
    await expect(plain.chat.completions.create({ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: pngDataUrl(caseImage(cases[0])) } }] }] })).rejects.toThrow(/decodeImage/);
  });
});

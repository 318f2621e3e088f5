// The SDK's chat session on fixtures/qwen25vl-mini through the one runtime path `mla-edge generate` uses (the model's
// tokenizer.json, chat template and image processor; its vision transformer; M-RoPE positions): every reference.json
// case gives the reference's input ids and position ids (as uploaded to the store), its 12 greedy ids and its top-20
// logits within the README's 2e-3, for the original checkpoint (loaded as its exact full-rank MLA form) and for
// `mla-edge convert`'s full-rank conversion (on the CPU reference decoder and on the kernels' decode loop).

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatSession, type ChatCompletion } from "../../client/chat/chat-session.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import { loadNodeCodec } from "../../format/codec/wasm.node.ts";
import type { SessionStore } from "../../runtime/cache-store.ts";
import { withDecoderKernels, type ChatModel } from "../../runtime/chat-model.ts";
import { createCpuBackend } from "../../kernels/backend.ts";
import { RuntimeError } from "../../runtime/errors.ts";
import { loadChatModelDir } from "../../runtime/chat-model.node.ts";
import { nodeImageLoader } from "../../runtime/inputs/processor.node.ts";
import type { InputMessage } from "../../runtime/inputs/processor.ts";
import { runCli } from "../cli/run-cli.ts";
import { loadReference, refMessages, type RefCase, type Reference } from "../runtime/qwen25vl-fixture.ts";
import { MemoryStore, RecordingStore } from "./memory-store.ts";

const MINI = fileURLToPath(new URL("../../fixtures/qwen25vl-mini/", import.meta.url));
const CODEC: CodecParams = { bits: 4, group: 32, axis: "token", rope: "int8" };
// Longer than any case (prompt + 12 + 2 closing tokens): no slot fills, so no slot is sealed (quantized) and the logits
// are the decoder's own; the quantized path is checked against an uninterrupted run in tests/e2e/qwen25vl-restore.test.ts.
const CHUNK_TOKENS = 128;

let tmp: string;
let ref: Reference;
const models: Record<"original" | "mla" | "mla-kernels", ChatModel> = {} as Record<"original" | "mla" | "mla-kernels", ChatModel>;

beforeAll(async () => {
  ref = loadReference();
  tmp = await mkdtemp(join(tmpdir(), "mla-edge-sdk-qwen-"));
  const mlaDir = join(tmp, "mini-mla");
  const r = await runCli(["convert", "--model", MINI, "--out", mlaDir, "--strategy", "high", "--rope-dims", "16", "--svd", "none", "--json"]);
  if (r.code !== 0) throw new Error(r.stderr);
  const codec = loadNodeCodec();
  models.original = await loadChatModelDir(MINI, { codec });
  models.mla = await loadChatModelDir(mlaDir, { codec });
  // the same model decoding through kernels/ (their f32 CPU fallback: the WebGPU path's host code, in process)
  models["mla-kernels"] = withDecoderKernels(models.mla, createCpuBackend());
}, 180_000);

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});


describe("SDK chat session on qwen25vl-mini (reference.json)", () => {
  for (const kind of ["original", "mla", "mla-kernels"] as const) {
    it(`${kind}: every case's input ids, position ids, greedy ids and top-20 logits`, async () => {
      const model = models[kind];
      expect(ChatSession.fresh(model, new MemoryStore(model.spec, CODEC, CHUNK_TOKENS, model.ref), { codec: CODEC, chunkTokens: CHUNK_TOKENS }).decoderChoice.path).toBe(kind === "mla-kernels" ? "kernels" : "reference");
      expect(model.vision.kind).toBe("qwen2_5_vl-f32");
      expect(model.format.closingIds).toEqual([151645, 198]); // <|im_end|> \n, as the template closes an answer
      for (const c of ref.cases) {
        const store = new RecordingStore(model.spec, CODEC, CHUNK_TOKENS, model.ref);
        const chat = ChatSession.fresh(model, store as SessionStore, { codec: CODEC, chunkTokens: CHUNK_TOKENS });
        const visionBefore = model.vision.calls;
        let streamed = "";
        let out: ChatCompletion | null = null;
        for await (const ev of chat.stream({ messages: refMessages(c), loadImage: nodeImageLoader(MINI), maxTokens: c.greedy.n, topLogits: 20 })) {
          if (ev.type === "token") streamed += ev.text;
          else out = { message: ev.message, tokenIds: ev.tokenIds, usage: ev.usage, finishReason: ev.finishReason, topLogits: ev.topLogits };
        }
        if (out === null) throw new Error("no done event");
        expect(model.vision.calls - visionBefore, c.name).toBe(c.images.length);
        expect(out.usage.prompt_tokens, c.name).toBe(c.num_tokens);
        const control = store.controls[0];
        expect(control.tokenIds.slice(0, c.num_tokens), c.name).toEqual(c.input_ids);
        // token-major [t, h, w] of the prompt = the reference's 3 × n position_ids
        const pos = control.positions.slice(0, 3 * c.num_tokens);
        for (let k = 0; k < 3; k++) expect(pos.filter((_, i) => i % 3 === k), `${c.name} stream ${k}`).toEqual(c.position_ids[k]);
        expect(out.tokenIds, c.name).toEqual(c.greedy.ids);
        const top = out.topLogits!;
        expect(top.map(([id]) => id), c.name).toEqual(c.logits_last.top20.map(([id]) => id));
        for (let i = 0; i < 20; i++) expect(Math.abs(top[i][1] - c.logits_last.top20[i][1]), `${c.name} logit ${i}`).toBeLessThanOrEqual(2e-3);
        // the answer is closed as the template renders it, and the session continues at the reference's rope delta
        expect(control.tokenIds.slice(c.num_tokens)).toEqual([...c.greedy.ids, 151645, 198]);
        expect(chat.nextPosition - chat.length, c.name).toBe(c.rope_deltas);
        expect(out.message.content).toBe(model.processor.decode(c.greedy.ids, { skipSpecialTokens: true }));
        expect(streamed, c.name).toBe(out.message.content); // the token events' text deltas add up to the answer
      }
    }, 300_000);
  }

  it("bad input is a typed error and leaves the session as it was: an image_url without a loader (Node), an unknown part", async () => {
    const model = models.mla;
    const store = new RecordingStore(model.spec, CODEC, CHUNK_TOKENS, model.ref);
    const chat = ChatSession.fresh(model, store as SessionStore, { codec: CODEC, chunkTokens: CHUNK_TOKENS });
    const c = ref.cases.find((x) => x.name === "one_image")!;
    await expect(chat.complete({ messages: refMessages(c), maxTokens: 2 })).rejects.toSatisfy((e: unknown) => e instanceof RuntimeError && e.code === "bad_messages" && /image loader/.test(e.message));
    const odd = [{ role: "user", content: [{ type: "video", video: "x" }] }] as unknown as InputMessage[];
    await expect(chat.complete({ messages: odd, maxTokens: 2 })).rejects.toSatisfy((e: unknown) => e instanceof RuntimeError && e.code === "bad_messages");
    expect(chat.length).toBe(0);
    expect(store.controls).toEqual([]);
    const ok = await chat.complete({ messages: refMessages(ref.cases.find((x) => x.name === "text_only")!), maxTokens: 12 });
    expect(ok.tokenIds).toEqual(ref.cases.find((x) => x.name === "text_only")!.greedy.ids);
  }, 120_000);
});

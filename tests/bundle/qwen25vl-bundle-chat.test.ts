// A real Qwen2.5-VL bundle through the CPU chat runtime: qwen25vl-mini (original checkpoint, loaded as its exact
// full-rank MLA form) packed with f16 weights and f16 vision — no vision.onnx: the model's own vision transformer from
// its visual.* tensors, the tokenizer, chat template and image processor from the bundle's side files. Every
// reference.json case gives the reference's prompt length and greedy ids (transformers', f32), as the checkpoint folder
// does: on this fixture f16 rounding of the weights changes no greedy token.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packBundle } from "../../convert/pack/pack-bundle.ts";
import { loadNodeCodec } from "../../format/codec/wasm.node.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import { loadChatModelDir } from "../../runtime/chat-model.node.ts";
import type { ChatModel } from "../../runtime/chat-model.ts";
import { loadBundleChatModel } from "../../runtime/loader/bundle-chat-model.ts";
import { FOLDER_BASE, folderFetch } from "../../runtime/loader/folder-fetch.node.ts";
import { nodeImageLoader } from "../../runtime/inputs/processor.node.ts";
import type { InputMessage } from "../../runtime/inputs/processor.ts";
import { ChatSession } from "../../client/chat/chat-session.ts";
import type { SessionStore } from "../../runtime/cache-store.ts";
import { MemoryStore } from "../client/memory-store.ts";
import { loadReference } from "../runtime/qwen25vl-fixture.ts";

const MINI = fileURLToPath(new URL("../../fixtures/qwen25vl-mini/", import.meta.url));
const CODEC: CodecParams = { bits: 4, group: 32, axis: "token", rope: "int8" };
let work: string;
let bundled: ChatModel;
let folder: ChatModel;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "mla-qwen-bundle-"));
  await packBundle(MINI, join(work, "b"), { weights: "f16", vision: "f16" });
  bundled = (await loadBundleChatModel(FOLDER_BASE, { fetch: folderFetch(join(work, "b")), cache: null, codec: loadNodeCodec() })).model;
  folder = await loadChatModelDir(MINI, { codec: loadNodeCodec() });
}, 180_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

async function run(model: ChatModel, messages: InputMessage[], n: number) {
  const store = new MemoryStore(model.spec, CODEC, 128, model.ref);
  const chat = ChatSession.fresh(model, store as SessionStore, { codec: CODEC, chunkTokens: 128 });
  return chat.complete({ messages, loadImage: nodeImageLoader(MINI), maxTokens: n });
}

describe("qwen25vl-mini bundle → chat model", () => {
  it("should render, see and answer like the checkpoint folder", async () => {
    expect(bundled.vision.kind).toBe("qwen2_5_vl-f32");
    expect(bundled.format.closingIds).toEqual([151645, 198]);
    for (const c of loadReference().cases) {
      const messages = (c as unknown as { messages: InputMessage[] }).messages;
      const a = await run(bundled, messages, c.greedy.n);
      const b = await run(folder, messages, c.greedy.n);
      expect(a.usage.prompt_tokens, c.name).toBe(c.num_tokens);
      expect(b.tokenIds, c.name).toEqual(c.greedy.ids);
      expect(a.tokenIds, `${c.name}: the f16 bundle`).toEqual(c.greedy.ids);
      expect(a.message.content).toBe(b.message.content);
    }
  }, 300_000);
});

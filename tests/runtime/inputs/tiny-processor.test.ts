// The tiny fixture through the same InputProcessor as Qwen2.5-VL: its HF WordLevel tokenizer.json and jinja chat
// template (tokenizer_config.json) give exactly the ids of the code-built WordChatTemplate, and its 32×32 images give
// the tower's [16, 192] patches (= the fixture's patches_u8 / 255).

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { patchBytesToImage } from "../../../runtime/inputs/image.ts";
import { WordChatTemplate } from "./word-chat-template.ts";
import type { ChatMessage } from "../../../runtime/inputs/messages.ts";
import { WordTokenizer } from "../../../runtime/inputs/tokenizer.ts";
import { loadInputProcessor } from "../../../runtime/inputs/processor.node.ts";
import type { InputMessage } from "../../../runtime/inputs/processor.ts";

const DIR = "fixtures/tiny-qwen-vl";
const processor = await loadInputProcessor(DIR);
const word = WordTokenizer.fromJson(JSON.parse(readFileSync(join(DIR, "tokenizer.json"), "utf8")));
const legacy = WordChatTemplate.forFixture(word, 16);
const geometry = { rows: 4, cols: 4, cellPixels: 8 };
const cases = readFileSync(join(DIR, "eval.jsonl"), "utf8")
  .trim()
  .split("\n")
  .slice(0, 6)
  .map((l) => JSON.parse(l) as { patches_u8: string; turns: { question: string; answer: string }[] });

describe("tiny-qwen-vl through the InputProcessor interface", () => {
  it("the HF WordLevel tokenizer.json has the old vocabulary, ids 0..35", () => {
    expect(word.size).toBe(36);
    expect(processor.tokens).toEqual({ image: 3, visionStart: 2, visionEnd: 4, video: null });
    expect(processor.eosTokenIds).toContain(word.id("<end>"));
    for (let i = 0; i < word.size; i++) expect(processor.tokenizer.tokenToId(word.vocab[i])).toBe(i);
  });

  it("eval conversations: same ids as WordChatTemplate, pixel values = patches_u8 / 255", async () => {
    for (const c of cases) {
      const bytes = new Uint8Array(Buffer.from(c.patches_u8, "base64"));
      const image = patchBytesToImage(bytes, geometry);
      // whole conversations of 1, 2, 3 turns (with the answers of earlier turns), each ending with the user's question
      for (let n = 1; n <= c.turns.length; n++) {
        const conv: ChatMessage[] = [];
        c.turns.slice(0, n).forEach((t, k) => {
          conv.push({ role: "user", content: k === 0 ? [{ type: "image", image }, { type: "text", text: t.question }] : t.question });
          if (k < n - 1) conv.push({ role: "assistant", content: t.answer });
        });
        const want = legacy.encode(conv, true);
        const got = await processor.encode(conv as InputMessage[]);
        expect(got.inputIds).toEqual(want.ids);
        expect(got.images.length).toBe(1);
        expect(got.imageGridThw).toEqual([[1, 4, 4]]);
        expect(got.images[0].tokenOffset).toBe(2);
        const expected = Float32Array.from(bytes, (b) => b / 255);
        expect(got.pixelValues).toEqual(expected);
      }
    }
  });

  it("decodes generated ids back to words", () => {
    expect(processor.decode([word.id("red"), word.id("circle"), word.id("<end>")], { skipSpecialTokens: true })).toBe("red circle");
  });

  it("refuses what the code-built template refuses, typed", async () => {
    const code = async (m: unknown[]) => processor.encode(m as InputMessage[]).then(() => "no error", (e: { code?: string }) => e.code);
    expect(await code([{ role: "system", content: "color at a1" }])).toBe("bad_messages");
    expect(await code([{ role: "user", content: "colour at a1" }])).toBe("bad_messages"); // not in the vocabulary
    expect(await code([{ role: "user", content: "color at a1" }, { role: "assistant", content: "red" }])).toBe("bad_messages"); // last is not the user's
    const wrongSize = { width: 30, height: 32, data: new Uint8Array(30 * 32 * 3), channels: 3 as const };
    expect(await code([{ role: "user", content: [{ type: "image", image: wrongSize }] }])).toBe("unsupported_image");
  });
});

// Messages → model inputs on fixtures/qwen25vl-mini: for every case of reference.json the rendered template equals
// `chat_text`, input_ids equal, image grids / token counts / pixel sums match, plus the typed errors.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readImageFile } from "../../../runtime/inputs/image-decode.node.ts";
import { loadInputProcessor, nodeImageLoader } from "../../../runtime/inputs/processor.node.ts";
import type { InputMessage } from "../../../runtime/inputs/processor.ts";

const DIR = "fixtures/qwen25vl-mini";
interface RefCase {
  name: string;
  messages: InputMessage[];
  chat_text: string;
  input_ids: number[];
  num_tokens: number;
  images?: { url: string; image_grid_thw: number[]; num_image_tokens: number; pixel_values: { shape: number[]; sum: number; first16: number[] } }[];
  greedy: { ids: number[]; text: string };
  turn1?: { input_ids_len: number; answer_ids: number[] };
}
const ref = JSON.parse(readFileSync(join(DIR, "reference.json"), "utf8")) as { cases: RefCase[]; special_tokens: Record<string, number>; images: Record<string, { resized_file: string | null }> };
const processor = await loadInputProcessor(DIR);
const loadImage = nodeImageLoader(DIR);

describe("qwen25vl-mini input processor vs reference.json", () => {
  it("takes the vision token ids from config.json, and they match the tokenizer", () => {
    expect(processor.tokens).toEqual({
      image: ref.special_tokens["<|image_pad|>"],
      visionStart: ref.special_tokens["<|vision_start|>"],
      visionEnd: ref.special_tokens["<|vision_end|>"],
      video: ref.special_tokens["<|video_pad|>"],
    });
    for (const [tok, id] of Object.entries(ref.special_tokens)) expect(processor.tokenizer.tokenToId(tok)).toBe(id);
    expect(processor.eosTokenIds).toContain(ref.special_tokens["<|im_end|>"]);
  });

  for (const c of ref.cases) {
    it(`${c.name}: chat_text, input_ids, grids and pixel values`, async () => {
      const out = await processor.encode(c.messages, { loadImage });
      expect(out.text).toBe(c.chat_text);
      expect(out.inputIds.length).toBe(c.num_tokens);
      expect(out.inputIds).toEqual(c.input_ids);
      const imgs = c.images ?? [];
      expect(out.images.length).toBe(imgs.length);
      expect(out.imageGridThw).toEqual(imgs.map((i) => i.image_grid_thw));
      let rows = 0;
      out.images.forEach((im, k) => {
        expect(im.numImageTokens).toBe(imgs[k].num_image_tokens);
        expect(im.shape).toEqual(imgs[k].pixel_values.shape);
        // its pads sit at tokenOffset, right after <|vision_start|>
        expect(c.input_ids[im.tokenOffset - 1]).toBe(ref.special_tokens["<|vision_start|>"]);
        expect(c.input_ids.slice(im.tokenOffset, im.tokenOffset + im.numImageTokens).every((t) => t === processor.tokens.image)).toBe(true);
        expect(c.input_ids[im.tokenOffset + im.numImageTokens]).toBe(ref.special_tokens["<|vision_end|>"]);
        const first16 = out.pixelValues.subarray(rows * im.shape[1], rows * im.shape[1] + 16);
        Array.from(first16).forEach((v, i) => expect(Math.abs(v - imgs[k].pixel_values.first16[i])).toBeLessThanOrEqual(1e-6));
        let sum = 0;
        for (const v of im.pixelValues) sum += v;
        expect(Math.abs(sum - imgs[k].pixel_values.sum)).toBeLessThanOrEqual(1e-2);
        rows += im.shape[0];
      });
      expect(out.pixelValues.length).toBe(rows * 1176);
      expect(processor.decode(c.greedy.ids)).toBe(c.greedy.text);
    });
  }

  it("a pre-decoded image part and its resized PNG give the same ids and bit-identical pixel values", async () => {
    const c = ref.cases.find((x) => x.name === "one_image")!;
    const resized = ref.images["images/noisy_300x150.png"].resized_file!;
    const swap = (url: string): InputMessage[] => c.messages.map((m) => ({ ...m, content: typeof m.content === "string" ? m.content : m.content.map((p) => (p.type === "image_url" ? { type: "image_url" as const, image_url: { url } } : p)) }));
    const a = await processor.encode(swap(resized), { loadImage });
    const b = await processor.encode(c.messages.map((m) => ({ ...m, content: typeof m.content === "string" ? m.content : m.content.map((p) => p) })), {
      loadImage: async () => readImageFile(join(DIR, resized)),
    });
    expect(a.inputIds).toEqual(c.input_ids);
    expect(Buffer.compare(Buffer.from(a.pixelValues.buffer), Buffer.from(b.pixelValues.buffer))).toBe(0);
    const decoded = await readImageFile(join(DIR, resized));
    const viaPart = await processor.encode([{ role: "user", content: [{ type: "image", image: decoded }, { type: "text", text: "Describe the image in one sentence." }] }]);
    expect(viaPart.inputIds).toEqual(c.input_ids);
    expect(Buffer.compare(Buffer.from(a.pixelValues.buffer), Buffer.from(viaPart.pixelValues.buffer))).toBe(0);
  });

  it("two_turn: the turn-1 prompt is a prefix and the history continues with the answer, <|im_end|>, newline", async () => {
    const c = ref.cases.find((x) => x.name === "two_turn")!;
    const t1 = await processor.encode([c.messages[0]], { loadImage });
    expect(t1.inputIds).toEqual(c.input_ids.slice(0, c.turn1!.input_ids_len));
    const n = c.turn1!.input_ids_len;
    expect(c.input_ids.slice(n, n + c.turn1!.answer_ids.length)).toEqual(processor.tokenizer.encode(c.messages[1].content as string));
  });

  it("a data: URL image gives the same inputs as the file", async () => {
    const c = ref.cases.find((x) => x.name === "two_turn")!;
    const url = "data:image/png;base64," + readFileSync(join(DIR, "images/gradient_252x56.png")).toString("base64");
    const msgs = c.messages.map((m) => ({ ...m, content: typeof m.content === "string" ? m.content : m.content.map((p) => (p.type === "image_url" ? { type: "image_url" as const, image_url: { url } } : p)) }));
    const out = await processor.encode(msgs, { loadImage });
    expect(out.inputIds).toEqual(c.input_ids);
  });
});

describe("typed errors", () => {
  const code = async (p: Promise<unknown>) => p.then(() => "no error", (e: { code?: string; name?: string }) => `${e.name}:${e.code}`);
  it("bad message shapes are bad_messages", async () => {
    expect(await code(processor.encode([]))).toBe("RuntimeError:bad_messages");
    expect(await code(processor.encode([{ role: "user" } as unknown as InputMessage]))).toBe("RuntimeError:bad_messages");
    expect(await code(processor.encode([{ role: "user", content: [{ type: "audio" } as unknown as InputMessage["content"][0]] as never }]))).toBe("RuntimeError:bad_messages");
    expect(await code(processor.encode([{ role: "user", content: [{ type: "image_url", image_url: { url: "" } }] }], { loadImage }))).toBe("RuntimeError:bad_messages");
    // an image part without a loader
    expect(await code(processor.encode([{ role: "user", content: [{ type: "image_url", image_url: { url: "images/gradient_252x56.png" } }] }]))).toBe("RuntimeError:bad_messages");
    // a literal <|image_pad|> typed in a text part would steal an image's slot
    expect(await code(processor.encode([{ role: "user", content: "look: <|image_pad|>" }]))).toBe("RuntimeError:bad_messages");
  });
  it("unsupported and oversized images are typed", async () => {
    expect(await code(processor.encode([{ role: "user", content: [{ type: "image_url", image_url: { url: "README.md" } }] }], { loadImage }))).toBe("RuntimeError:unsupported_image");
    expect(await code(processor.encode([{ role: "user", content: [{ type: "image_url", image_url: { url: "https://example.com/a.png" } }] }], { loadImage }))).toBe("RuntimeError:unsupported_image");
    const small = nodeImageLoader(DIR, { maxInputPixels: 1000 });
    expect(await code(processor.encode([{ role: "user", content: [{ type: "image_url", image_url: { url: "images/gradient_252x56.png" } }] }], { loadImage: small }))).toBe("RuntimeError:too_many_pixels");
  });
});

// Messages → model inputs on fixtures/qwen25vl-mini: for every case of reference.json the rendered template equals
// `chat_text`, input_ids equal, image grids / token counts / pixel sums match, plus the typed errors, and a session's
// turns (encodeTurn, chatFormat) against two_turn.

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
      // an id past the tokenizer (151665…151935 exist only as embedding rows) decodes to nothing, like the Rust decoder
      expect(processor.decode([...c.greedy.ids, 151900])).toBe(c.greedy.text);
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

  it("two_turn continuation: after turn 1's prompt + answer + <|im_end|>, only the new ids, no images again", async () => {
    const c = ref.cases.find((x) => x.name === "two_turn")!;
    const n = c.turn1!.input_ids_len;
    const cached = [...c.input_ids.slice(0, n), ...c.turn1!.answer_ids, ref.special_tokens["<|im_end|>"]];
    const next = await processor.encodeContinuation(c.messages, cached, { loadImage });
    expect([...cached, ...next.inputIds]).toEqual(c.input_ids);
    expect(next.inputIds[0]).toBe(198); // the "\n" after <|im_end|>, which the model never generated
    expect(next.images).toEqual([]);
    expect(next.pixelValues.length).toBe(0);
    // a session whose history differs is out of sync, typed
    const wrong = [...cached];
    wrong[n + 1] += 1;
    await expect(processor.encodeContinuation(c.messages, wrong, { loadImage })).rejects.toMatchObject({ code: "out_of_sync" });
    // cut inside the image's pads
    await expect(processor.encodeContinuation(c.messages, c.input_ids.slice(0, 20), { loadImage })).rejects.toMatchObject({ code: "out_of_sync" });
    // an empty session gets everything, images included
    const all = await processor.encodeContinuation(c.messages, [], { loadImage });
    expect(all.inputIds).toEqual(c.input_ids);
    expect(all.images.length).toBe(1);
  });

  it("a data: URL image gives the same inputs as the file", async () => {
    const c = ref.cases.find((x) => x.name === "two_turn")!;
    const url = "data:image/png;base64," + readFileSync(join(DIR, "images/gradient_252x56.png")).toString("base64");
    const msgs = c.messages.map((m) => ({ ...m, content: typeof m.content === "string" ? m.content : m.content.map((p) => (p.type === "image_url" ? { type: "image_url" as const, image_url: { url } } : p)) }));
    const out = await processor.encode(msgs, { loadImage });
    expect(out.inputIds).toEqual(c.input_ids);
  });
});

describe("several images, system message", () => {
  it("keeps prompt order across parts and messages; each image's pads equal its grid/4; pixel rows concatenate in order", async () => {
    const msgs: InputMessage[] = [
      { role: "system", content: "Be brief." },
      { role: "user", content: [{ type: "image_url", image_url: { url: "images/noisy_300x150.png" } }, { type: "text", text: "and" }, { type: "image_url", image_url: "images/gradient_252x56.png" }] },
      { role: "assistant", content: "Two images." },
      { role: "user", content: [{ type: "text", text: "Again:" }, { type: "image_url", image_url: { url: "images/gradient_252x56.png" } }] },
    ];
    const out = await processor.encode(msgs, { loadImage });
    // the model's template keeps our system message instead of its default one
    expect(out.text.startsWith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>and<|vision_start|>")).toBe(true);
    expect(out.imageGridThw).toEqual([[1, 10, 22], [1, 4, 18], [1, 4, 18]]);
    expect(out.images.map((i) => i.numImageTokens)).toEqual([55, 18, 18]);
    const pads = out.inputIds.filter((t) => t === processor.tokens.image).length;
    expect(pads).toBe(55 + 18 + 18);
    const starts = out.inputIds.flatMap((t, i) => (t === processor.tokens.visionStart ? [i + 1] : []));
    expect(out.images.map((i) => i.tokenOffset)).toEqual(starts);
    expect(out.pixelValues.length).toBe((220 + 72 + 72) * 1176);
    // rows 220.. are the gradient image, identical to the third image's rows
    expect(out.pixelValues.subarray(220 * 1176, 292 * 1176)).toEqual(out.pixelValues.subarray(292 * 1176));
    expect(out.pixelValues.subarray(0, 220 * 1176)).toEqual(out.images[0].pixelValues);
  });
});

describe("template variables", () => {
  it("add_vision_id numbers the pictures (the Qwen2.5-VL template's option) without changing the image tokens", async () => {
    const msgs: InputMessage[] = [{ role: "user", content: [{ type: "image_url", image_url: { url: "images/gradient_252x56.png" } }, { type: "image_url", image_url: { url: "images/gradient_252x56.png" } }, { type: "text", text: "Same?" }] }];
    const out = await processor.encode(msgs, { loadImage, templateVariables: { add_vision_id: true } });
    expect(out.text).toContain("Picture 1: <|vision_start|><|image_pad|><|vision_end|>Picture 2: <|vision_start|><|image_pad|><|vision_end|>Same?");
    expect(out.inputIds.filter((t) => t === processor.tokens.image).length).toBe(36);
    const plain = await processor.encode(msgs, { loadImage, addGenerationPrompt: false });
    expect(plain.text.endsWith("Same?<|im_end|>\n")).toBe(true);
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

describe("a session's turns: encodeTurn and chatFormat", () => {
  it("qwen25vl-mini two_turn: turn 1, the answer closed by chatFormat, turn 2 continued give the reference's input_ids", async () => {
    const c = ref.cases.find((x) => x.name === "two_turn")!;
    const t1 = await processor.encodeTurn([c.messages[0]], false, { loadImage });
    expect(t1.inputIds).toEqual(c.input_ids.slice(0, c.turn1!.input_ids_len));
    expect(t1.images.map((im) => im.tokenOffset)).toEqual([c.input_ids.indexOf(processor.tokens.image)]);
    const { closingIds } = processor.chatFormat();
    expect(closingIds).toEqual([ref.special_tokens["<|im_end|>"], 198]); // <|im_end|> \n
    const t2 = await processor.encodeTurn([c.messages[2]], true, { loadImage });
    expect([...t1.inputIds, ...c.turn1!.answer_ids, ...closingIds, ...t2.inputIds]).toEqual(c.input_ids);
    expect(t2.images).toEqual([]);
    // an image in a continued turn: its offset is relative to the turn's own ids
    const t3 = await processor.encodeTurn([c.messages[0]], true, { loadImage });
    expect(t3.inputIds.slice(t3.images[0].tokenOffset, t3.images[0].tokenOffset + t3.images[0].numImageTokens).every((t) => t === processor.tokens.image)).toBe(true);
    expect(t3.inputIds[t3.images[0].tokenOffset - 1]).toBe(processor.tokens.visionStart);
  });

  it("a template that does not render a conversation as its turns in order is bad_model for a continued turn", async () => {
    const { ChatInputProcessor } = await import("../../../runtime/inputs/processor.ts");
    const read = (f: string) => JSON.parse(readFileSync(join(DIR, f), "utf8")) as unknown;
    const odd = ChatInputProcessor.fromFiles({
      config: read("config.json"),
      tokenizer: read("tokenizer.json"),
      preprocessorConfig: read("preprocessor_config.json"),
      tokenizerConfig: { ...(read("tokenizer_config.json") as object), chat_template: "{% for m in messages | reverse %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}" },
    });
    await expect(odd.encodeTurn([{ role: "user", content: "hi" }], false)).resolves.toBeTruthy();
    await expect(odd.encodeTurn([{ role: "user", content: "hi" }], true)).rejects.toSatisfy((e: unknown) => (e as { code?: string }).code === "bad_model");
  });
});

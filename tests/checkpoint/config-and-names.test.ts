// config.json parsing and tensor-name resolution for Qwen2.5-VL (old and new prefixes) and LLaVA-NeXT.

import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  CheckpointError,
  detectTensorNaming,
  layerTensorNames,
  parseModelConfig,
} from "../../checkpoint/index.ts";

const FIXTURE = fileURLToPath(new URL("../../fixtures/tiny-qwen-vl/config.json", import.meta.url));

describe("parseModelConfig", () => {
  it("reads the fixture config", async () => {
    const c = parseModelConfig(JSON.parse(await readFile(FIXTURE, "utf8")));
    expect(c).toMatchObject({
      hiddenSize: 128,
      numLayers: 4,
      numHeads: 4,
      numKvHeads: 2,
      headDim: 32,
      intermediateSize: 256,
      rmsNormEps: 1e-6,
      ropeTheta: 10000,
      mropeSection: [4, 6, 6],
      vocabSize: 36,
      tieWordEmbeddings: false,
      attentionBias: true,
    });
    expect(c.tokens).toEqual({ bos: 1, eos: 5, imagePad: 3, visionStart: 2, visionEnd: 4, videoPad: null });
    expect(c.imageRoutedTokenIds).toEqual([3, 2, 4]);
  });

  it("reads Qwen2.5-VL-7B and LLaVA-NeXT-8B (text_config) geometry", () => {
    const qwen = parseModelConfig({
      model_type: "qwen2_5_vl",
      hidden_size: 3584,
      num_hidden_layers: 28,
      num_attention_heads: 28,
      num_key_value_heads: 4,
      intermediate_size: 18944,
      rope_theta: 1000000.0,
      rope_scaling: { type: "mrope", mrope_section: [16, 24, 24] },
      vocab_size: 152064,
      image_token_id: 151655,
      video_token_id: 151656,
      vision_start_token_id: 151652,
      vision_end_token_id: 151653,
    });
    expect(qwen.headDim).toBe(128);
    expect(qwen.imageRoutedTokenIds).toEqual([151655, 151652, 151653]);
    expect(qwen.tokens.videoPad).toBe(151656);
    const llava = parseModelConfig({
      model_type: "llava_next",
      image_token_index: 128256,
      text_config: {
        model_type: "llama",
        hidden_size: 4096,
        num_hidden_layers: 32,
        num_attention_heads: 32,
        num_key_value_heads: 8,
        intermediate_size: 14336,
        rope_theta: 500000.0,
        vocab_size: 128320,
      },
    });
    expect(llava).toMatchObject({ numKvHeads: 8, headDim: 128, mropeSection: null, attentionBias: false, ropeTheta: 500000 });
    expect(llava.imageRoutedTokenIds).toEqual([128256]);
  });

  it("rejects inconsistent geometry", () => {
    expect(() => parseModelConfig({ hidden_size: 64, num_hidden_layers: 1, num_attention_heads: 3, num_key_value_heads: 2, intermediate_size: 8, vocab_size: 4 })).toThrow(
      CheckpointError,
    );
    try {
      parseModelConfig({ hidden_size: 64, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 8, vocab_size: 4, rope_scaling: { type: "mrope", mrope_section: [4, 4, 4] } });
      throw new Error("should throw");
    } catch (e) {
      expect((e as CheckpointError).code).toBe("bad_config");
    }
  });
});

describe("detectTensorNaming", () => {
  const layerNames = (prefix: string) => [`${prefix}layers.0.self_attn.q_proj.weight`, `${prefix}embed_tokens.weight`];

  it("finds each family's prefix", () => {
    const q = detectTensorNaming([...layerNames("model."), "lm_head.weight", "visual.blocks.0.attn.qkv.weight"]);
    expect(q.scheme).toBe("qwen2_5_vl");
    expect(layerTensorNames(q, 3).kBias).toBe("model.layers.3.self_attn.k_proj.bias");
    const n = detectTensorNaming([...layerNames("model.language_model."), "lm_head.weight"]);
    expect(n.scheme).toBe("language_model_prefix");
    expect(n.finalNorm).toBe("model.language_model.norm.weight");
    const l = detectTensorNaming(layerNames("language_model.model."));
    expect(l.scheme).toBe("llava_next");
    expect(l.lmHead).toBe("language_model.lm_head.weight");
    expect(layerTensorNames(l, 31).down).toBe("language_model.model.layers.31.mlp.down_proj.weight");
  });

  it("fails with a typed error on an unknown layout", () => {
    try {
      detectTensorNaming(["transformer.h.0.attn.c_attn.weight"]);
      throw new Error("should throw");
    } catch (e) {
      expect((e as CheckpointError).code).toBe("unknown_naming");
    }
  });
});

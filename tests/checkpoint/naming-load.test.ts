// The same decoder saved under each supported naming scheme loads to identical weights (original and MLA layouts).

import { beforeAll, describe, expect, it } from "vitest";
import {
  ALL_NAMINGS,
  bufferByteSource,
  copyTensors,
  layerTensorNames,
  QWEN2_5_VL_NAMING,
  SafetensorsFile,
  serializeSafetensors,
  type TensorNaming,
} from "../../checkpoint/index.ts";
import { openSafetensorsFile } from "../../checkpoint/io.node.ts";
import { buildMlaModel } from "../../runtime/mla/build.ts";
import { loadMlaModel, mlaCheckpointConfig, mlaCheckpointTensors } from "../../runtime/mla/checkpoint.ts";
import { loadGqaModel } from "../../runtime/weights.ts";
import { loadTinyFixture, type TinyFixture } from "../../runtime/tiny-fixture.node.ts";
import { FIXTURE_DIR } from "../runtime/helpers.ts";
import { randomLowRank, randomPairs } from "../runtime/mla-helpers.ts";
import { join } from "node:path";

let fx: TinyFixture;
beforeAll(async () => {
  fx = await loadTinyFixture(FIXTURE_DIR);
});

/** Maps each fixture tensor name (qwen2_5_vl scheme) to `target`'s name. */
function rename(name: string, target: TensorNaming): string {
  const from = QWEN2_5_VL_NAMING;
  if (name === from.embedTokens) return target.embedTokens;
  if (name === from.finalNorm) return target.finalNorm;
  if (name === from.lmHead) return target.lmHead;
  const m = /^model\.layers\.(\d+)\.(.*)$/.exec(name);
  if (m === null) throw new Error(`unexpected ${name}`);
  return `${target.layer(Number(m[1]))}${m[2]}`;
}

describe("loading under every naming scheme", () => {
  for (const naming of ALL_NAMINGS) {
    it(`original decoder as ${naming.scheme}`, async () => {
      const src = await openSafetensorsFile(join(FIXTURE_DIR, "model.safetensors"));
      const copied = copyTensors(src, src.names()).map((t) => ({ ...t, name: rename(t.name, naming) }));
      const file = await SafetensorsFile.open(bufferByteSource(await serializeSafetensors(copied)));
      await src.close();
      expect(file.has(layerTensorNames(naming, 3).vBias)).toBe(true);
      const m = await loadGqaModel(file, fx.config);
      expect(m.attention[2].kBias).toEqual(fx.model.attention[2].kBias);
      expect(m.shell.lmHead).toEqual(fx.model.shell.lmHead);
      expect(m.shell.layers[1].gate).toEqual(fx.model.shell.layers[1].gate);
    });

    it(`MLA layout as ${naming.scheme}`, async () => {
      const mla = buildMlaModel(fx.model, randomPairs(fx.config, 5, 4), randomLowRank(fx.config, 9, 4, 1), { partialRopeVersion: "uniform", svdInitMethod: "joint" });
      const tensors = mlaCheckpointTensors(mla, { naming });
      expect(tensors.some((t) => t.name === `${naming.layer(0)}self_attn.kv_proj.down_kv.weight`)).toBe(true);
      const file = await SafetensorsFile.open(bufferByteSource(await serializeSafetensors(tensors)));
      const back = await loadMlaModel(file, mlaCheckpointConfig(mla, fx.rawConfig));
      expect(back.latentSpaces).toBe(1);
      expect(back.attention[3].spaces[0]).toEqual(mla.attention[3].spaces[0]);
      expect(back.attention[3].keptPairs).toEqual(mla.attention[3].keptPairs);
    });
  }
});

// Calibration sequences for conversion (fixtures/tiny-qwen-vl/README.md `calib.jsonl`): a whole multi-turn sequence of
// token ids and the image's cell patches.

import { parseJsonlRecords, readTextFile } from "../jsonl-records.ts";
import { base64ToBytes, patchesFromU8 } from "../../runtime/vision/toy-tower.ts";
import { CalibrationError } from "./errors.ts";
import type { ImageGrid } from "../../runtime/rope-index.ts";

export interface CalibrationSequence {
  readonly inputIds: readonly number[];
  /** [images·cells × patchDim] float32 in [0, 1]; empty for a text-only sequence. */
  readonly patches: Float32Array;
  /** Image embeddings computed already (a real vision tower): [image-pad tokens × hidden]; `patches` is then unused. */
  readonly imageEmbeds?: Float32Array;
  /** Merged-token grid per image (default: the fixture tower's grid). */
  readonly imageGrids?: readonly ImageGrid[];
}

const fail = (message: string): CalibrationError => new CalibrationError("bad_calibration_file", message);

export function parseCalibrationSet(text: string, label: string, limit = Infinity): CalibrationSequence[] {
  const out = parseJsonlRecords(text, label, limit, (j, where): CalibrationSequence => {
    const ids = j.input_ids;
    if (!Array.isArray(ids) || ids.length === 0 || !ids.every((v) => Number.isInteger(v) && v >= 0)) {
      throw fail(`${where}: input_ids must be a non-empty array of token ids`);
    }
    if (j.patches_u8 !== undefined && typeof j.patches_u8 !== "string") throw fail(`${where}: patches_u8 must be base64`);
    const patches = typeof j.patches_u8 === "string" ? patchesFromU8(base64ToBytes(j.patches_u8)) : new Float32Array(0);
    return { inputIds: ids as number[], patches };
  }, fail);
  if (out.length === 0) throw fail(`${label}: no calibration sequences`);
  return out;
}

export async function readCalibrationSet(path: string, limit = Infinity): Promise<CalibrationSequence[]> {
  return parseCalibrationSet(await readTextFile(path, fail), path, limit);
}

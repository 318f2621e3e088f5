// Calibration sequences for conversion (fixtures/tiny-qwen-vl/README.md `calib.jsonl`): a whole multi-turn sequence of
// token ids and the image's cell patches.

import { readFile } from "node:fs/promises";
import { base64ToBytes, patchesFromU8 } from "../../model/vision-tower.ts";
import { CalibrationError } from "./errors.ts";

export interface CalibrationSequence {
  readonly inputIds: readonly number[];
  /** [images·cells × patchDim] float32 in [0, 1]; empty for a text-only sequence. */
  readonly patches: Float32Array;
}

export function parseCalibrationSet(text: string, label: string, limit = Infinity): CalibrationSequence[] {
  const out: CalibrationSequence[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length && out.length < limit; i++) {
    const line = lines[i].trim();
    if (line.length === 0) continue;
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(line) as Record<string, unknown>;
    } catch (e) {
      throw new CalibrationError("bad_calibration_file", `${label}:${i + 1}: not JSON (${(e as Error).message})`);
    }
    const ids = j.input_ids;
    if (!Array.isArray(ids) || ids.length === 0 || !ids.every((v) => Number.isInteger(v) && v >= 0)) {
      throw new CalibrationError("bad_calibration_file", `${label}:${i + 1}: input_ids must be a non-empty array of token ids`);
    }
    if (j.patches_u8 !== undefined && typeof j.patches_u8 !== "string") {
      throw new CalibrationError("bad_calibration_file", `${label}:${i + 1}: patches_u8 must be base64`);
    }
    const patches = typeof j.patches_u8 === "string" ? patchesFromU8(base64ToBytes(j.patches_u8)) : new Float32Array(0);
    out.push({ inputIds: ids as number[], patches });
  }
  if (out.length === 0) throw new CalibrationError("bad_calibration_file", `${label}: no calibration sequences`);
  return out;
}

export async function readCalibrationSet(path: string, limit = Infinity): Promise<CalibrationSequence[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new CalibrationError("bad_calibration_file", `cannot read ${path}: ${(e as Error).message}`);
  }
  return parseCalibrationSet(text, path, limit);
}

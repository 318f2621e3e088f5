// The fixture's JSON Lines sets as conversion reads them: the real calib.jsonl / eval.jsonl parse to the counts and
// shapes the fixture README gives, and malformed files fail with a typed error that names file and line.

import { describe, expect, it } from "vitest";
import { join } from "node:path";
import { parseCalibrationSet, readCalibrationSet } from "../../convert/calibration/calib-set.ts";
import { CalibrationError } from "../../convert/calibration/errors.ts";
import { EvalError } from "../../convert/eval/errors.ts";
import { parseEvalSet, readEvalSet } from "../../convert/eval/eval-set.ts";

const FIXTURE = join(import.meta.dirname, "../../fixtures/tiny-qwen-vl");

describe("fixture sets", () => {
  it("should read the eval set: three turns per case and 16 cells of 192 patch values", async () => {
    const cases = await readEvalSet(join(FIXTURE, "eval.jsonl"), 5);
    expect(cases).toHaveLength(5);
    for (const c of cases) {
      expect(c.turns).toHaveLength(3);
      expect(c.patches.length).toBe(16 * 192);
      expect(Math.min(...c.patches)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...c.patches)).toBeLessThanOrEqual(1);
    }
  });

  it("should read calibration sequences of token ids with their image patches", async () => {
    const seqs = await readCalibrationSet(join(FIXTURE, "calib.jsonl"), 3);
    expect(seqs).toHaveLength(3);
    for (const s of seqs) {
      expect(s.inputIds.length).toBeGreaterThan(0);
      expect(s.patches.length % 192).toBe(0);
    }
  });

  it("should name the file and line of a malformed record, and skip blank lines", () => {
    const good = JSON.stringify({ input_ids: [1, 2, 3] });
    expect(parseCalibrationSet(`\n${good}\n\n${good}\n`, "c.jsonl")).toHaveLength(2);
    expect(() => parseCalibrationSet(`${good}\n{oops`, "c.jsonl")).toThrow(/c\.jsonl:2: not JSON/);
    expect(() => parseCalibrationSet(`${good}\n[1,2]`, "c.jsonl")).toThrow(/c\.jsonl:2: not a JSON object/);
    expect(() => parseCalibrationSet(JSON.stringify({ input_ids: [] }), "c.jsonl")).toThrow(CalibrationError);
    expect(() => parseCalibrationSet("\n\n", "c.jsonl")).toThrow(/no calibration sequences/);
    expect(() => parseEvalSet(JSON.stringify({ patches_u8: "AA==", turns: [{ kind: "color" }] }), "e.jsonl")).toThrow(/e\.jsonl:1: an eval case needs/);
    expect(() => parseEvalSet("nope", "e.jsonl")).toThrow(EvalError);
  });

  it("should report an unreadable file as the set's typed error", async () => {
    await expect(readEvalSet("/nonexistent/eval.jsonl")).rejects.toMatchObject({ name: "EvalError", code: "bad_eval_file" });
    await expect(readCalibrationSet("/nonexistent/calib.jsonl")).rejects.toMatchObject({ name: "CalibrationError", code: "bad_calibration_file" });
  });
});

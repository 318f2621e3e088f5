// Shared helpers of the model tests: fixture paths, eval cases, relative error.

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const FIXTURE_DIR = fileURLToPath(new URL("../../fixtures/tiny-qwen-vl/", import.meta.url));

export interface EvalTurn {
  readonly kind: string;
  readonly question: string;
  readonly answer: string;
  /** What the fixture's own (unconverted) model answers: the reference the converted models are checked against. */
  readonly reference_model_answer: string;
}

export interface EvalCase {
  readonly patches_u8: string;
  readonly turns: readonly EvalTurn[];
}

export async function readEvalCases(count: number): Promise<EvalCase[]> {
  const lines = (await readFile(join(FIXTURE_DIR, "eval.jsonl"), "utf8")).split("\n").filter((l) => l.length > 0);
  return lines.slice(0, count).map((l) => JSON.parse(l) as EvalCase);
}

/** max |a − b| / max |b|: the error measure of the ≤ 1e-4 criteria. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

// The fixture's multi-turn eval set (fixtures/tiny-qwen-vl/README.md): one JSON object a line with the image's cell
// patches (`patches_u8`, base64) and three turns (kind, question, answer).

import { readFile } from "node:fs/promises";
import { base64ToBytes, patchesFromU8 } from "../../model/vision-tower.ts";
import { EvalError } from "./errors.ts";

export interface EvalTurn {
  /** Question kind: `color`, `shape`, `where`. */
  readonly kind: string;
  readonly question: string;
  readonly answer: string;
}

export interface EvalCase {
  /** [cells × patchDim] float32 in [0, 1], the vision tower's input. */
  readonly patches: Float32Array;
  readonly turns: readonly EvalTurn[];
}

function isTurn(t: unknown): t is EvalTurn {
  const o = t as Record<string, unknown> | null;
  return o !== null && typeof o === "object" && typeof o.kind === "string" && typeof o.question === "string" && typeof o.answer === "string";
}

/** Parses eval.jsonl text; `limit` keeps the first cases only (the doc matrix uses 100). */
export function parseEvalSet(text: string, label: string, limit = Infinity): EvalCase[] {
  const out: EvalCase[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length && out.length < limit; i++) {
    const line = lines[i].trim();
    if (line.length === 0) continue;
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(line) as Record<string, unknown>;
    } catch (e) {
      throw new EvalError("bad_eval_file", `${label}:${i + 1}: not JSON (${(e as Error).message})`);
    }
    if (typeof j.patches_u8 !== "string" || !Array.isArray(j.turns) || j.turns.length === 0 || !j.turns.every(isTurn)) {
      throw new EvalError("bad_eval_file", `${label}:${i + 1}: an eval case needs patches_u8 (base64) and turns [{kind, question, answer}]`);
    }
    out.push({ patches: patchesFromU8(base64ToBytes(j.patches_u8)), turns: j.turns as EvalTurn[] });
  }
  if (out.length === 0) throw new EvalError("bad_eval_file", `${label}: no eval cases`);
  return out;
}

export async function readEvalSet(path: string, limit = Infinity): Promise<EvalCase[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new EvalError("bad_eval_file", `cannot read ${path}: ${(e as Error).message}`);
  }
  return parseEvalSet(text, path, limit);
}

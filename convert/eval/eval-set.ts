// The fixture's multi-turn eval set (fixtures/tiny-qwen-vl/README.md): one JSON object a line with the image's cell
// patches (`patches_u8`, base64) and three turns (kind, question, answer).

import { parseJsonlRecords, readTextFile } from "../jsonl-records.ts";
import { base64ToBytes, patchesFromU8 } from "../../runtime/vision/toy-tower.ts";
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

const fail = (message: string): EvalError => new EvalError("bad_eval_file", message);

/** Parses eval.jsonl text; `limit` keeps the first cases only (the doc matrix uses 100). */
export function parseEvalSet(text: string, label: string, limit = Infinity): EvalCase[] {
  const out = parseJsonlRecords(text, label, limit, (j, where): EvalCase => {
    if (typeof j.patches_u8 !== "string" || !Array.isArray(j.turns) || j.turns.length === 0 || !j.turns.every(isTurn)) {
      throw fail(`${where}: an eval case needs patches_u8 (base64) and turns [{kind, question, answer}]`);
    }
    return { patches: patchesFromU8(base64ToBytes(j.patches_u8)), turns: j.turns as EvalTurn[] };
  }, fail);
  if (out.length === 0) throw fail(`${label}: no eval cases`);
  return out;
}

export async function readEvalSet(path: string, limit = Infinity): Promise<EvalCase[]> {
  return parseEvalSet(await readTextFile(path, fail), path, limit);
}

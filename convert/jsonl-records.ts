// JSON Lines files of the fixture (calib.jsonl, eval.jsonl): one object a line, blank lines skipped, every failure
// raised as the caller's typed error naming `file:line`.

import { readFile } from "node:fs/promises";

/** Parses up to `limit` records; `toRecord` validates one object (`where` is `label:line` for its messages). */
export function parseJsonlRecords<T>(
  text: string,
  label: string,
  limit: number,
  toRecord: (json: Record<string, unknown>, where: string) => T,
  fail: (message: string) => Error,
): T[] {
  const out: T[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length && out.length < limit; i++) {
    const line = lines[i].trim();
    if (line.length === 0) continue;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (e) {
      throw fail(`${label}:${i + 1}: not JSON (${(e as Error).message})`);
    }
    if (json === null || typeof json !== "object" || Array.isArray(json)) throw fail(`${label}:${i + 1}: not a JSON object`);
    out.push(toRecord(json as Record<string, unknown>, `${label}:${i + 1}`));
  }
  return out;
}

/** Reads a text file, turning an I/O failure into the caller's typed error. */
export async function readTextFile(path: string, fail: (message: string) => Error): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    throw fail(`cannot read ${path}: ${(e as Error).message}`);
  }
}

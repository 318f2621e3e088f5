// Prints, once after vitest's own summary, which test files were skipped because a system tool is missing
// (tests/helpers/system-tools.ts) and the one command that installs them. Silent when nothing was skipped for that.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import type { Reporter, TestModule } from "vitest/node";
import { INSTALL_COMMAND, SKIP_LOG_ENV, SYSTEM_TOOLS, type SystemTool, type ToolSkipRecord } from "./system-tools.ts";

const ROOT = resolve(import.meta.dirname, "../..");

/** Reads the skip log: file → the tools it missed. */
export function readSkipLog(dir: string): Map<string, Set<SystemTool>> {
  const out = new Map<string, Set<SystemTool>>();
  for (const name of readdirSync(dir)) {
    for (const line of readFileSync(join(dir, name), "utf8").split("\n")) {
      if (line.trim() === "") continue;
      const r = JSON.parse(line) as ToolSkipRecord;
      const set = out.get(r.file) ?? new Set<SystemTool>();
      for (const t of r.tools) set.add(t);
      out.set(r.file, set);
    }
  }
  return out;
}

/** The summary lines (empty when nothing was skipped for a missing tool). */
export function skipSummary(skips: ReadonlyMap<string, ReadonlySet<SystemTool>>, skippedTests: ReadonlyMap<string, number>): string[] {
  if (skips.size === 0) return [];
  const files = [...skips.keys()].sort();
  const total = files.reduce((a, f) => a + (skippedTests.get(f) ?? 0), 0);
  const tools = [...new Set(files.flatMap((f) => [...skips.get(f)!]))].sort();
  const lines = [
    "",
    ` Skipped for a missing system tool: ${total} test${total === 1 ? "" : "s"} in ${files.length} file${files.length === 1 ? "" : "s"} (missing: ${tools.map((t) => `${t} ${SYSTEM_TOOLS[t].path}`).join(", ")})`,
  ];
  for (const f of files) lines.push(`   ${f}: ${skippedTests.get(f) ?? 0} skipped, needs ${[...skips.get(f)!].sort().join(" + ")}`);
  lines.push(` Install what they need: ${INSTALL_COMMAND}`, "");
  return lines;
}

export default class SystemToolsReporter implements Reporter {
  #dir: string | undefined;

  onInit(): void {
    // Workers are started after this and inherit the environment.
    const dir = mkdtempSync(join(tmpdir(), "mla-edge-tool-skips-"));
    this.#dir = dir;
    process.env[SKIP_LOG_ENV] = dir;
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    if (this.#dir === undefined) return;
    const skips = readSkipLog(this.#dir);
    // watch mode: the next run records afresh into the same folder
    for (const name of readdirSync(this.#dir)) rmSync(join(this.#dir, name), { force: true });
    const skipped = new Map<string, number>();
    for (const m of testModules) {
      const file = relative(ROOT, m.moduleId);
      if (!skips.has(file)) continue;
      let n = 0;
      for (const t of m.children.allTests()) if (t.result().state === "skipped") n++;
      skipped.set(file, (skipped.get(file) ?? 0) + n);
    }
    const lines = skipSummary(skips, skipped);
    if (lines.length > 0) process.stdout.write(`${lines.join("\n")}\n`);
  }
}

// The floors of docs/architecture.md, held by .dependency-cruiser.cjs: imports only run downward, no loops (type-only
// imports included), Node modules only in *.node.ts in the browser-safe floors. The second test cruises a planted
// repository with the same rules, so a rule that stopped matching (a renamed folder, a parser that reads nothing)
// fails here instead of passing silently.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { cruise, type ICruiseResult, type IViolation } from "dependency-cruiser";
import extractDepcruiseOptions from "dependency-cruiser/config-utl/extract-depcruise-options";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");
const FOLDERS = ["format", "assembly", "checkpoint", "kernels", "worker", "runtime", "convert", "client", "bin", "scripts", "tests"];

async function cruiseAt(baseDir: string, folders: readonly string[]): Promise<ICruiseResult> {
  const options = await extractDepcruiseOptions(join(ROOT, ".dependency-cruiser.cjs"));
  const reporting = await cruise([...folders], { ...options, baseDir, outputType: "json" });
  return typeof reporting.output === "string" ? (JSON.parse(reporting.output) as ICruiseResult) : reporting.output;
}

const describeViolation = (v: IViolation) =>
  `${v.rule.name}: ${v.from} -> ${v.to}${v.cycle ? ` (loop: ${v.cycle.map((c) => c.name).join(" -> ")})` : ""}`;

describe("dependency graph", () => {
  it("should have no import that runs upward, no loop and no Node module in browser-safe code", async () => {
    const result = await cruiseAt(ROOT, FOLDERS);
    // The parser really read the TypeScript sources (a parser that reads nothing finds no violations either).
    expect(result.summary.totalCruised).toBeGreaterThan(300);
    expect(result.summary.totalDependenciesCruised).toBeGreaterThan(1000);
    expect(result.summary.violations.map(describeViolation)).toEqual([]);
  }, 60_000);

  it("should report a planted upward import, a loop and a Node import in browser-safe code", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mla-edge-depcruise-"));
    const files: Record<string, string> = {
      "format/spec.ts": 'import { run } from "../runtime/run.ts";\nexport const spec = () => run;\n',
      "runtime/run.ts": 'import { a } from "./a.ts";\nexport const run = a;\n',
      "runtime/a.ts": 'import { b } from "./b.ts";\nexport const a = () => b;\n',
      "runtime/b.ts": 'import { a } from "./a.ts";\nimport { readFileSync } from "node:fs";\nexport const b = () => [a, readFileSync];\n',
      "runtime/files.node.ts": 'import { readFileSync } from "node:fs";\nexport const read = readFileSync;\n',
      "worker/app.ts": 'import { spec } from "../format/spec.ts";\nimport { ChatSession } from "../client/chat.ts";\nexport const app = [spec, ChatSession];\n',
      "client/chat.ts": 'import { run } from "../runtime/run.ts";\nexport const ChatSession = run;\n',
    };
    try {
      for (const [name, text] of Object.entries(files)) {
        mkdirSync(dirname(join(dir, name)), { recursive: true });
        writeFileSync(join(dir, name), text);
      }
      const result = await cruiseAt(dir, ["format", "runtime", "worker", "client"]);
      const found = result.summary.violations.map(describeViolation).sort();
      expect(found).toEqual(
        [
          "browser-safe-without-node: runtime/b.ts -> fs",
          "format-imports-nothing-of-ours: format/spec.ts -> runtime/run.ts",
          "no-circular: runtime/a.ts -> runtime/b.ts (loop: runtime/b.ts -> runtime/a.ts)",
          "worker-imports-format-only: worker/app.ts -> client/chat.ts",
        ].sort(),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

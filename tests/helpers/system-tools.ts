// The system tools some tests need and that npm cannot install: Debian's `chromium` (the browser, and the SwiftShader
// Vulkan ICD that dawn.node uses) and `promtool` (Debian's `prometheus`). One place decides whether they are there:
//   - missing → the test file skips what needs them and records why; the summary reporter
//     (tests/helpers/system-tools-reporter.ts) lists those skips once after vitest's own output, with the install command;
//   - MLA_EDGE_REQUIRE_SYSTEM_TOOLS=1 (or CI=true; `.ci/run` sets both) → a missing tool fails the file instead;
//   - MLA_EDGE_HIDE_SYSTEM_TOOLS=chromium,promtool (or "all") → treat them as missing, to try a fresh machine here.
import { appendFileSync, existsSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export type SystemTool = "chromium" | "swiftshader" | "promtool";

interface ToolInfo {
  readonly path: string;
  /** Debian package that provides it. */
  readonly apt: string;
  readonly what: string;
}

export const SYSTEM_TOOLS: Readonly<Record<SystemTool, ToolInfo>> = {
  chromium: { path: "/usr/bin/chromium", apt: "chromium", what: "headless Chromium (WebGPU on SwiftShader)" },
  swiftshader: { path: "/usr/lib/chromium/vk_swiftshader_icd.json", apt: "chromium", what: "SwiftShader's Vulkan ICD for dawn.node" },
  promtool: { path: "/usr/bin/promtool", apt: "prometheus", what: "`promtool check metrics`" },
};

/** The one command that installs every system tool the tests use. */
export const INSTALL_COMMAND = `apt-get install -y ${[...new Set(Object.values(SYSTEM_TOOLS).map((t) => t.apt))].join(" ")}`;

/** Env var naming the folder where test workers record their skips (set by the summary reporter). */
export const SKIP_LOG_ENV = "MLA_EDGE_TOOL_SKIP_LOG";

const ROOT = resolve(import.meta.dirname, "../..");

export class MissingSystemToolError extends Error {
  override readonly name = "MissingSystemToolError";
  constructor(
    readonly tools: readonly SystemTool[],
    message: string,
  ) {
    super(message);
  }
}

/** Whether a missing tool must fail the run (CI) rather than skip. */
export function systemToolsRequired(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.MLA_EDGE_REQUIRE_SYSTEM_TOOLS;
  if (v !== undefined && v !== "") return v !== "0" && v.toLowerCase() !== "false";
  return env.CI === "true" || env.CI === "1";
}

function hidden(tool: SystemTool, env: NodeJS.ProcessEnv): boolean {
  const list = (env.MLA_EDGE_HIDE_SYSTEM_TOOLS ?? "").split(",").map((s) => s.trim().toLowerCase());
  // Hiding chromium hides its SwiftShader ICD too: they come from the same package.
  return list.includes("all") || list.includes(tool) || (tool === "swiftshader" && list.includes("chromium"));
}

/** Whether `tool` is installed (and not hidden by MLA_EDGE_HIDE_SYSTEM_TOOLS). */
export function hasSystemTool(tool: SystemTool, env: NodeJS.ProcessEnv = process.env): boolean {
  return !hidden(tool, env) && existsSync(SYSTEM_TOOLS[tool].path);
}

export function missingSystemTools(tools: readonly SystemTool[], env: NodeJS.ProcessEnv = process.env): SystemTool[] {
  return tools.filter((t) => !hasSystemTool(t, env));
}

/** One line of the skip log. */
export interface ToolSkipRecord {
  readonly file: string;
  readonly tools: readonly SystemTool[];
}

/**
 * For `describe.skipIf(skipWithout(import.meta.url, "chromium"))(…)`: true (skip) when a tool is missing, after recording
 * the skip for the summary; throws MissingSystemToolError instead when tools are required (CI).
 */
export function skipWithout(testFileUrl: string, ...tools: SystemTool[]): boolean {
  const missing = missingSystemTools(tools);
  if (missing.length === 0) return false;
  const file = relative(ROOT, fileURLToPath(testFileUrl));
  const paths = missing.map((t) => `${t} (${SYSTEM_TOOLS[t].path})`).join(", ");
  if (systemToolsRequired()) {
    throw new MissingSystemToolError(
      missing,
      `${file} needs ${paths}; MLA_EDGE_REQUIRE_SYSTEM_TOOLS/CI forbid skipping it. Install: ${INSTALL_COMMAND}`,
    );
  }
  const dir = process.env[SKIP_LOG_ENV];
  if (dir !== undefined && existsSync(dir)) {
    const record: ToolSkipRecord = { file, tools: missing };
    appendFileSync(join(dir, `${process.pid}.jsonl`), `${JSON.stringify(record)}\n`);
  }
  return true;
}

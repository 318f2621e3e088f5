// Runs a TypeScript file in a new Node process (through tsx) and collects its stdout, for the tests and benchmarks
// whose work must run in a fresh process (dawn.node reads its Vulkan environment at start; bench:store's timed client).
import { spawn } from "node:child_process";

export interface TsxRun {
  readonly code: number | null;
  readonly stdout: string;
  /** Empty when stderr was inherited. */
  readonly stderr: string;
}

export interface TsxOptions {
  readonly cwd?: string;
  /** The child's whole environment (default: this process's). */
  readonly env?: NodeJS.ProcessEnv;
  /** "inherit" passes the child's progress through to this process's stderr; "pipe" (default) collects it. */
  readonly stderr?: "inherit" | "pipe";
}

/** `node --import tsx <script> ...args`, resolved when the child exits (a failed spawn rejects). */
export function runTsx(script: string, args: readonly string[] = [], options: TsxOptions = {}): Promise<TsxRun> {
  return new Promise((ok, fail) => {
    const p = spawn(process.execPath, ["--import", "tsx", script, ...args], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ["ignore", "pipe", options.stderr ?? "pipe"],
    });
    let stdout = "";
    let stderr = "";
    p.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    p.on("error", fail);
    p.on("close", (code) => ok({ code, stdout, stderr }));
  });
}

/** What a report runner prints when it failed (child-report style: one JSON line, the last on stdout). */
export interface ChildFatal {
  readonly fatal: string;
}

/**
 * Runs a report runner (`runReport` in the child) and parses its last stdout line; a child that printed no JSON comes
 * back as `{ fatal }` with the end of its stderr.
 */
export async function childReport<T>(script: string, args: readonly string[] = [], options: TsxOptions = {}): Promise<T | ChildFatal> {
  const child = await runTsx(script, args, options);
  try {
    return JSON.parse(child.stdout.trim().split("\n").pop() ?? "") as T | ChildFatal;
  } catch {
    return { fatal: `no JSON from the child (exit ${child.code}): ${child.stderr.slice(-2000)}` };
  }
}

/**
 * The child side: prints `main()`'s report as one JSON line, or `{ fatal }` with the error's stack, and exits (dawn.node
 * keeps the process alive otherwise: platform.md §9.2). `cleanup` runs either way, before the exit.
 */
export async function runReport(main: () => Promise<object>, cleanup: () => Promise<void> = async () => {}): Promise<never> {
  let code = 0;
  try {
    console.log(JSON.stringify(await main()));
  } catch (e) {
    console.log(JSON.stringify({ fatal: `${(e as Error).name}: ${(e as Error).message}\n${(e as Error).stack ?? ""}` }));
    code = 1;
  } finally {
    await cleanup();
  }
  process.exit(code);
}

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

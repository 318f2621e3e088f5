// Runs `mla-edge` in process with a capturing io: the exit code and everything written to stdout and stderr.
import type { CliIo } from "../../convert/cli/command.ts";
import { main } from "../../convert/cli/main.ts";

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function runCli(args: readonly string[]): Promise<CliRun> {
  let stdout = "";
  let stderr = "";
  const io: CliIo = { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) };
  const code = await main([...args], io);
  return { code, stdout, stderr };
}

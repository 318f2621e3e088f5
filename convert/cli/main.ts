// `mla-edge` entry: dispatches argv to the command table and maps errors to exit codes —
// 0 ok, 1 the user's error (one line on stderr), 2 an internal error (stack on stderr).
import { CacheSpecError } from "../../format/cache-spec.ts";
import { ChunkError } from "../../format/chunk/types.ts";
import { CodecError } from "../../format/codec/types.ts";
import type { CliIo, Command } from "./command.ts";
import { COMMANDS } from "./commands.ts";
import { UserError } from "./errors.ts";

/** Writes to the process streams. */
export const processIo: CliIo = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
};

function globalHelp(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    "mla-edge: convert VLMs to MLA, account and store their latent KV cache",
    "",
    "Usage: mla-edge <command> [flags]",
    "",
    "Commands:",
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.description}`),
    "",
    "Run `mla-edge <command> --help` for a command's flags.",
    "",
  ].join("\n");
}

/** Runs the CLI on `argv` (without node and script) and returns the exit code. */
export async function main(argv: readonly string[], io: CliIo = processIo, commands: readonly Command[] = COMMANDS): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.stderr(globalHelp(commands));
    return 1;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    io.stdout(globalHelp(commands));
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  try {
    if (!command) throw new UserError("unknown_command", `unknown command "${name}"; commands: ${commands.map((c) => c.name).join(", ")}`);
    return await command.run(rest, { io, cwd: process.cwd() });
  } catch (e) {
    if (e instanceof UserError || e instanceof CacheSpecError || e instanceof ChunkError || e instanceof CodecError) {
      io.stderr(`error: ${e.message}\n`);
      return 1;
    }
    io.stderr(`internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return 2;
  }
}

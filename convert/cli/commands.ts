// The command table of `mla-edge`: one file per command; add new commands here.
import type { Command } from "./command.ts";
import { convertCommand } from "./convert.ts";
import { evalCommand } from "./eval.ts";
import { generateCommand } from "./generate.ts";
import { packCommand } from "./pack.ts";
import { sizeCommand } from "./size.ts";

export const COMMANDS: readonly Command[] = [sizeCommand, convertCommand, evalCommand, generateCommand, packCommand];

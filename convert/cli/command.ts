// Commands as data (wrangler's createCommand shape): each command declares its flags once; parsing (node:util
// parseArgs), required/choice checks and --help text are derived from that declaration.
import { parseArgs } from "node:util";
import { UserError } from "./errors.ts";

/** Where a command writes. Tests pass a capturing implementation; the binary writes to the process streams. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

export interface StringArg {
  readonly type: "string";
  readonly description: string;
  readonly required?: boolean;
  readonly default?: string;
  readonly choices?: readonly string[];
  /** Placeholder in help, e.g. N or PATH. */
  readonly valueName?: string;
  /** The flag may be given several times; its value is the list in order (empty when absent). */
  readonly multiple?: boolean;
}
export interface BooleanArg {
  readonly type: "boolean";
  readonly description: string;
}
export type ArgSpec = StringArg | BooleanArg;
export type ArgSpecs = Readonly<Record<string, ArgSpec>>;

/** Parsed flag values, keyed by flag name as written (kebab-case). */
export type ArgValues<A extends ArgSpecs> = {
  readonly [K in keyof A]: A[K] extends BooleanArg
    ? boolean
    : A[K] extends { readonly multiple: true }
      ? readonly string[]
      : A[K] extends { readonly required: true } | { readonly default: string }
      ? string
      : string | undefined;
};

export interface CommandContext {
  readonly io: CliIo;
  /** Directory relative paths resolve against. */
  readonly cwd: string;
}

export interface CommandDefinition<A extends ArgSpecs> {
  readonly name: string;
  readonly description: string;
  readonly args: A;
  /** Example invocations shown in --help. */
  readonly examples?: readonly string[];
  /** Returns the exit code (0 when undefined). Throws UserError for the user's mistakes. */
  readonly handler: (args: ArgValues<A>, ctx: CommandContext) => Promise<number | void> | number | void;
}

/** A registered command, type-erased so a table can hold commands with different flags. */
export interface Command {
  readonly name: string;
  readonly description: string;
  help(): string;
  run(argv: readonly string[], ctx: CommandContext): Promise<number>;
}

/** Declares a command; its handler receives typed flag values. */
export function defineCommand<const A extends ArgSpecs>(def: CommandDefinition<A>): Command {
  return {
    name: def.name,
    description: def.description,
    help: () => commandHelp(def),
    async run(argv, ctx) {
      if (argv.includes("--help") || argv.includes("-h")) {
        ctx.io.stdout(commandHelp(def));
        return 0;
      }
      const values = parseCommandArgs<A>(def, argv);
      return (await def.handler(values, ctx)) ?? 0;
    },
  };
}

/** What parsing and help need from a definition (not the handler, whose parameter type varies per command). */
type CommandShape = Pick<CommandDefinition<ArgSpecs>, "name" | "description" | "args" | "examples">;

function parseCommandArgs<A extends ArgSpecs>(def: CommandShape, argv: readonly string[]): ArgValues<A> {
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {};
  for (const [name, spec] of Object.entries(def.args)) options[name] = spec.type === "string" && spec.multiple ? { type: "string", multiple: true } : { type: spec.type };
  let parsed: Record<string, string | boolean | string[] | undefined>;
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values as Record<string, string | boolean | string[] | undefined>;
  } catch (e) {
    // parseArgs throws TypeError with ERR_PARSE_ARGS_* codes and a readable message.
    throw new UserError("usage", `${(e as Error).message}\nRun \`mla-edge ${def.name} --help\` for the flags.`);
  }
  const out: Record<string, string | boolean | readonly string[] | undefined> = {};
  for (const [name, spec] of Object.entries(def.args)) {
    const v = parsed[name];
    if (spec.type === "boolean") {
      out[name] = v === true;
      continue;
    }
    if (spec.multiple) {
      const list = (v as string[] | undefined) ?? [];
      if (list.length === 0 && spec.required) throw new UserError("usage", `missing required flag --${name}`);
      out[name] = list;
      continue;
    }
    const value = (v as string | undefined) ?? spec.default;
    if (value === undefined && spec.required) throw new UserError("usage", `missing required flag --${name}`);
    if (value !== undefined && spec.choices && !spec.choices.includes(value)) {
      throw new UserError("invalid_argument", `--${name} must be one of ${spec.choices.join(", ")}, got "${value}"`);
    }
    out[name] = value;
  }
  return out as ArgValues<A>;
}

function commandHelp(def: CommandShape): string {
  const rows = Object.entries(def.args).map(([name, spec]) => {
    const flag =
      spec.type === "boolean" ? `--${name}` : `--${name} ${spec.valueName ?? (spec.choices ? spec.choices.join("|") : "VALUE")}${spec.multiple ? " ..." : ""}`;
    const notes: string[] = [];
    if (spec.type === "string" && spec.required) notes.push("required");
    if (spec.type === "string" && spec.default !== undefined) notes.push(`default ${spec.default}`);
    return [flag, spec.description + (notes.length ? ` (${notes.join(", ")})` : "")] as const;
  });
  const width = Math.max(...rows.map(([f]) => f.length), 10);
  const lines = [`mla-edge ${def.name}: ${def.description}`, "", "Flags:"];
  for (const [f, d] of rows) lines.push(`  ${f.padEnd(width)}  ${d}`);
  lines.push(`  ${"--help".padEnd(width)}  show this help`);
  if (def.examples?.length) lines.push("", "Examples:", ...def.examples.map((e) => `  ${e}`));
  return lines.join("\n") + "\n";
}

/**
 * Parses an integer flag; throws UserError naming the flag and the allowed range or set.
 * @example parseIntegerFlag("d-kv", "64", { min: 1 }) === 64
 */
export function parseIntegerFlag(
  name: string,
  value: string,
  limits: { readonly min?: number; readonly max?: number; readonly allowed?: readonly number[] } = {},
): number {
  if (!/^-?\d+$/.test(value.trim())) throw new UserError("invalid_argument", `--${name} must be an integer, got "${value}"`);
  const n = Number(value);
  if (limits.allowed && !limits.allowed.includes(n)) {
    throw new UserError("invalid_argument", `--${name} must be one of ${limits.allowed.join(", ")}, got ${n}`);
  }
  if ((limits.min !== undefined && n < limits.min) || (limits.max !== undefined && n > limits.max)) {
    throw new UserError("invalid_argument", `--${name} must be in [${limits.min ?? "-∞"}, ${limits.max ?? "∞"}], got ${n}`);
  }
  return n;
}

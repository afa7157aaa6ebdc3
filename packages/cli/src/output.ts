// What every command that prints shares: `--format text|json` (one JSON document on stdout, field
// names documented in docs/cli-json.md) and `--quiet`/`-q` (no informational or progress lines on
// stderr; results and errors stay). A command declares them with these flag builders and reads
// them with `outputOf`.
import type { CommandContext } from "./context.js";
import { boolFlag, stringFlag, type FlagSpec } from "./flags.js";

/** `--format`: text (default) or json; `help` says what the JSON holds. */
export function formatFlag(help: string, choices: readonly string[] = ["text", "json"]): FlagSpec {
  return stringFlag("FORMAT", help, { choices, default: choices[0] });
}

/** `--quiet`/`-q`, with what it leaves out for this command. */
export function quietFlag(help = "no progress or informational lines on stderr"): FlagSpec {
  return boolFlag(help, { short: "q" });
}

/** How a command prints, from its `--format` and `--quiet` (each false when not declared). */
export interface Output {
  readonly json: boolean;
  readonly quiet: boolean;
  /** An informational line on stderr, unless quiet. */
  info(line: string): void;
  /** One JSON document on stdout (compact, one line). */
  writeJson(value: unknown): void;
}

/** The Output of the command line in `ctx`. */
export function outputOf(ctx: CommandContext): Output {
  const a = ctx.args;
  const json = a.declares("format") && a.string("format") === "json";
  const quiet = a.declares("quiet") && a.bool("quiet");
  return {
    json,
    quiet,
    info: (line) => {
      if (!quiet) ctx.stderr.write(`${line}\n`);
    },
    writeJson: (value) => {
      ctx.stdout.write(`${JSON.stringify(value)}\n`);
    },
  };
}

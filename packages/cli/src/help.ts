// Help text and usage lines, derived from the command tree. Pure.
import type { CommandSpec } from "./command-spec.js";
import type { FlagSet, FlagSpec } from "./flags.js";

/** The words of a command path: `rkt image gc`. */
export function commandPath(path: readonly CommandSpec[]): string {
  return ["rkt", ...path.map((c) => c.name)].join(" ");
}

/** The synopsis after the command path (declared, or derived from its flags and children). */
export function synopsis(cmd: CommandSpec | undefined): string {
  if (cmd === undefined) return "[global options] <command> [command options] [arguments...]";
  if (cmd.usage !== undefined) return cmd.usage;
  if (cmd.children !== undefined && cmd.load === undefined) return "<command> [arguments...]";
  return visibleFlags(cmd.flags).length > 0 ? "[flags]" : "";
}

/** `rkt image gc [--grace-period=DURATION] …`: what a bad command line is answered with. */
export function usageLine(path: readonly CommandSpec[]): string {
  return `Usage: ${`${commandPath(path)} ${synopsis(path[path.length - 1])}`.trimEnd()}`;
}

/** The flags help lists, in declaration order. */
export function visibleFlags(flags: FlagSet | undefined): [string, FlagSpec][] {
  return Object.entries(flags ?? {}).filter(([, s]) => s.hidden !== true);
}

/** `-q, --quiet` / `    --format=FORMAT`: a flag as help and man pages name it. */
export function flagTitle(name: string, s: FlagSpec, indentLong = true): string {
  const long =
    s.type === "bool"
      ? `--${name}`
      : s.bare !== undefined
        ? `--${name}[=${s.value ?? "VALUE"}]`
        : `--${name}=${s.value ?? "VALUE"}`;
  if (s.short !== undefined) return `-${s.short}, ${long}`;
  return indentLong ? `    ${long}` : long;
}

/** A flag's help with its default, as pflag prints it: `… (default 24h0m0s)`. */
export function flagText(s: FlagSpec): string {
  const d = s.default;
  const shown = d === undefined || d === false || d === "" ? "" : ` (default ${String(d)})`;
  const deprecated = s.deprecated === undefined ? "" : ` (deprecated: ${s.deprecated})`;
  return `${s.help}${shown}${deprecated}`;
}

/** Aligned `title  text` lines; long titles push their text to the next line. */
function table(rows: readonly (readonly [string, string])[], indent = "  "): string[] {
  const width = Math.min(30, Math.max(0, ...rows.map(([t]) => t.length)));
  const out: string[] = [];
  for (const [title, text] of rows) {
    const lines = text.split("\n");
    if (title.length > width) {
      out.push(`${indent}${title}`);
      for (const l of lines) out.push(`${indent}${" ".repeat(width + 2)}${l}`);
      continue;
    }
    out.push(`${indent}${title.padEnd(width)}  ${lines[0] ?? ""}`.trimEnd());
    for (const l of lines.slice(1)) out.push(`${indent}${" ".repeat(width + 2)}${l}`);
  }
  return out;
}

/** The FLAGS section's lines for a flag set. */
export function flagLines(flags: FlagSet | undefined): string[] {
  const v = visibleFlags(flags);
  const anyShort = v.some(([, s]) => s.short !== undefined);
  return table(v.map(([n, s]) => [flagTitle(n, s, anyShort), flagText(s)]));
}

/**
 * The help of a command (or of `rkt` for an empty path): title, usage, details, subcommands,
 * flags, global options, and, for commands with subcommands, where to look next.
 */
export function helpText(
  root: readonly CommandSpec[],
  path: readonly CommandSpec[],
  globalFlags: FlagSet,
): string {
  const cmd = path[path.length - 1];
  const full = commandPath(path);
  const lines: string[] = [];
  if (cmd === undefined) {
    lines.push("rkt - the image side of rkt: fetch, verify, store, render and run container images", "");
  } else lines.push(`${full} - ${cmd.summary}`, "");
  lines.push("USAGE:", `  ${full} ${synopsis(cmd)}`.trimEnd(), "");
  if (cmd?.help !== undefined) lines.push(cmd.help, "");
  const children = (cmd === undefined ? root : (cmd.children ?? [])).filter((c) => c.hidden !== true);
  if (children.length > 0) {
    lines.push("COMMANDS:", ...table(children.map((c) => [c.name, c.summary])), "");
  }
  if (cmd?.ownGrammar === true && cmd.appFlags !== undefined) {
    if (visibleFlags(cmd.flags).length > 0)
      lines.push("POD FLAGS (before the first image):", ...flagLines(cmd.flags), "");
    lines.push("APP FLAGS (after their image):", ...flagLines(cmd.appFlags), "");
  } else if (cmd === undefined) {
    lines.push("FLAGS:", ...flagLines(rootFlags), "");
  } else if (visibleFlags(cmd.flags).length > 0) {
    lines.push("FLAGS:", ...flagLines(cmd.flags), "");
  }
  lines.push(
    "GLOBAL OPTIONS:",
    ...table(visibleFlags(globalFlags).map(([n, s]) => [flagTitle(n, s, false), flagText(s)])),
    "",
  );
  if (children.length > 0) lines.push(`Run '${full} <command> --help' for more information on a command.`);
  while (lines[lines.length - 1] === "") lines.pop();
  return `${lines.join("\n")}\n`;
}

/** The flags of `rkt` itself (before any command). */
export const rootFlags: FlagSet = {
  help: { type: "bool", short: "h", help: "help for rkt (also after any command)" },
  version: { type: "bool", help: "print the version and exit" },
};

// `rkt completion bash|zsh|fish` and `rkt man`: shell completion and man pages, made from the
// command tree.
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { completionScript, completionShells, type CompletionShell } from "../completion.js";
import type { CommandContext } from "../context.js";
import { globalFlags } from "../globals.js";
import { commandTree, rktVersion } from "../main.js";
import { manPages } from "../man.js";
import { usageError } from "./image-common.js";

/** `rkt completion SHELL`: the script on stdout. */
export async function completionCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const [shell, extra] = ctx.args.positionals;
  if (shell === undefined || extra !== undefined || !(completionShells as readonly string[]).includes(shell))
    throw usageError(`completion takes one shell: ${completionShells.join(", ")}`);
  ctx.stdout.write(completionScript(shell as CompletionShell, commandTree(), globalFlags));
  return Promise.resolve(0);
}

/**
 * `rkt man [COMMAND...]`: the roff page of rkt or of COMMAND on stdout; with `--output DIR`, every
 * page written to DIR (created if missing), their paths printed.
 */
export async function manCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const pages = manPages(commandTree(), globalFlags, rktVersion());
  const out = ctx.args.string("output");
  if (out !== undefined) {
    if (ctx.args.positionals.length > 0) throw usageError("man --output writes every page: give no COMMAND");
    const dir = resolve(ctx.cwd, out);
    await mkdir(dir, { recursive: true });
    for (const p of pages) {
      await writeFile(join(dir, p.file), p.text);
      if (!ctx.args.bool("quiet")) ctx.stdout.write(`${join(dir, p.file)}\n`);
    }
    return 0;
  }
  const file = `${["rkt", ...ctx.args.positionals].join("-")}.1`;
  const p = pages.find((x) => x.file === file);
  if (p === undefined)
    throw usageError(`no man page for ${JSON.stringify(["rkt", ...ctx.args.positionals].join(" "))}`);
  ctx.stdout.write(p.text);
  return 0;
}

// Man pages in roff (man(7) macros), generated from the command tree: rkt(1) and one page per
// command, rkt-fetch(1), rkt-image(1), rkt-image-list(1)… Pure.
import type { CommandSpec } from "./command-spec.js";
import type { FlagSet } from "./flags.js";
import { commandPath, flagText, flagTitle, rootFlags, synopsis, visibleFlags } from "./help.js";

/** One page: its file name (`rkt-image-list.1`) and roff text. */
export interface ManPage {
  readonly file: string;
  readonly text: string;
}

// roff: a backslash is \e, a hyphen in words \-, and a line may not start with . or '.
function esc(s: string): string {
  return s.replace(/\\/g, "\\e").replace(/-/g, "\\-");
}

function line(s: string): string {
  const e = esc(s);
  return /^[.']/.test(e) ? `\\&${e}` : e;
}

// Help text: plain lines are filled into paragraphs; indented lines (lists of forms, tables)
// keep their layout.
function body(text: string): string[] {
  const out: string[] = [];
  let mode: "fill" | "nofill" | undefined;
  for (const l of text.split("\n")) {
    if (l.trim() === "") {
      if (mode === "nofill") out.push(".fi");
      mode = undefined;
      out.push(".PP");
      continue;
    }
    const indented = /^\s/.test(l);
    if (indented && mode !== "nofill") {
      out.push(".nf");
      mode = "nofill";
    } else if (!indented && mode === "nofill") {
      out.push(".fi");
      mode = "fill";
    }
    out.push(line(l));
    mode ??= "fill";
  }
  if (mode === "nofill") out.push(".fi");
  return out;
}

function flagSection(title: string, flags: FlagSet | undefined): string[] {
  const v = visibleFlags(flags);
  if (v.length === 0) return [];
  const out = [`.SH ${title}`];
  for (const [n, s] of v)
    out.push(".TP", `.B ${line(flagTitle(n, s, false))}`, ...flagText(s).split("\n").map(line));
  return out;
}

const pageName = (path: readonly CommandSpec[]): string => commandPath(path).replace(/ /g, "-");

function page(
  root: readonly CommandSpec[],
  path: readonly CommandSpec[],
  globalFlags: FlagSet,
  version: string,
): ManPage {
  const cmd = path[path.length - 1];
  const name = pageName(path);
  const out = [
    `.TH ${name.toUpperCase().replace(/-/g, "\\-")} 1 "" "rkt ${version}" "rkt Manual"`,
    // Left-aligned and unhyphenated: flag names and paths must read as typed.
    ".nh",
    ".ad l",
    ".SH NAME",
    `${esc(name)} \\- ${line(cmd?.summary ?? "the image side of rkt: fetch, verify, store, render and run container images")}`,
    ".SH SYNOPSIS",
    `.B ${line(commandPath(path))}`,
    line(synopsis(cmd)),
  ];
  if (cmd?.help !== undefined) out.push(".SH DESCRIPTION", ...body(cmd.help));
  const children = (cmd === undefined ? root : (cmd.children ?? [])).filter((c) => c.hidden !== true);
  if (children.length > 0) {
    out.push(".SH COMMANDS");
    for (const c of children)
      out.push(
        ".TP",
        `.B ${line(c.name)}`,
        `${line(c.summary)}. See \\fB${esc(pageName([...path, c]))}\\fR(1).`,
      );
  }
  if (cmd === undefined) out.push(...flagSection("OPTIONS", rootFlags));
  else if (cmd.ownGrammar === true && cmd.appFlags !== undefined) {
    out.push(...flagSection("POD OPTIONS", cmd.flags), ...flagSection("APP OPTIONS", cmd.appFlags));
  } else out.push(...flagSection("OPTIONS", cmd.flags));
  out.push(...flagSection("GLOBAL OPTIONS", globalFlags));
  out.push(
    ".SH EXIT STATUS",
    "0 on success, 254 on any error (one line on standard error), 2 when no command is given.",
  );
  const see = [
    ...(path.length > 0 ? [pageName(path.slice(0, -1))] : []),
    ...children.map((c) => pageName([...path, c])),
  ];
  if (see.length > 0) out.push(".SH SEE ALSO", see.map((s) => `\\fB${esc(s)}\\fR(1)`).join(", "));
  return { file: `${name}.1`, text: `${out.join("\n")}\n` };
}

/** Every page: rkt(1), then each visible command, parents before children. */
export function manPages(root: readonly CommandSpec[], globalFlags: FlagSet, version: string): ManPage[] {
  const pages = [page(root, [], globalFlags, version)];
  const walk = (list: readonly CommandSpec[], above: readonly CommandSpec[]): void => {
    for (const c of list) {
      if (c.hidden === true) continue;
      pages.push(page(root, [...above, c], globalFlags, version));
      walk(c.children ?? [], [...above, c]);
    }
  };
  walk(root, []);
  return pages;
}

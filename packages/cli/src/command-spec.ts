// What one node of the command tree says about a command. The tree itself is data in main.ts; help,
// usage lines, shell completion and man pages are all derived from it.
import type { Command } from "./context.js";
import type { FlagSet } from "./flags.js";

/** What a shell offers for a command's arguments: files, directories, stored images, these words. */
export type ArgCompletion = "file" | "dir" | "image" | "none" | readonly string[];

/** One command (or group of commands) of `rkt`. */
export interface CommandSpec {
  readonly name: string;
  /** One line, capitalised, no final period (cobra's Short). */
  readonly summary: string;
  /** The synopsis after `rkt <path>`: the flags worth showing and the arguments. */
  readonly usage?: string | undefined;
  /** Details printed between the usage and the flags (paragraphs, lists of argument forms). */
  readonly help?: string | undefined;
  /** The command's own flags (global flags are separate). Every runnable command declares them. */
  readonly flags?: FlagSet | undefined;
  /**
   * Flags that follow each image (`rkt run IMAGE --exec=…`); only commands with their own grammar
   * have them, and they read them themselves with `readFlag`.
   */
  readonly appFlags?: FlagSet | undefined;
  /**
   * The command reads its command line itself (its grammar is not flags and arguments), with the
   * same layer (`readFlag`) and the flags declared here; main does not parse it.
   */
  readonly ownGrammar?: boolean | undefined;
  /** False: flags end at the first argument (the rest belongs to it: `enter UUID CMD ARGS…`). */
  readonly interspersed?: boolean | undefined;
  /** What shell completion offers for the arguments; default files. */
  readonly args?: ArgCompletion | undefined;
  readonly load?: (() => Promise<Command>) | undefined;
  readonly children?: readonly CommandSpec[] | undefined;
  /** Not listed in help, completion or man pages (rkt's hidden aliases such as `image fetch`). */
  readonly hidden?: boolean | undefined;
}

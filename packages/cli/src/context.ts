import type { Readable, Writable } from "node:stream";
import type { ParsedArgs } from "./flags.js";

/**
 * The `--insecure-options` set, as rkt's `secflags`: each field says whether that check is off.
 * `ondisk` is accepted and ignored (rkt ≥ 1.26).
 */
export interface InsecureOptions {
  readonly image: boolean;
  readonly tls: boolean;
  readonly ondisk: boolean;
  readonly http: boolean;
  readonly pubkey: boolean;
  readonly capabilities: boolean;
  readonly paths: boolean;
  readonly seccomp: boolean;
}

/** rkt's global flags, resolved (paths absolute, defaults applied). */
export interface GlobalOptions {
  /** `--dir`: the data directory (store, pods). */
  readonly dir: string;
  readonly systemConfig: string;
  readonly localConfig: string;
  /** `--user-config`; "" when not given. */
  readonly userConfig: string;
  readonly insecure: InsecureOptions;
  readonly trustKeysFromHttps: boolean;
  readonly debug: boolean;
}

/**
 * What a command gets instead of reaching for `process` (STYLE §2.8): tests run commands
 * in-process with their own streams and environment, no mocks.
 */
export interface CommandContext {
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly stdin: Readable;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Directory relative paths are resolved against. */
  readonly cwd: string;
  readonly globals: GlobalOptions;
  /** Fires on SIGINT/SIGTERM; pass it to every long operation. */
  readonly signal: AbortSignal;
  /**
   * The command line after the command's name, parsed against the flags the command declares in
   * the command tree (main.ts). Commands with their own grammar (`ownGrammar`) read `argv` instead.
   */
  readonly args: ParsedArgs;
}

/**
 * A command: reads its flags from `ctx.args` (or `argv` with its own grammar), calls one library
 * function, prints; returns the exit status.
 */
export type Command = (argv: readonly string[], ctx: CommandContext) => Promise<number>;

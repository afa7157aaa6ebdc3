// rkt's global flags (rkt/rkt.go, rkt/flag/secflags.go): recognised anywhere on the command line
// before `--`, like cobra's persistent flags, in Go's `--flag value` / `--flag=value` forms.
import { realpathSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { ErrorCode, RktError } from "@rkt/oci";
import type { GlobalOptions, InsecureOptions } from "./context.js";
import { UsageError, boolFlag, parseGoBool, stringFlag, type FlagSet } from "./flags.js";

/** rkt's global flags, in rkt's order; accepted anywhere before `--`. */
export const globalFlags: FlagSet = {
  debug: boolFlag("print out more debug information to stderr"),
  dir: stringFlag("DIR", "rkt data directory (default /var/lib/rkt as root, $XDG_DATA_HOME/rkt otherwise)", {
    complete: "dir",
  }),
  "insecure-options": stringFlag(
    "LIST",
    "comma-separated list of security features to disable: none,image,tls,ondisk,http,pubkey,capabilities,paths,seccomp,all-fetch,all-run,all",
  ),
  "local-config": stringFlag("DIR", "local configuration directory (default /etc/rkt)", { complete: "dir" }),
  "system-config": stringFlag("DIR", "system configuration directory (default /usr/lib/rkt)", {
    complete: "dir",
  }),
  "trust-keys-from-https": boolFlag("automatically trust gpg keys fetched from https"),
  "user-config": stringFlag("DIR", "user configuration directory", { complete: "dir" }),
};

/** The values of `--insecure-options`, for completion. */
export const insecureOptionNames: readonly string[] = [
  "none",
  "image",
  "tls",
  "ondisk",
  "http",
  "pubkey",
  "capabilities",
  "paths",
  "seccomp",
  "all-fetch",
  "all-run",
  "all",
];

type InsecureName =
  | "none"
  | "image"
  | "tls"
  | "ondisk"
  | "http"
  | "pubkey"
  | "capabilities"
  | "paths"
  | "seccomp"
  | "all-fetch"
  | "all-run"
  | "all";
type Flag = keyof InsecureOptions;

// secflags.go: all-fetch = image|tls|http|pubkey (the docs forget pubkey), all-run =
// capabilities|paths|seccomp, all = both (ondisk is not part of any set).
const expansions: Record<InsecureName, readonly Flag[]> = {
  none: [],
  image: ["image"],
  tls: ["tls"],
  ondisk: ["ondisk"],
  http: ["http"],
  pubkey: ["pubkey"],
  capabilities: ["capabilities"],
  paths: ["paths"],
  seccomp: ["seccomp"],
  "all-fetch": ["image", "tls", "http", "pubkey"],
  "all-run": ["capabilities", "paths", "seccomp"],
  all: ["image", "tls", "http", "pubkey", "capabilities", "paths", "seccomp"],
};

function flagError(name: string, value: string, why: string): RktError {
  return new RktError(
    ErrorCode.InvalidArgument,
    `invalid argument ${JSON.stringify(value)} for "--${name}" flag: ${why}`,
  );
}

/**
 * Parses an `--insecure-options` value as rkt does: a comma list of option names; unknown names
 * fail with `unknown option "x"`, repeated ones with `duplicated option "x"`. Pure.
 */
export function parseInsecureOptions(value: string): InsecureOptions {
  const on = new Set<Flag>();
  const seen = new Set<string>();
  for (const raw of value.split(",")) {
    const name = raw.trim();
    if (!insecureOptionNames.includes(name)) {
      throw flagError("insecure-options", value, `unknown option ${JSON.stringify(name)}`);
    }
    if (seen.has(name))
      throw flagError("insecure-options", value, `duplicated option ${JSON.stringify(name)}`);
    seen.add(name);
    for (const f of expansions[name as InsecureName]) on.add(f);
  }
  return {
    image: on.has("image"),
    tls: on.has("tls"),
    ondisk: on.has("ondisk"),
    http: on.has("http"),
    pubkey: on.has("pubkey"),
    capabilities: on.has("capabilities"),
    paths: on.has("paths"),
    seccomp: on.has("seccomp"),
  };
}

/** rkt's default data directory: `/var/lib/rkt` for root, else `$XDG_DATA_HOME/rkt` or `~/.local/share/rkt`. */
export function defaultDataDir(env: Readonly<Record<string, string | undefined>>, uid: number): string {
  if (uid === 0) return "/var/lib/rkt";
  const xdg = env["XDG_DATA_HOME"];
  if (xdg !== undefined && xdg !== "" && isAbsolute(xdg)) return join(xdg, "rkt");
  return join(env["HOME"] ?? homedir(), ".local", "share", "rkt");
}

// rkt resolves symlinks of an existing --dir (EvalSymlinks) and keeps a missing path as is.
function absoluteDir(name: string, value: string, cwd: string): string {
  if (value === "") throw flagError(name, value, '"" is not a valid directory');
  const abs = resolve(cwd, value);
  try {
    return realpathSync(abs);
  } catch {
    return abs;
  }
}

/** Global flags split off the command line, and the tokens left for the command. */
export interface SplitArgs {
  readonly globals: GlobalOptions;
  /** Whether `--help`/`-h` was given (before `--`). */
  readonly help: boolean;
  readonly rest: readonly string[];
}

/**
 * Takes the global flags out of `argv` (wherever they appear before `--`) and resolves them.
 * Throws RKT_INVALID_ARGUMENT with cobra's wording for bad values.
 */
export function splitGlobalFlags(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  cwd: string,
  uid: number,
): SplitArgs {
  const values: Record<string, string | boolean> = {};
  const rest: string[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (a === "--") {
      rest.push(...argv.slice(i));
      break;
    }
    if (a === "--help" || a === "-h") {
      help = true;
      continue;
    }
    const m = /^--([a-z-]+)(=.*)?$/s.exec(a);
    const name = m?.[1];
    const spec = name === undefined ? undefined : globalFlags[name];
    if (m === null || name === undefined || spec === undefined) {
      rest.push(a);
      continue;
    }
    if (spec.type === "bool") {
      // Go bool flags take `--debug` or `--debug=true|false`, never a separate value.
      values[name] = m[2] === undefined ? true : parseGoBool(`--${name}`, m[2].slice(1));
      continue;
    }
    if (m[2] !== undefined) {
      values[name] = m[2].slice(1);
      continue;
    }
    const v = argv[i + 1];
    if (v === undefined) throw new UsageError(`flag needs an argument: --${name}`);
    values[name] = v;
    i++;
  }
  const str = (n: string): string | undefined => values[n] as string | undefined;
  return {
    help,
    rest,
    globals: {
      dir: str("dir") === undefined ? defaultDataDir(env, uid) : absoluteDir("dir", str("dir")!, cwd),
      systemConfig: absoluteDir("system-config", str("system-config") ?? "/usr/lib/rkt", cwd),
      localConfig: absoluteDir("local-config", str("local-config") ?? "/etc/rkt", cwd),
      userConfig:
        str("user-config") === undefined ? "" : absoluteDir("user-config", str("user-config")!, cwd),
      insecure: parseInsecureOptions(str("insecure-options") ?? "none"),
      trustKeysFromHttps: values["trust-keys-from-https"] === true,
      debug: values["debug"] === true,
    },
  };
}

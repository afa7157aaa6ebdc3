// Helpers shared by the `rkt image` commands: Go-style boolean flags, opening the store.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { ErrorCode, RktError } from "@rkt/oci";
import type { LocalStore } from "@rkt/store";
import type { CommandContext } from "../context.js";

/**
 * Go's bool flags accept `--x`, `--x=true|false|1|0`; node's parseArgs only `--x`. Rewrites the
 * named flags so that parseArgs reads them (a false value drops the flag). RKT_INVALID_ARGUMENT
 * with pflag's wording for other values. Pure.
 */
export function normalizeBoolFlags(
  argv: readonly string[],
  names: readonly string[],
  falseFlags: Set<string> = new Set(),
): string[] {
  const out: string[] = [];
  for (const a of argv) {
    const m = /^--([a-z-]+)=(.*)$/s.exec(a);
    if (m === null || !names.includes(m[1] ?? "")) {
      out.push(a);
      continue;
    }
    const v = m[2] ?? "";
    if (v === "true" || v === "1") {
      out.push(`--${m[1]}`);
      falseFlags.delete(m[1] ?? "");
    } else if (v === "false" || v === "0") falseFlags.add(m[1] ?? "");
    else
      throw new RktError(
        ErrorCode.InvalidArgument,
        `invalid argument ${JSON.stringify(v)} for "--${m[1]}" flag: strconv.ParseBool: parsing failed`,
      );
  }
  return out;
}

type Spec = NonNullable<ParseArgsConfig["options"]>;
type Parsed<S extends Spec> = ReturnType<
  typeof parseArgs<{ args: string[]; options: S; allowPositionals: true; strict: true }>
>;

/** parseArgs with Go-style booleans; positionals allowed. */
export function parseFlags<S extends Spec>(argv: readonly string[], options: S): Parsed<S> {
  const bools = Object.entries(options)
    .filter(([, v]) => v.type === "boolean")
    .map(([k]) => k);
  const falseFlags = new Set<string>();
  const parsed = parseArgs({
    args: normalizeBoolFlags(argv, bools, falseFlags),
    options,
    allowPositionals: true,
    strict: true,
  });
  // An explicit `--x=false` beats the default (parseArgs only knows `--x`).
  const values = parsed.values as Record<string, unknown>;
  for (const f of falseFlags) values[f] = false;
  return parsed;
}

/**
 * Opens the store under `--dir`, runs `fn`, always closes it. `cleanup` for commands that free
 * space: they work on a full disk (the store's reserve is released first, put back after).
 */
export async function withStore<T>(
  ctx: CommandContext,
  fn: (store: LocalStore) => Promise<T> | T,
  o: { cleanup?: boolean | undefined } = {},
): Promise<T> {
  const { LocalStore } = await import("@rkt/store");
  const store = await LocalStore.open(ctx.globals.dir, o);
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}

/** A usage error (wrong argument count): exit 254 with the message. */
export function usageError(message: string): RktError {
  return new RktError(ErrorCode.InvalidArgument, message);
}

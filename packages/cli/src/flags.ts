// The one command-line layer: every command declares its flags (a FlagSet) in the command tree and
// gets them parsed here, with pflag's syntax and wording, which rkt's cobra commands used:
// `--name=value` or `--name value`; Go booleans `--x`, `--x=true|false|1|0|t|f…` (never a separate
// value); shorthands `-q`, `-qf`, `-o FILE`, `-oFILE`, `-o=FILE`; `--` ends the flags. No prefix
// matching of flag names (pflag has none; cobra's prefix matching is for command names). Pure.
import { ErrorCode, RktError } from "@rkt/oci";

/** One flag a command takes. */
export interface FlagSpec {
  readonly type: "bool" | "string";
  /** One line of help, lower case, no final period (pflag's habit). */
  readonly help: string;
  /** A one-letter shorthand: `-q`. */
  readonly short?: string | undefined;
  /** Placeholder of the value in help: `--grace-period=DURATION` (default VALUE). */
  readonly value?: string | undefined;
  /** Returned when the flag is not given; shown in help when not false or "". */
  readonly default?: string | boolean | undefined;
  /** The only values accepted; checked here, offered by shell completion. */
  readonly choices?: readonly string[] | undefined;
  /** Repeatable: every value is kept in order (`strings()`); else the last one wins. */
  readonly multiple?: boolean | undefined;
  /** pflag's NoOptDefVal: the value of a bare `--flag`; a value must then be given with `=`. */
  readonly bare?: string | undefined;
  /** cobra's MarkDeprecated: `Flag --x has been deprecated, <this>` is printed on use. */
  readonly deprecated?: string | undefined;
  /** Accepted but not listed in help or completion (aliases). */
  readonly hidden?: boolean | undefined;
  /** What a shell completes the value with; default nothing (choices when there are some). */
  readonly complete?: "file" | "dir" | undefined;
}

/** A command's flags by long name (without `--`). */
export type FlagSet = Readonly<Record<string, FlagSpec>>;

/** A boolean flag. */
export function boolFlag(help: string, o: Omit<FlagSpec, "type" | "help" | "value"> = {}): FlagSpec {
  return { type: "bool", help, ...o };
}

/** A flag with a value, `--name=VALUE`. */
export function stringFlag(
  value: string,
  help: string,
  o: Omit<FlagSpec, "type" | "help" | "value"> = {},
): FlagSpec {
  return { type: "string", value, help, ...o };
}

/**
 * A bad command line: printed as `<command>: <message>` followed by the command's usage line,
 * exit 254 (RKT_INVALID_ARGUMENT).
 */
export class UsageError extends RktError {
  /** Whether main prints the command's usage line after the message (flag syntax errors). */
  readonly showUsage: boolean;
  constructor(message: string, o: { showUsage?: boolean } = {}) {
    super(ErrorCode.InvalidArgument, message);
    this.name = "UsageError";
    this.showUsage = o.showUsage ?? true;
  }
}

/** One element of the command line, in order: a flag with its value, or an argument. */
export type ArgToken =
  | { readonly kind: "flag"; readonly name: string; readonly value: string | boolean }
  | { readonly kind: "arg"; readonly value: string };

const goTrue = new Set(["1", "t", "T", "TRUE", "true", "True"]);
const goFalse = new Set(["0", "f", "F", "FALSE", "false", "False"]);

/**
 * Go's `strconv.ParseBool` as pflag reports it: `invalid argument "x" for "--name" flag:
 * strconv.ParseBool: parsing "x": invalid syntax`. UsageError. Pure.
 */
export function parseGoBool(flag: string, value: string): boolean {
  if (goTrue.has(value)) return true;
  if (goFalse.has(value)) return false;
  throw new UsageError(
    `invalid argument ${JSON.stringify(value)} for "${flag}" flag: strconv.ParseBool: parsing ${JSON.stringify(value)}: invalid syntax`,
  );
}

function orList(values: readonly string[]): string {
  return values.length <= 1
    ? (values[0] ?? "")
    : `${values.slice(0, -1).join(", ")} or ${values[values.length - 1]!}`;
}

function checkChoice(name: string, spec: FlagSpec, value: string): void {
  if (spec.choices !== undefined && !spec.choices.includes(value)) {
    throw new UsageError(
      `invalid argument ${JSON.stringify(value)} for "--${name}" flag: must be ${orList(spec.choices)}`,
    );
  }
}

/** A parsed command line: typed reads of the declared flags, the arguments, the order of both. */
export class ParsedArgs {
  /** Every flag and argument in command-line order (for flags that apply to the argument before). */
  readonly tokens: readonly ArgToken[];
  /** The arguments, those after `--` included. */
  readonly positionals: readonly string[];
  /** How many arguments came before `--`; undefined without `--` (cobra's ArgsLenAtDash). */
  readonly dashAt: number | undefined;
  /** Deprecation notices of the flags used, to print on stderr. */
  readonly notices: readonly string[];
  private readonly flags: FlagSet;

  constructor(flags: FlagSet, tokens: readonly ArgToken[], dashAt: number | undefined, notices: string[]) {
    this.flags = flags;
    this.tokens = tokens;
    this.positionals = tokens.flatMap((t) => (t.kind === "arg" ? [t.value] : []));
    this.dashAt = dashAt;
    this.notices = notices;
  }

  private spec(name: string, type: FlagSpec["type"]): FlagSpec {
    const s = this.flags[name];
    // A command reading a flag it did not declare is a bug, not bad input.
    if (s?.type !== type)
      throw new RktError(ErrorCode.Internal, `flag --${name} is not a declared ${type} flag`);
    return s;
  }

  private last(name: string): ArgToken | undefined {
    for (let i = this.tokens.length - 1; i >= 0; i--) {
      const t = this.tokens[i]!;
      if (t.kind === "flag" && t.name === name) return t;
    }
    return undefined;
  }

  /** Whether the command declares the flag (shared helpers read optional flags this way). */
  declares(name: string): boolean {
    return Object.hasOwn(this.flags, name);
  }

  /** Whether the flag was given. */
  has(name: string): boolean {
    return this.last(name) !== undefined;
  }

  /** A boolean flag: its last value, else its default, else false. */
  bool(name: string): boolean {
    const s = this.spec(name, "bool");
    const t = this.last(name);
    return t?.kind === "flag" ? t.value === true : s.default === true;
  }

  /** A value flag: its last value, else its default (undefined without one). */
  string(name: string): string | undefined {
    const s = this.spec(name, "string");
    const t = this.last(name);
    return t?.kind === "flag" ? String(t.value) : typeof s.default === "string" ? s.default : undefined;
  }

  /** Every value of a (repeatable) value flag, in order. */
  strings(name: string): string[] {
    this.spec(name, "string");
    return this.tokens.flatMap((t) => (t.kind === "flag" && t.name === name ? [String(t.value)] : []));
  }
}

/** Options of {@link parseCommandLine}. */
export interface ParseOptions {
  /** False: flags end at the first argument (what follows belongs to it, as `enter UUID CMD…`). */
  readonly interspersed?: boolean | undefined;
}

function shorthands(flags: FlagSet): Map<string, [string, FlagSpec]> {
  const m = new Map<string, [string, FlagSpec]>();
  for (const [name, s] of Object.entries(flags)) if (s.short !== undefined) m.set(s.short, [name, s]);
  return m;
}

/**
 * Reads the flag at `argv[i]` (which starts with `-` and is not `-` or `--`): its name and value,
 * and the index of the next unread element. For commands with their own grammar (`rkt run`), which
 * switch flag sets between their parts. UsageError with pflag's wording: `unknown flag: --x`,
 * `unknown shorthand flag: 'x' in -xy`, `flag needs an argument: --x` / `'o' in -o`, bad booleans
 * and values outside `choices`. Only the first shorthand of a group like `-qf` is read; call again
 * with `argv[i] = "-f"` for the rest (see {@link parseCommandLine}).
 */
export function readFlag(
  argv: readonly string[],
  i: number,
  flags: FlagSet,
): { name: string; spec: FlagSpec; value: string | boolean; next: number; rest?: string | undefined } {
  const a = argv[i] ?? "";
  if (a.startsWith("--")) {
    const body = a.slice(2);
    const eq = body.indexOf("=");
    const name = eq < 0 ? body : body.slice(0, eq);
    if (name === "" || name.startsWith("-")) throw new UsageError(`bad flag syntax: ${a}`);
    const spec = Object.hasOwn(flags, name) ? flags[name] : undefined;
    if (spec === undefined) throw new UsageError(`unknown flag: --${name}`);
    if (spec.type === "bool") {
      const value = eq < 0 ? true : parseGoBool(`--${name}`, body.slice(eq + 1));
      return { name, spec, value, next: i + 1 };
    }
    if (eq >= 0) {
      const value = body.slice(eq + 1);
      checkChoice(name, spec, value);
      return { name, spec, value, next: i + 1 };
    }
    if (spec.bare !== undefined) return { name, spec, value: spec.bare, next: i + 1 };
    if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: --${name}`);
    const value = argv[i + 1]!;
    checkChoice(name, spec, value);
    return { name, spec, value, next: i + 2 };
  }
  const c = a.slice(1, 2);
  const found = shorthands(flags).get(c);
  if (found === undefined) throw new UsageError(`unknown shorthand flag: '${c}' in ${a}`);
  const [name, spec] = found;
  const after = a.slice(2);
  if (spec.type === "bool") {
    if (after.startsWith("="))
      return { name, spec, value: parseGoBool(`-${c}`, after.slice(1)), next: i + 1 };
    return { name, spec, value: true, next: i + 1, rest: after === "" ? undefined : `-${after}` };
  }
  let value: string;
  let next = i + 1;
  if (after.startsWith("=")) value = after.slice(1);
  else if (after !== "") value = after;
  else if (spec.bare !== undefined) value = spec.bare;
  else if (i + 1 < argv.length) {
    value = argv[i + 1]!;
    next = i + 2;
  } else throw new UsageError(`flag needs an argument: '${c}' in ${a}`);
  checkChoice(name, spec, value);
  return { name, spec, value, next };
}

/** cobra's notice for a deprecated flag. */
export function deprecationNotice(name: string, spec: FlagSpec): string | undefined {
  return spec.deprecated === undefined ? undefined : `Flag --${name} has been deprecated, ${spec.deprecated}`;
}

/**
 * Parses `argv` (the words after the command's name) against `flags`: flags anywhere among the
 * arguments (unless `interspersed: false`), `--` ending them. UsageError on a bad flag. Pure.
 */
export function parseCommandLine(argv: readonly string[], flags: FlagSet, o: ParseOptions = {}): ParsedArgs {
  const tokens: ArgToken[] = [];
  const notices: string[] = [];
  let dashAt: number | undefined;
  let args = 0;
  const work = [...argv];
  for (let i = 0; i < work.length;) {
    const a = work[i]!;
    if (a === "--") {
      dashAt = args;
      for (const v of work.slice(i + 1)) tokens.push({ kind: "arg", value: v });
      break;
    }
    if (!a.startsWith("-") || a === "-" || (o.interspersed === false && args > 0)) {
      tokens.push({ kind: "arg", value: a });
      args++;
      i++;
      continue;
    }
    const f = readFlag(work, i, flags);
    tokens.push({ kind: "flag", name: f.name, value: f.value });
    const notice = deprecationNotice(f.name, f.spec);
    if (notice !== undefined && !notices.includes(notice)) notices.push(notice);
    if (f.rest !== undefined) {
      // `-qf`: the remaining shorthands are read as their own word.
      work[i] = f.rest;
      continue;
    }
    i = f.next;
  }
  return new ParsedArgs(flags, tokens, dashAt, notices);
}

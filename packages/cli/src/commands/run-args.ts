// The command line of `rkt run` and `rkt prepare`, as rkt reads it:
//   [POD FLAGS] IMAGE [APP FLAGS] [-- ARGS...] [--- IMAGE [APP FLAGS] [-- ARGS...]]...
// Pod flags come before the first image; app flags after their image apply to it alone; `--`
// starts the app's arguments and `---` the next image. Pure.
import type { Volume } from "@rkt/appc";
import { ErrorCode, RktError } from "@rkt/oci";
import type { NetMode } from "@rkt/runner";

/** One image of the command line with what was said about its app. */
export interface RunImageArg {
  readonly image: string;
  readonly signature?: string | undefined;
  readonly exec?: string | undefined;
  readonly args?: readonly string[] | undefined;
  readonly user?: string | undefined;
  readonly group?: string | undefined;
  readonly name?: string | undefined;
  readonly workingDir?: string | undefined;
  readonly env: readonly (readonly [string, string])[];
  readonly mounts: readonly { volume: string; path: string }[];
}

/** Everything `rkt run` was told. */
export interface RunArgs {
  readonly images: readonly RunImageArg[];
  readonly volumes: readonly Volume[];
  /** `--mount` before the first image: every app. */
  readonly mounts: readonly { volume: string; path: string }[];
  readonly setEnv: readonly (readonly [string, string])[];
  readonly inheritEnv: boolean;
  readonly interactive: boolean;
  readonly net: NetMode;
  readonly hostname?: string | undefined;
  readonly uuidFileSave?: string | undefined;
  readonly stage1?: string | undefined;
  readonly stage1Name?: string | undefined;
  readonly noOverlay: boolean;
  readonly pullPolicy: "new" | "update" | "never";
  readonly quiet: boolean;
}

const podValueFlags = [
  "net",
  "hostname",
  "volume",
  "mount",
  "set-env",
  "uuid-file-save",
  "stage1",
  "stage1-name",
  "pull-policy",
] as const;
const podBoolFlags = ["inherit-env", "interactive", "no-overlay", "quiet"] as const;
const appValueFlags = [
  "exec",
  "user",
  "group",
  "name",
  "working-dir",
  "environment",
  "mount",
  "signature",
] as const;

function bad(message: string): RktError {
  return new RktError(ErrorCode.InvalidArgument, message);
}

function splitFlag(arg: string): { name: string; value: string | undefined } {
  const body = arg.replace(/^--?/, "");
  const eq = body.indexOf("=");
  return eq < 0 ? { name: body, value: undefined } : { name: body.slice(0, eq), value: body.slice(eq + 1) };
}

function goBool(name: string, value: string | undefined): boolean {
  if (value === undefined || value === "true" || value === "1") return true;
  if (value === "false" || value === "0") return false;
  throw bad(
    `invalid argument ${JSON.stringify(value)} for "--${name}" flag: strconv.ParseBool: parsing failed`,
  );
}

/** `NAME=VALUE` of `--set-env` / `--environment`. */
export function parseEnvPair(flag: string, s: string): readonly [string, string] {
  const eq = s.indexOf("=");
  if (eq <= 0) throw bad(`--${flag} ${JSON.stringify(s)}: expected NAME=VALUE`);
  return [s.slice(0, eq), s.slice(eq + 1)];
}

/** rkt's `--volume NAME,kind=host|empty,source=PATH,readOnly=BOOL,mode=,uid=,gid=,recursive=`. */
export function parseVolume(s: string): Volume {
  const [name = "", ...kvs] = s.split(",");
  if (name === "" || name.includes("="))
    throw bad(`--volume ${JSON.stringify(s)}: expected NAME,kind=host|empty,...`);
  const v: Record<string, unknown> = { name };
  for (const kv of kvs) {
    const eq = kv.indexOf("=");
    const k = kv.slice(0, eq);
    const value = kv.slice(eq + 1);
    if (eq < 0) throw bad(`--volume ${JSON.stringify(s)}: ${JSON.stringify(kv)} is not KEY=VALUE`);
    switch (k) {
      case "kind":
      case "source":
      case "mode":
        v[k] = value;
        break;
      case "readOnly":
      case "recursive":
        v[k] = goBool(`volume ${k}`, value);
        break;
      case "uid":
      case "gid":
        if (!/^[0-9]+$/.test(value)) throw bad(`--volume ${JSON.stringify(s)}: ${k} must be a number`);
        v[k] = Number(value);
        break;
      default:
        throw bad(`--volume ${JSON.stringify(s)}: unknown key ${JSON.stringify(k)}`);
    }
  }
  if (v["kind"] === undefined)
    throw bad(`--volume ${JSON.stringify(s)}: kind=host or kind=empty is required`);
  return v as Volume;
}

/** rkt's `--mount volume=NAME,target=PATH`. */
export function parseMount(s: string): { volume: string; path: string } {
  const kv = Object.fromEntries(
    s.split(",").map((p) => {
      const eq = p.indexOf("=");
      return eq < 0 ? [p, ""] : [p.slice(0, eq), p.slice(eq + 1)];
    }),
  );
  const volume = kv["volume"];
  const path = kv["target"];
  if (volume === undefined || volume === "" || path === undefined || !path.startsWith("/"))
    throw bad(`--mount ${JSON.stringify(s)}: expected volume=NAME,target=/ABSOLUTE/PATH`);
  return { volume, path };
}

interface MutableImage {
  image: string;
  signature?: string;
  exec?: string;
  args?: string[];
  user?: string;
  group?: string;
  name?: string;
  workingDir?: string;
  env: (readonly [string, string])[];
  mounts: { volume: string; path: string }[];
}

/** Parses `rkt run`'s arguments (without `run`). RKT_INVALID_ARGUMENT for anything it does not take. */
export function parseRunArgs(argv: readonly string[]): RunArgs {
  const images: MutableImage[] = [];
  const volumes: Volume[] = [];
  const mounts: { volume: string; path: string }[] = [];
  const setEnv: (readonly [string, string])[] = [];
  const pod: Record<string, string | boolean | undefined> = {};
  let current: MutableImage | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (a === "---") {
      if (current === undefined) throw bad("--- must follow an image");
      current = undefined;
      continue;
    }
    if (a === "--") {
      if (current === undefined) throw bad("-- must follow an image (its arguments come after it)");
      const end = argv.indexOf("---", i + 1);
      current.args = [...argv.slice(i + 1, end < 0 ? argv.length : end)];
      i = end < 0 ? argv.length : end - 1;
      continue;
    }
    if (!a.startsWith("-") || a === "-") {
      current = { image: a, env: [], mounts: [] };
      images.push(current);
      continue;
    }
    const { name, value: inline } = splitFlag(a);
    const takesValue = (current === undefined ? podValueFlags : appValueFlags) as readonly string[];
    const value = (): string => {
      if (inline !== undefined) return inline;
      const next = argv[i + 1];
      if (next === undefined) throw bad(`flag needs an argument: --${name}`);
      i++;
      return next;
    };
    if (current === undefined) {
      if (a === "-q") pod["quiet"] = true;
      else if ((podBoolFlags as readonly string[]).includes(name)) {
        pod[name] = goBool(name, inline);
      } else if (!takesValue.includes(name)) {
        throw bad(`unknown flag: --${name}`);
      } else if (name === "volume") volumes.push(parseVolume(value()));
      else if (name === "mount") mounts.push(parseMount(value()));
      else if (name === "set-env") setEnv.push(parseEnvPair(name, value()));
      else pod[name] = value();
      continue;
    }
    if (!takesValue.includes(name))
      throw bad(
        (podValueFlags as readonly string[]).includes(name) ||
          (podBoolFlags as readonly string[]).includes(name)
          ? `--${name} is a pod flag: give it before the first image`
          : `unknown flag: --${name}`,
      );
    const v = value();
    switch (name) {
      case "environment":
        current.env.push(parseEnvPair(name, v));
        break;
      case "mount":
        current.mounts.push(parseMount(v));
        break;
      case "working-dir":
        current.workingDir = v;
        break;
      default:
        (current as unknown as Record<string, string>)[name] = v;
    }
  }
  if (images.length === 0) throw bad("at least one image is required");
  const net = (pod["net"] as string | undefined) ?? "default";
  if (net !== "host" && net !== "none" && net !== "default")
    throw bad(`--net=${net}: only host, none and default are supported (no CNI networks)`);
  const pullPolicy = (pod["pull-policy"] as string | undefined) ?? "new";
  if (pullPolicy !== "new" && pullPolicy !== "update" && pullPolicy !== "never")
    throw bad(`--pull-policy=${pullPolicy}: expected new, update or never`);
  return {
    images,
    volumes,
    mounts,
    setEnv,
    inheritEnv: pod["inherit-env"] === true,
    interactive: pod["interactive"] === true,
    net,
    hostname: pod["hostname"] as string | undefined,
    uuidFileSave: pod["uuid-file-save"] as string | undefined,
    stage1: pod["stage1"] as string | undefined,
    stage1Name: pod["stage1-name"] as string | undefined,
    noOverlay: pod["no-overlay"] === true,
    pullPolicy,
    quiet: pod["quiet"] === true,
  };
}

// The command line of `rkt run` and `rkt prepare`, as rkt reads it:
//   [POD FLAGS] IMAGE [APP FLAGS] [-- ARGS...] [--- IMAGE [APP FLAGS] [-- ARGS...]]...
// Pod flags come before the first image; app flags after their image apply to it alone; `--`
// starts the app's arguments and `---` the next image. Pure.
import type { Volume } from "@rkt/appc";
import { ErrorCode, RktError } from "@rkt/oci";
import type { NetMode } from "@rkt/runner";
import { boolFlag, parseGoBool, readFlag, stringFlag, type FlagSet } from "../flags.js";

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
  /** `prepare --format json`. */
  readonly format: "text" | "json";
}

/** The pod flags of `rkt run` and `rkt prepare` (before the first image). */
export const podFlags: FlagSet = {
  net: stringFlag("MODE", "host, none, or default: a private network namespace with loopback only (no CNI)", {
    default: "default",
  }),
  hostname: stringFlag("NAME", "the pod's host name (default rkt-<uuid>)"),
  volume: stringFlag(
    "VOLUME",
    "NAME,kind=host,source=PATH[,readOnly=true] or NAME,kind=empty[,mode=,uid=,gid=]",
    { multiple: true },
  ),
  mount: stringFlag("volume=NAME,target=PATH", "mount a volume in every app", { multiple: true }),
  "set-env": stringFlag("NAME=VALUE", "environment variable for every app", { multiple: true }),
  "inherit-env": boolFlag("pass rkt's environment to the apps (under theirs)"),
  interactive: boolFlag("the app gets rkt's stdin and terminal (one app only)"),
  "uuid-file-save": stringFlag("FILE", "write the pod UUID to FILE", { complete: "file" }),
  stage1: stringFlag("STAGE1", "runc, crun, nspawn or fly (default: the first that can run the pod here)"),
  "stage1-name": stringFlag("NAME", "a stage1 by rkt's image name, e.g. coreos.com/rkt/stage1-fly"),
  "no-overlay": boolFlag("flattened copies instead of overlay mounts over the tree store"),
  "pull-policy": stringFlag("POLICY", "new (fetch only missing images), update or never", { default: "new" }),
  quiet: boolFlag("no fetch progress or informational lines on stderr", { short: "q" }),
};

/** The app flags of `rkt run` and `rkt prepare` (after the image they apply to). */
export const appFlags: FlagSet = {
  exec: stringFlag("CMD", "the app's command instead of the image's"),
  user: stringFlag("USER", "user to run the app as (a name from the image's /etc/passwd, or a UID)"),
  group: stringFlag("GROUP", "group to run the app as"),
  name: stringFlag("NAME", "the app's name in the pod"),
  "working-dir": stringFlag("DIR", "the app's working directory"),
  environment: stringFlag("NAME=VALUE", "environment variable for this app", { multiple: true }),
  mount: stringFlag("volume=NAME,target=PATH", "mount a volume in this app", { multiple: true }),
  signature: stringFlag("FILE", "the image's detached signature", { complete: "file" }),
};

function bad(message: string): RktError {
  return new RktError(ErrorCode.InvalidArgument, message);
}

function flagName(arg: string): string {
  const body = arg.replace(/^--?/, "");
  const eq = body.indexOf("=");
  return eq < 0 ? body : body.slice(0, eq);
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
        v[k] = parseGoBool(`volume ${k}`, value);
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
export function parseRunArgs(argv: readonly string[], pod: FlagSet = podFlags): RunArgs {
  const images: MutableImage[] = [];
  const volumes: Volume[] = [];
  const mounts: { volume: string; path: string }[] = [];
  const setEnv: (readonly [string, string])[] = [];
  const given: Record<string, string | boolean | undefined> = {};
  let current: MutableImage | undefined;
  const work = [...argv];
  for (let i = 0; i < work.length; i++) {
    const a = work[i] ?? "";
    if (a === "---") {
      if (current === undefined) throw bad("--- must follow an image");
      current = undefined;
      continue;
    }
    if (a === "--") {
      if (current === undefined) throw bad("-- must follow an image (its arguments come after it)");
      const end = work.indexOf("---", i + 1);
      current.args = work.slice(i + 1, end < 0 ? work.length : end);
      i = end < 0 ? work.length : end - 1;
      continue;
    }
    if (!a.startsWith("-") || a === "-") {
      current = { image: a, env: [], mounts: [] };
      images.push(current);
      continue;
    }
    const name = flagName(a);
    if (current !== undefined && !Object.hasOwn(appFlags, name) && Object.hasOwn(pod, name))
      throw bad(`--${name} is a pod flag: give it before the first image`);
    const f = readFlag(work, i, current === undefined ? pod : appFlags);
    if (f.rest !== undefined) {
      // `-qx`: the other shorthands are read as their own word.
      work[i] = f.rest;
      i--;
    } else i = f.next - 1;
    const v = f.value;
    if (current === undefined) {
      if (f.name === "volume") volumes.push(parseVolume(String(v)));
      else if (f.name === "mount") mounts.push(parseMount(String(v)));
      else if (f.name === "set-env") setEnv.push(parseEnvPair(f.name, String(v)));
      else given[f.name] = v;
      continue;
    }
    switch (f.name) {
      case "environment":
        current.env.push(parseEnvPair(f.name, String(v)));
        break;
      case "mount":
        current.mounts.push(parseMount(String(v)));
        break;
      case "working-dir":
        current.workingDir = String(v);
        break;
      default:
        (current as unknown as Record<string, string>)[f.name] = String(v);
    }
  }
  if (images.length === 0) throw bad("at least one image is required");
  const net = (given["net"] as string | undefined) ?? "default";
  if (net !== "host" && net !== "none" && net !== "default")
    throw bad(`--net=${net}: only host, none and default are supported (no CNI networks)`);
  const pullPolicy = (given["pull-policy"] as string | undefined) ?? "new";
  if (pullPolicy !== "new" && pullPolicy !== "update" && pullPolicy !== "never")
    throw bad(`--pull-policy=${pullPolicy}: expected new, update or never`);
  return {
    images,
    volumes,
    mounts,
    setEnv,
    inheritEnv: given["inherit-env"] === true,
    interactive: given["interactive"] === true,
    net,
    hostname: given["hostname"] as string | undefined,
    uuidFileSave: given["uuid-file-save"] as string | undefined,
    stage1: given["stage1"] as string | undefined,
    stage1Name: given["stage1-name"] as string | undefined,
    noOverlay: given["no-overlay"] === true,
    pullPolicy,
    quiet: given["quiet"] === true,
    format: given["format"] === "json" ? "json" : "text",
  };
}

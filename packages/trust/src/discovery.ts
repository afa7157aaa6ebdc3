// Where rkt finds the signature policy and the lookaside configuration for registry images:
// containers' files adapted to rkt's configuration directories (user > local > system, as rkt
// layers its other configuration), first found wins, never merged.
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { ErrorCode, RktError } from "@rkt/oci";
import { errorText } from "./key.js";
import { readRegistriesD, type RegistriesD } from "./lookaside.js";
import { parsePolicyOrThrow, type Policy } from "./policy.js";

/** rkt's configuration directories ("" or undefined when not in use). */
export interface ConfigDirs {
  readonly userConfig?: string | undefined;
  readonly localConfig?: string | undefined;
  readonly systemConfig?: string | undefined;
  /** `$HOME`, for containers' per-user registries.d. */
  readonly home?: string | undefined;
}

function dirs(o: ConfigDirs): string[] {
  return [o.userConfig, o.localConfig, o.systemConfig].filter(
    (d): d is string => d !== undefined && d !== "",
  );
}

/**
 * Candidate policy files, in order: `--signature-policy FILE` alone when given, else
 * `<user-config>/policy.json`, `<local-config>/policy.json`, `<system-config>/policy.json`.
 * containers' own `/etc/containers/policy.json` is deliberately not read: distributions ship it
 * as `insecureAcceptAnything` (Debian's does), which would silently lift rkt's refusal of
 * unverified registry images; point `--signature-policy` at it to share it. Pure.
 */
export function signaturePolicyPaths(o: ConfigDirs & { flag?: string | undefined }): string[] {
  if (o.flag !== undefined) return [o.flag];
  return dirs(o).map((d) => join(d, "policy.json"));
}

/**
 * Reads the first policy file of `paths` that exists and parses it strictly; undefined when none
 * does. With `required` (an explicit `--signature-policy`), a missing file is RKT_IO. A bad file
 * is RKT_INVALID_ARGUMENT `<file>: <JSONPath>: <problem>`.
 */
export async function findSignaturePolicy(
  paths: readonly string[],
  o: { required?: boolean | undefined } = {},
): Promise<{ path: string; policy: Policy } | undefined> {
  for (const path of paths) {
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (o.required !== true && (code === "ENOENT" || code === "ENOTDIR")) continue;
      throw new RktError(ErrorCode.Io, `signature policy ${path}: ${errorText(e)}`, { cause: e });
    }
    return { path, policy: parsePolicyOrThrow(bytes, path) };
  }
  return undefined;
}

/**
 * Candidate registries.d directories, in order: `<user-config>/registries.d`,
 * `<local-config>/registries.d`, `<system-config>/registries.d`, then containers'
 * `$HOME/.config/containers/registries.d` and `/etc/containers/registries.d` (lookaside locations
 * only say where signatures are; they grant no trust, so sharing containers' is safe). Pure.
 */
export function registriesDPaths(o: ConfigDirs): string[] {
  return [
    ...dirs(o).map((d) => join(d, "registries.d")),
    ...(o.home === undefined || o.home === "" ? [] : [join(o.home, ".config/containers/registries.d")]),
    "/etc/containers/registries.d",
  ];
}

/** Reads the first existing directory of `dirs` (as `readRegistriesD`); an empty config when none. */
export async function findRegistriesD(
  candidates: readonly string[],
): Promise<{ dir: string | undefined; config: RegistriesD }> {
  for (const dir of candidates) {
    try {
      if (!(await stat(dir)).isDirectory()) continue;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") continue;
      throw new RktError(ErrorCode.Io, `${dir}: ${errorText(e)}`, { cause: e });
    }
    return { dir, config: await readRegistriesD(dir) };
  }
  return { dir: undefined, config: { docker: {} } };
}

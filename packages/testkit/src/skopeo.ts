import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseDigest, type Digest } from "@rkt/oci";
import { run } from "./internal/proc.js";
import type { Registry } from "./registry.js";

/** Options of the skopeo helpers. */
export interface SkopeoOptions {
  /** Registry credentials; default the registry's own (basic/token mode). `null`: anonymous. */
  creds?: { username: string; password: string } | null | undefined;
  /** Trust the registry's CA (TLS). Default true; false connects with verification but no CA. */
  trustCa?: boolean | undefined;
  /** Copy every image of an index (`--all`). Default true. */
  all?: boolean | undefined;
}

/**
 * skopeo flags for one side (`src` or `dest`) of a copy against `reg`: TLS verification only
 * where the registry speaks TLS (with its CA via `--cert-dir`), credentials where it has them.
 */
export function skopeoRegistryArgs(
  reg: Registry,
  side: "src" | "dest" | "",
  o: SkopeoOptions = {},
): string[] {
  const p = side === "" ? "--" : `--${side}-`;
  const args = [`${p}tls-verify=${reg.tls}`];
  if (reg.tls && o.trustCa !== false && reg.certDir !== undefined) args.push(`${p}cert-dir=${reg.certDir}`);
  const creds =
    o.creds === undefined
      ? reg.username !== undefined && reg.password !== undefined
        ? { username: reg.username, password: reg.password }
        : null
      : o.creds;
  args.push(creds === null ? `${p}no-creds` : `${p}creds=${creds.username}:${creds.password}`);
  return args;
}

/**
 * Pushes the image (or index) of an OCI layout to `registry` as `ref` (`repo:tag`) with
 * `skopeo copy --preserve-digests`, and returns the digest of the pushed manifest. `layoutRef`
 * selects an image by its `org.opencontainers.image.ref.name`; omitted, the layout must hold one.
 * Throws RKT_INTERNAL with skopeo's stderr when skopeo fails (e.g. wrong credentials).
 */
export async function pushLayout(
  layoutDir: string,
  ref: string,
  registry: Registry,
  o: SkopeoOptions & { layoutRef?: string | undefined } = {},
): Promise<Digest> {
  const tmp = await mkdtemp(join(tmpdir(), "rkt-skopeo-"));
  try {
    const digestFile = join(tmp, "digest");
    const src = `oci:${layoutDir}${o.layoutRef === undefined ? "" : `:${o.layoutRef}`}`;
    await run("skopeo", [
      "copy",
      "--quiet",
      "--preserve-digests",
      ...(o.all === false ? [] : ["--all"]),
      `--digestfile=${digestFile}`,
      ...skopeoRegistryArgs(registry, "dest", o),
      src,
      `docker://${registry.host}/${ref}`,
    ]);
    return parseDigest((await readFile(digestFile, "utf8")).trim());
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * Pulls `ref` (`repo:tag` or `repo@digest`) from `registry` into the OCI layout `layoutDir` under
 * the name `layoutRef` (default `latest`), digests preserved.
 */
export async function pullToLayout(
  registry: Registry,
  ref: string,
  layoutDir: string,
  o: SkopeoOptions & { layoutRef?: string | undefined } = {},
): Promise<void> {
  await run("skopeo", [
    "copy",
    "--quiet",
    "--preserve-digests",
    ...(o.all === false ? [] : ["--all"]),
    ...skopeoRegistryArgs(registry, "src", o),
    `docker://${registry.host}/${ref}`,
    `oci:${layoutDir}:${o.layoutRef ?? "latest"}`,
  ]);
}

/** The exact manifest bytes the registry serves for `ref` (`skopeo inspect --raw`). */
export async function inspectRaw(registry: Registry, ref: string, o: SkopeoOptions = {}): Promise<Buffer> {
  const { stdoutBytes } = await run("skopeo", [
    "inspect",
    "--raw",
    ...skopeoRegistryArgs(registry, "", o),
    `docker://${registry.host}/${ref}`,
  ]);
  return stdoutBytes;
}

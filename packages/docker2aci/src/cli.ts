// The `docker2aci` command, a drop-in for docker2aci's main.go: Go-style flags, the same usage
// text, output file names and messages. Converts `docker://` images straight from the registry
// (layers streamed into the ACI, nothing extracted to disk), `docker save` archives and OCI
// layout directories.
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import type { Writable } from "node:stream";
import { isRktError } from "@rkt/oci";
import { convertImage, type ConvertedAci } from "./convert.js";
import type { LayerFileNames } from "./file-names.js";
import type { ImageInput } from "./input.js";
import { registryInput } from "./sources.js";
import { directorySink } from "./sinks.js";

/** The version `-version` prints (docker2aci's line format). */
export const docker2aciVersion = "0.1.0";

/** What the command gets instead of `process`. */
export interface Docker2aciIO {
  stdout: Writable;
  stderr: Writable;
  /** Output directory and where relative paths start. */
  cwd: string;
  /** Program name for the usage text. */
  argv0?: string | undefined;
  signal?: AbortSignal | undefined;
  /** Credentials (docker's config.json, containers auth.json) and proxies are read from here; default `process.env`. */
  env?: Readonly<Record<string, string | undefined>> | undefined;
}

interface Flags {
  nosquash: boolean;
  insecureSkipVerify: boolean;
  insecureAllowHttp: boolean;
  debug: boolean;
  version: boolean;
  help: boolean;
  image: string;
  compression: string;
}

const boolFlags = new Set([
  "nosquash",
  "debug",
  "version",
  "insecure-skip-verify",
  "insecure-allow-http",
  "h",
  "help",
]);
const stringFlags = new Set(["image", "compression"]);

function usage(argv0: string): string {
  return [
    `Usage of ${argv0}:`,
    "docker2aci [-debug] [-nosquash] [-compression=(gzip|none)] IMAGE",
    "  Where IMAGE is",
    "    [-image=IMAGE_NAME[:TAG]] FILEPATH",
    "  or",
    "    docker://[REGISTRYURL/]IMAGE_NAME[:TAG]",
    "Flags:",
    "  -compression string",
    '    \tType of compression to use; allowed values: gzip, none (default "gzip")',
    "  -debug",
    "    \tEnables debug messages",
    "  -image string",
    "    \tWhen converting a local file, it selects a particular image to convert. Format: IMAGE_NAME[:TAG]",
    "  -insecure-allow-http",
    "    \tUses unencrypted connections when fetching images",
    "  -insecure-skip-verify",
    "    \tDon't verify certificates when fetching images",
    "  -nosquash",
    "    \tDon't squash layers and output every layer as ACI",
    "  -version",
    "    \tPrint version",
    "",
  ].join("\n");
}

class FlagError extends Error {}

/** Go's flag package: `-f`, `--f`, `-f=v`, `-f v` for strings; parsing stops at the first non-flag or `--`. Pure. */
export function parseGoFlags(argv: readonly string[]): { flags: Flags; args: string[] } {
  const flags: Flags = {
    nosquash: false,
    insecureSkipVerify: false,
    insecureAllowHttp: false,
    debug: false,
    version: false,
    help: false,
    image: "",
    compression: "gzip",
  };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (a === "--") {
      i++;
      break;
    }
    if (!a.startsWith("-") || a === "-") break;
    const body = a.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const name = eq < 0 ? body : body.slice(0, eq);
    if (boolFlags.has(name)) {
      let v = true;
      if (eq >= 0) {
        const s = body.slice(eq + 1);
        if (["1", "t", "T", "true", "TRUE", "True"].includes(s)) v = true;
        else if (["0", "f", "F", "false", "FALSE", "False"].includes(s)) v = false;
        else throw new FlagError(`invalid boolean value "${s}" for -${name}: parse error`);
      }
      if (name === "h" || name === "help") flags.help = v;
      else if (name === "nosquash" || name === "debug" || name === "version") flags[name] = v;
      else if (name === "insecure-skip-verify") flags.insecureSkipVerify = v;
      else if (name === "insecure-allow-http") flags.insecureAllowHttp = v;
      continue;
    }
    if (stringFlags.has(name)) {
      let v: string;
      if (eq >= 0) v = body.slice(eq + 1);
      else {
        const next = argv[i + 1];
        if (next === undefined) throw new FlagError(`flag needs an argument: -${name}`);
        v = next;
        i++;
      }
      if (name === "image") flags.image = v;
      else flags.compression = v;
      continue;
    }
    throw new FlagError(`flag provided but not defined: -${name}`);
  }
  return { flags, args: argv.slice(i) };
}

function printSummary(out: Writable, last: ConvertedAci | undefined, files: readonly string[]): void {
  const app = last?.manifest.app;
  const lines: string[] = [""];
  if (app?.mountPoints !== undefined && app.mountPoints.length > 0) {
    lines.push("Converted volumes:");
    for (const m of app.mountPoints) {
      lines.push(`\tname: "${m.name}", path: "${m.path}", readOnly: ${String(m.readOnly ?? false)}`);
    }
    lines.push("");
  }
  if (app?.ports !== undefined && app.ports.length > 0) {
    lines.push("Converted ports:");
    for (const p of app.ports) {
      lines.push(
        `\tname: "${p.name}", protocol: "${p.protocol}", port: ${p.port}, count: ${p.count}, socketActivated: ${String(p.socketActivated ?? false)}`,
      );
    }
    lines.push("");
  }
  lines.push("Generated ACI(s):", ...files, "");
  out.write(lines.join("\n"));
}

/**
 * Runs `docker2aci ARGS`; returns the exit status: 0, 1 for a failed conversion (`Error: …` on
 * stderr), 2 for bad usage (Go's flag package).
 */
export async function docker2aciMain(argv: readonly string[], io: Docker2aciIO): Promise<number> {
  const argv0 = io.argv0 ?? "docker2aci";
  let parsed: ReturnType<typeof parseGoFlags>;
  try {
    parsed = parseGoFlags(argv);
  } catch (e) {
    io.stderr.write(`${(e as Error).message}\n${usage(argv0)}`);
    return 2;
  }
  const { flags, args } = parsed;
  if (flags.help) {
    io.stderr.write(usage(argv0));
    return 0;
  }
  if (flags.version) {
    io.stdout.write(`docker2aci version ${docker2aciVersion}\nappc version 0.8.11\n`);
    return 0;
  }
  if (args.length !== 1) {
    io.stderr.write(usage(argv0));
    return 2;
  }
  const debug = (s: string): void => {
    if (flags.debug) io.stderr.write(`${s}\n`);
  };
  try {
    if (flags.compression !== "gzip" && flags.compression !== "none") {
      throw new Error(`unknown compression method: ${flags.compression}`);
    }
    const arg = args[0] ?? "";
    let input: ImageInput;
    let layerFileNames: LayerFileNames;
    if (arg.startsWith("docker://")) {
      if (flags.image !== "") throw new Error("flag --image works only with files.");
      debug(`Getting image info from registry for ${arg}...`);
      input = await registryInput(arg.slice("docker://".length), {
        insecure: { tls: flags.insecureSkipVerify, http: flags.insecureAllowHttp },
        signal: io.signal,
        env: io.env,
      });
      layerFileNames = "oci";
    } else {
      const path = resolve(io.cwd, arg);
      const { dockerArchiveInput, ociLayoutInput } = await import("./sources.js");
      const isDir = (await stat(path).catch(() => undefined))?.isDirectory() === true;
      debug(`Getting image info from ${isDir ? "OCI layout" : "docker save archive"} ${arg}...`);
      input = isDir
        ? await ociLayoutInput(path, flags.image === "" ? undefined : flags.image)
        : await dockerArchiveInput(path, { image: flags.image === "" ? undefined : flags.image });
      layerFileNames = isDir ? "oci" : "docker-save";
    }
    debug(`Converting ${input.layers.length} layer(s) of ${input.name.repository}...`);
    let acis: ConvertedAci[];
    try {
      acis = await convertImage(input, directorySink(io.cwd), {
        squash: !flags.nosquash,
        compression: flags.compression,
        layerFileNames,
        signal: io.signal,
      });
    } finally {
      await input.close?.();
    }
    for (const a of acis) debug(`Wrote ${a.fileName} (${a.imageId})`);
    // docker2aci lists per-layer files top first.
    const files = acis.map((a) => a.fileName);
    printSummary(io.stdout, acis[acis.length - 1], flags.nosquash ? files.reverse() : files);
    return 0;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    io.stderr.write(
      `Error: ${isRktError(e) && !msg.startsWith("conversion error") ? `conversion error: ${msg}` : msg}\n`,
    );
    return 1;
  }
}

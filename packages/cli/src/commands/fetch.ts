// `rkt fetch IMAGE...` (also `rkt image fetch`): classify each argument as rkt does, import local
// sources into the store, pull docker:// refs from their registry, print one image ID per image.
// fetch appc images by name (discovery) or http(s) URL, verified before they are stored.
import { statSync } from "node:fs";
import { resolve } from "node:path";
import { ErrorCode, RktError, hostPlatform, parseImageRef, type ImageRef, type Platform } from "@rkt/oci";
import type * as Fetch from "@rkt/fetch";
import type { LocalStore } from "@rkt/store";
import type { CommandContext } from "../context.js";

/** rkt's pull policies; `rkt fetch` defaults to `update`. Local sources always import. */
export type PullPolicy = "new" | "update" | "never";

/** One image argument with the `--signature` that followed it. */
export interface FetchArg {
  readonly image: string;
  readonly signature?: string | undefined;
}

/** Parsed `rkt fetch` command line. */
export interface FetchFlags {
  readonly images: readonly FetchArg[];
  readonly pullPolicy: PullPolicy;
  readonly full: boolean;
  /** `--quiet`/`-q`: no progress or informational lines on stderr (IDs, warnings and errors stay). */
  readonly quiet?: boolean | undefined;
  readonly format: "" | "json";
  /** `--parallel N`: registry blobs downloaded at once (default 4). */
  readonly parallel?: number | undefined;
  /** `--os`, `--arch`, `--variant`: the platform picked from an index (each defaults to the host's). */
  readonly platform?: { os?: string; arch?: string; variant?: string } | undefined;
  /** `--signature-policy FILE`: the policy.json for registry images (else found in the config dirs). */
  readonly signaturePolicy?: string | undefined;
  /** Deprecation notices to print on stderr (cobra's wording). */
  readonly notices: readonly string[];
  /** `--no-render`: do not render fetched images into the tree store (rendered when root with overlayfs). */
  readonly noRender?: boolean | undefined;
}

function usage(message: string): RktError {
  return new RktError(ErrorCode.InvalidArgument, message);
}

/**
 * Parses `rkt fetch` arguments as rkt's `parseApps`: flags may sit between images, and
 * `--signature FILE` applies to the image just before it (`--signature must follow an image`,
 * `--signature specified multiple times for the same image`). `--store-only`/`--no-store` are
 * deprecated aliases of `--pull-policy=never|update` (both: `both --store-only and --no-store
 * specified`). No image: `must provide at least one image`. RKT_INVALID_ARGUMENT. Pure.
 */
export function parseFetchArgs(argv: readonly string[]): FetchFlags {
  const images: { image: string; signature?: string | undefined }[] = [];
  let pullPolicy: string | undefined;
  let storeOnly = false;
  let noStore = false;
  let full = false;
  let quiet = false;
  let noRender = false;
  let signaturePolicy: string | undefined;
  let format: "" | "json" = "";
  let parallel: number | undefined;
  const platform: { os?: string; arch?: string; variant?: string } = {};
  const notices: string[] = [];
  const bool = (name: string, v: string | undefined): boolean => {
    if (v === undefined || v === "true" || v === "1") return true;
    if (v === "false" || v === "0") return false;
    throw usage(
      `invalid argument ${JSON.stringify(v)} for "--${name}" flag: strconv.ParseBool: parsing failed`,
    );
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (a === "--") throw usage("unable to parse arguments: app arguments unsupported");
    const m = /^--?([a-z-]+)(?:=(.*))?$/s.exec(a);
    if (m === null || !a.startsWith("-")) {
      images.push({ image: a });
      continue;
    }
    const name = m[1] ?? "";
    let value = m[2];
    const takeValue = (): string => {
      if (value !== undefined) return value;
      const v = argv[i + 1];
      if (v === undefined) throw usage(`flag needs an argument: --${name}`);
      i++;
      return v;
    };
    switch (name) {
      case "pull-policy":
        pullPolicy = takeValue();
        break;
      case "store-only":
        storeOnly = bool(name, value);
        notices.push("Flag --store-only has been deprecated, please use --pull-policy=never");
        break;
      case "no-store":
        noStore = bool(name, value);
        notices.push("Flag --no-store has been deprecated, please use --pull-policy=update");
        break;
      case "full":
        full = bool(name, value);
        break;
      case "no-render":
        noRender = bool(name, value);
        break;
      case "q":
      case "quiet":
        quiet = bool("quiet", value);
        break;
      case "format": {
        value = takeValue();
        if (value !== "" && value !== "json")
          throw usage(`invalid argument ${JSON.stringify(value)} for "--format" flag: must be json`);
        format = value;
        break;
      }
      case "parallel": {
        const v = takeValue();
        parallel = Number(v);
        if (!/^\d+$/.test(v) || parallel < 1 || parallel > 64)
          throw usage(`invalid argument ${JSON.stringify(v)} for "--parallel" flag: must be 1..64`);
        break;
      }
      case "os":
      case "arch":
      case "variant": {
        const v = takeValue();
        if (!/^[A-Za-z0-9._-]+$/.test(v))
          throw usage(`invalid argument ${JSON.stringify(v)} for "--${name}" flag: not a platform component`);
        platform[name] = v;
        break;
      }
      case "signature-policy":
        signaturePolicy = takeValue();
        break;
      case "signature": {
        const sig = takeValue();
        const last = images[images.length - 1];
        if (last === undefined) throw usage("--signature must follow an image");
        if (last.signature !== undefined)
          throw usage("--signature specified multiple times for the same image");
        last.signature = sig;
        break;
      }
      default:
        throw usage(`unknown flag: ${a.split("=")[0] ?? a}`);
    }
  }
  if (storeOnly && noStore) throw usage("both --store-only and --no-store specified");
  // rkt tests only `update` and `never`; anything else behaves like `new`.
  let policy: PullPolicy =
    pullPolicy === undefined
      ? "update"
      : pullPolicy === "update" || pullPolicy === "never"
        ? pullPolicy
        : "new";
  if (storeOnly) policy = "never";
  if (noStore) policy = "update";
  if (images.length === 0) throw usage("must provide at least one image");
  if (platform.variant !== undefined && platform.arch === undefined)
    throw usage("--variant needs --arch (a variant belongs to one architecture)");
  return {
    images,
    pullPolicy: policy,
    full,
    quiet,
    format,
    parallel,
    platform: Object.keys(platform).length > 0 ? platform : undefined,
    signaturePolicy,
    notices,
    noRender,
  };
}

/**
 * The platform `--os`/`--arch`/`--variant` ask for, the host's filling what is not given (a
 * variant only comes from the host when the architecture does too); undefined without any flag.
 */
export function wantedPlatform(flags: Pick<FetchFlags, "platform">): Platform | undefined {
  const p = flags.platform;
  if (p === undefined) return undefined;
  const host = hostPlatform();
  const variant = p.arch === undefined ? host.variant : p.variant;
  return {
    os: p.os ?? host.os,
    architecture: p.arch ?? host.architecture,
    ...(variant === undefined ? {} : { variant }),
  };
}

/** What one fetched image prints in `--format json`. */
export interface FetchSummary {
  readonly id: string;
  readonly kind: "aci" | "oci";
  readonly name: string;
  /** The image: an ACI's archive digest; an OCI image's manifest, config and layer digests. */
  readonly digests: readonly string[];
  /** Stored bytes. */
  readonly bytes: number;
  /** Registry pulls: bytes received from the registry, and image bytes the store already had. */
  readonly bytesDownloaded?: number | undefined;
  readonly bytesReused?: number | undefined;
}

/** rkt's printed ID: ACI `sha512-` + 32 hex (`--full` 64); OCI the manifest digest in full. */
export function printedId(id: string, full: boolean): string {
  return id.startsWith("sha512-") && !full ? id.slice(0, 7 + 32) : id;
}

function isRegularFile(p: string, cwd: string): boolean {
  try {
    return statSync(resolve(cwd, p)).isFile();
  } catch {
    return false;
  }
}

/**
 * Imports an ACI file through @rkt/fetch's `importAciFile`: the signature (`--signature FILE` or
 * `<image>.aci.asc`) is verified against the keys trusted for the manifest name before the image
 * becomes visible; `--insecure-options=image` skips that with a warning. Its `image: ` lines
 * (`signature verified:`, the `rkt trust` hint, the warning) go to stderr. Like rkt's file
 * fetcher, a file is always re-imported (no cached remote), so nothing stored unverified can
 * stand in for a verified import.
 */
export async function importAciFromFile(
  store: LocalStore,
  path: string,
  o: {
    signaturePath?: string | undefined;
    insecureImage: boolean;
    signal: AbortSignal;
    what: string;
    quiet?: boolean | undefined;
  },
  ctx: CommandContext,
): Promise<{ id: string; kind: "aci" | "oci"; name: string; size: number }> {
  const { importAciFile } = await import("@rkt/fetch");
  const { KeyStore } = await import("@rkt/trust");
  const log = (m: string): void => void ctx.stderr.write(`image: ${m}\n`);
  return importAciFile(store, {
    path,
    signaturePath: o.signaturePath,
    keystore: o.insecureImage
      ? null
      : new KeyStore({ systemConfigDir: ctx.globals.systemConfig, localConfigDir: ctx.globals.localConfig }),
    signal: o.signal,
    onInfo: o.quiet === true ? undefined : log,
    onWarning: log,
  });
}

async function fetchOne(
  store: LocalStore,
  arg: FetchArg,
  ref: ImageRef,
  ctx: CommandContext,
  flags: FetchFlags,
): Promise<FetchSummary> {
  switch (ref.transport) {
    case "file": {
      const path = resolve(ctx.cwd, ref.path);
      const r = await importAciFromFile(
        store,
        path,
        {
          signaturePath: arg.signature === undefined ? undefined : resolve(ctx.cwd, arg.signature),
          insecureImage: ctx.globals.insecure.image,
          signal: ctx.signal,
          what: arg.image,
          quiet: flags.quiet,
        },
        ctx,
      );
      const { getImage } = await import("@rkt/store");
      return {
        id: r.id,
        kind: r.kind,
        name: r.name,
        digests: [getImage(store, r.id).manifestDigest],
        bytes: r.size,
      };
    }
    case "oci":
    case "oci-archive": {
      if (arg.signature !== undefined) {
        throw new RktError(
          ErrorCode.InvalidArgument,
          `${arg.image}: --signature applies to ACIs; OCI images carry no detached signature`,
        );
      }
      const fetch = await import("@rkt/fetch");
      const path = resolve(ctx.cwd, ref.path);
      const { localAdmission } = await import("./fetch-policy.js");
      await localAdmission(ctx, {
        signaturePolicy: flags.signaturePolicy,
        transport: ref.transport,
        path,
        ref: ref.ref,
        what: arg.image,
      });
      const o = {
        ref: ref.ref,
        index: ref.index,
        what: arg.image,
        signal: ctx.signal,
        platform: wantedPlatform(flags),
      };
      const r =
        ref.transport === "oci"
          ? await fetch.importOciLayout(store, await openLayout(fetch, path, arg.image), o)
          : await fetch.importOciArchive(store, path, o);
      return localImportSummary(r);
    }
    case "docker":
      return pullDocker(store, arg, ref, ctx, flags);
    case "docker-archive": {
      if (arg.signature !== undefined) {
        throw new RktError(
          ErrorCode.InvalidArgument,
          `${arg.image}: --signature applies to ACIs; docker archives carry no detached signature`,
        );
      }
      const { importDockerArchive } = await import("@rkt/fetch");
      const { localAdmission } = await import("./fetch-policy.js");
      const path = resolve(ctx.cwd, ref.path);
      await localAdmission(ctx, {
        signaturePolicy: flags.signaturePolicy,
        transport: "docker-archive",
        path,
        what: arg.image,
      });
      const r = await importDockerArchive(store, path, {
        ref: ref.ref,
        digest: ref.digest,
        index: ref.index,
        what: arg.image,
        signal: ctx.signal,
      });
      return localImportSummary(r);
    }
    case "http":
    case "appc-name":
      return fetchAppc(store, arg, ref, ctx, flags);
  }
}

/**
 * `docker://` through @rkt/fetch's `pullImage` under the pull policy. With a policy.json
 * (`--signature-policy`, else the config dirs; see fetch-policy.ts) the image is admitted by it
 * before any blob moves; without one rkt's refusal stands unless `--insecure-options=image`
 * (warned). Both are settled before any network or store access. `http`/`tls` map to the
 * registry client's insecure options;
 * credentials come from rkt's `auth.d` dockerAuth files, containers `auth.json` and docker's
 * `config.json`. Progress goes to stderr: a redrawn status line on a terminal, else one plain
 * line per finished blob.
 */
/** The summary of an archive or layout import: "downloaded" bytes are the ones written to the store. */
function localImportSummary(r: Fetch.LocalImportResult): FetchSummary {
  return {
    id: r.id,
    kind: r.kind,
    name: r.name,
    digests: r.digests,
    bytes: r.size,
    bytesDownloaded: r.bytesWritten,
    bytesReused: r.bytesReused,
  };
}

async function pullDocker(
  store: LocalStore,
  arg: FetchArg,
  ref: Extract<ImageRef, { transport: "docker" }>,
  ctx: CommandContext,
  flags: FetchFlags,
): Promise<FetchSummary> {
  const fetch = await import("@rkt/fetch");
  const { dockerAdmission } = await import("./fetch-policy.js");
  const verify = await dockerAdmission(fetch, ctx, flags);
  if (arg.signature !== undefined) {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `${arg.image}: --signature applies to ACIs; docker images carry no detached signature`,
    );
  }
  const g = ctx.globals;
  // A terminal gets one status line redrawn at most 10 times a second; anything else one plain
  // line per finished blob.
  const tty = (ctx.stderr as { isTTY?: boolean }).isTTY === true;
  const registriesConf = await fetch.loadRegistriesConf(
    fetch.registriesConfPaths({ env: ctx.env, localConfig: g.localConfig, systemConfig: g.systemConfig }),
  );
  const progress = new fetch.PullProgress();
  let drawn = 0;
  const pulled = fetch.pullImage(store, ref, {
    policy: flags.pullPolicy,
    parallel: flags.parallel,
    platform: wantedPlatform(flags),
    registriesConf,
    verify,
    onSourceFailed: (src, e) =>
      void ctx.stderr.write(`mirror ${src.registry} failed, trying the next source: ${e.message}\n`),
    insecure: { http: g.insecure.http, tls: g.insecure.tls },
    credentials: fetch.defaultCredentials({
      env: ctx.env,
      rktConfigDirs: [g.systemConfig, g.localConfig, ...(g.userConfig === "" ? [] : [g.userConfig])],
    }),
    signal: ctx.signal,
    onProgress: (p) => {
      if (flags.quiet === true) return;
      if (tty) {
        progress.update(p);
        const now = Date.now();
        if (now - drawn >= 100 || p.bytes === p.total) {
          drawn = now;
          ctx.stderr.write(`\r\x1b[K${progress.line(now)}`);
        }
      } else if (p.bytes === p.total) ctx.stderr.write(`Downloaded ${p.digest} (${p.total} bytes)\n`);
    },
  });
  let r: Fetch.PullResult;
  try {
    r = await pulled;
  } finally {
    if (tty && drawn > 0) ctx.stderr.write("\r\x1b[K");
  }
  return {
    id: r.id,
    kind: "oci",
    name: r.name,
    digests: r.digests,
    bytes: r.size,
    bytesDownloaded: r.bytesDownloaded,
    bytesReused: r.bytesReused,
  };
}

async function openLayout(fetch: typeof Fetch, path: string, what: string): Promise<Fetch.OciLayoutReader> {
  try {
    return await fetch.openOciLayout(path);
  } catch (e) {
    if (e instanceof RktError)
      throw new RktError(e.code, `${what}: ${e.message.replace(`${path}: `, "")}`, { cause: e });
    throw e;
  }
}

/**
 * `https://…/x.aci` and appc names (discovery) through @rkt/fetch's `fetchAppcImage` under the
 * pull policy, with the image's dependencies: the signature (downloaded beside the ACI, or
 * `--signature FILE`) is verified against the keystore before the image becomes visible
 * (`--insecure-options=image` skips it with a warning);
 * `http`/`tls` relax discovery and TLS; `auth.d` headers come from the system, local and user
 * config directories. With `--trust-keys-from-https`, a name with no trusted key first trusts the
 * keys its discovery names over https (rkt's maybeFetchPubKeys). `RKT_DISCOVERY_PORT` is appc's
 * test hook for the discovery port, as for `rkt trust`. `image: ` lines go to stderr.
 */
async function fetchAppc(
  store: LocalStore,
  arg: FetchArg,
  ref: Extract<ImageRef, { transport: "http" | "appc-name" }>,
  ctx: CommandContext,
  flags: FetchFlags,
): Promise<FetchSummary> {
  const fetch = await import("@rkt/fetch");
  const { KeyStore } = await import("@rkt/trust");
  const g = ctx.globals;
  // rkt's localAscFetcher: --signature FILE replaces the download for the image (not its deps).
  const signature =
    arg.signature === undefined || g.insecure.image
      ? undefined
      : await fetch.readSignatureFile(resolve(ctx.cwd, arg.signature));
  const log = (m: string): void => void ctx.stderr.write(`image: ${m}\n`);
  // A terminal gets one status line per ACI download, redrawn at most 10 times a second (rkt's
  // "Downloading ACI" bar); anything else no progress.
  const tty = (ctx.stderr as { isTTY?: boolean }).isTTY === true && flags.quiet !== true;
  const mib = (n: number): string => `${(n / (1 << 20)).toFixed(1)} MiB`;
  let drawn = 0;
  const keystore = g.insecure.image
    ? null
    : new KeyStore({ systemConfigDir: g.systemConfig, localConfigDir: g.localConfig });
  const { discoveryPortFromEnv } = await import("./trust.js");
  const discoveryPort = discoveryPortFromEnv(ctx.env);
  if (keystore !== null && ref.transport === "appc-name" && g.trustKeysFromHttps) {
    // rkt's maybeFetchPubKeys: failures are only reported; verification then decides.
    try {
      const opts = { env: ctx.env, port: discoveryPort, signal: ctx.signal };
      for (const k of await fetch.trustDiscoveredKeys(keystore, ref.raw, opts)) {
        log(
          `trusting ${JSON.stringify(k.location)} for prefix ${JSON.stringify(k.prefix)} (--trust-keys-from-https):`,
        );
        ctx.stderr.write(`${k.lines.join("\n")}\n`);
        log(`added key for prefix ${JSON.stringify(k.prefix)} at ${JSON.stringify(k.path)}`);
      }
    } catch (e) {
      if (e instanceof RktError && e.code === ErrorCode.Aborted) throw e;
      log(`error determining key location: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const fetched = fetch.fetchAppcImage(
    store,
    ref.transport === "http" ? { url: ref.url } : { app: ref.raw },
    {
      policy: flags.pullPolicy,
      keystore,
      signature,
      discoveryPort,
      insecure: { http: g.insecure.http, tls: g.insecure.tls },
      auth: await fetch.readAppcAuth([
        g.systemConfig,
        g.localConfig,
        ...(g.userConfig === "" ? [] : [g.userConfig]),
      ]),
      env: ctx.env,
      signal: ctx.signal,
      onInfo: flags.quiet === true ? undefined : log,
      onWarning: log,
      onProgress: tty
        ? (p) => {
            const now = Date.now();
            if (now - drawn < 100 && p.bytes !== p.total) return;
            drawn = now;
            const of = p.total === undefined ? "" : ` / ${mib(p.total)}`;
            ctx.stderr.write(`\r\x1b[KDownloading ACI: ${mib(p.bytes)}${of}`);
          }
        : undefined,
    },
  );
  let r: Fetch.AppcFetchResult;
  try {
    r = await fetched;
  } finally {
    if (drawn > 0) ctx.stderr.write("\r\x1b[K");
  }
  const { getImage } = await import("@rkt/store");
  const image = getImage(store, r.id);
  return {
    id: r.id,
    kind: "aci",
    name: r.name,
    digests: [image.manifestDigest],
    bytes: image.size,
    bytesDownloaded: r.bytesDownloaded + r.dependencies.reduce((n, d) => n + d.bytesDownloaded, 0),
  };
}

/**
 * `rkt fetch`: imports each image in order and prints its ID on stdout (or, with `--format json`,
 * one JSON array of {@link FetchSummary}). The first failure stops the command (rkt) with one line
 * naming the image; exit 254 through main's error mapper.
 */
export async function fetchCommand(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const flags = parseFetchArgs(argv);
  for (const n of flags.notices) ctx.stderr.write(`${n}\n`);
  const refs = flags.images.map((a) => ({
    arg: a,
    ref: parseImageRef(a.image, { isFile: (p) => isRegularFile(p, ctx.cwd) }),
  }));
  const { LocalStore } = await import("@rkt/store");
  const store = await LocalStore.open(ctx.globals.dir);
  try {
    const out: FetchSummary[] = [];
    for (const { arg, ref } of refs) {
      const s = await fetchOne(store, arg, ref, ctx, flags);
      if (flags.noRender !== true) await (await import("./image-render.js")).renderOnFetch(store, s.id, ctx);
      out.push(s);
      if (flags.format === "") ctx.stdout.write(`${printedId(s.id, flags.full)}\n`);
    }
    if (flags.format === "json") ctx.stdout.write(`${JSON.stringify(out)}\n`);
    return 0;
  } finally {
    store.close();
  }
}

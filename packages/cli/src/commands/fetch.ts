// `rkt fetch IMAGE...` (also `rkt image fetch`): classify each argument as rkt does, import local
// sources into the store, pull docker:// refs from their registry, print one image ID per image.
// fetch appc images by name (discovery) or http(s) URL, verified before they are stored.
import { ErrorCode, RktError, hostPlatform, type Platform } from "@rkt/oci";
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
  /** `--convert=aci`: store each fetched OCI/Docker image also as an ACI (rkt's docker2aci path) and print that. */
  readonly convert?: "aci" | undefined;
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
  let convert: "aci" | undefined;
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
      case "convert": {
        const v = takeValue();
        if (v !== "aci")
          throw usage(`invalid argument ${JSON.stringify(v)} for "--convert" flag: must be aci`);
        convert = v;
        break;
      }
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
    convert,
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

/** What one fetched image prints in `--format json` (with `--convert=aci`, the ACI and its source). */
export type FetchSummary = Fetch.FetchedImage & {
  readonly convertedFrom?: string | undefined;
  readonly cached?: boolean | undefined;
};

/** rkt's printed ID: ACI `sha512-` + 32 hex (`--full` 64); OCI the manifest digest in full. */
export function printedId(id: string, full: boolean): string {
  return id.startsWith("sha512-") && !full ? id.slice(0, 7 + 32) : id;
}

/**
 * Fetches one image through @rkt/fetch's `fetchImage` with the command line's options and rkt's
 * configuration directories; `image: ` lines, mirror failures and progress go to stderr. A
 * terminal gets one status line redrawn at most 10 times a second (registry pulls: all blobs;
 * ACI downloads: rkt's "Downloading ACI" line); anything else one plain line per finished
 * registry blob, and no ACI progress. Shared by `rkt fetch` and `rkt run`.
 */
export async function fetchForCli(
  store: LocalStore,
  arg: FetchArg,
  ctx: CommandContext,
  flags: Pick<FetchFlags, "pullPolicy" | "quiet" | "parallel" | "platform" | "signaturePolicy">,
  extra: Pick<Fetch.FetchImageOptions, "credentials" | "insecure" | "render"> = {},
): Promise<FetchSummary> {
  const fetch = await import("@rkt/fetch");
  const { discoveryPortFromEnv } = await import("./trust.js");
  const g = ctx.globals;
  const log = (m: string): void => void ctx.stderr.write(`image: ${m}\n`);
  const quiet = flags.quiet === true;
  const tty = (ctx.stderr as { isTTY?: boolean }).isTTY === true;
  const progress = new fetch.PullProgress();
  const mib = (n: number): string => `${(n / (1 << 20)).toFixed(1)} MiB`;
  let drawn = 0;
  const onProgress = (p: Fetch.FetchProgress): void => {
    const now = Date.now();
    if (p.kind === "blob") {
      if (!tty) {
        if (p.bytes === p.total) ctx.stderr.write(`Downloaded ${p.digest} (${p.total} bytes)\n`);
        return;
      }
      progress.update(p);
      if (now - drawn < 100 && p.bytes !== p.total) return;
      drawn = now;
      ctx.stderr.write(`\r\x1b[K${progress.line(now)}`);
    } else if (tty) {
      if (now - drawn < 100 && p.bytes !== p.total) return;
      drawn = now;
      const of = p.total === undefined ? "" : ` / ${mib(p.total)}`;
      ctx.stderr.write(`\r\x1b[KDownloading ACI: ${mib(p.bytes)}${of}`);
    }
  };
  try {
    return await fetch.fetchImage(store, arg.image, {
      configDirs: { system: g.systemConfig, local: g.localConfig, user: g.userConfig },
      env: ctx.env,
      cwd: ctx.cwd,
      insecure: { ...g.insecure, ...extra.insecure },
      credentials: extra.credentials,
      render: extra.render,
      pullPolicy: flags.pullPolicy,
      platform: wantedPlatform(flags),
      parallel: flags.parallel,
      signature: arg.signature,
      signaturePolicy: flags.signaturePolicy,
      trustKeysFromHttps: g.trustKeysFromHttps,
      discoveryPort: discoveryPortFromEnv(ctx.env),
      signal: ctx.signal,
      onInfo: quiet ? undefined : log,
      onWarning: log,
      onProgress: quiet ? undefined : onProgress,
      onSourceFailed: (src, e) =>
        void ctx.stderr.write(`mirror ${src.registry} failed, trying the next source: ${e.message}\n`),
      onKeyTrusted: (k) => {
        log(
          `trusting ${JSON.stringify(k.location)} for prefix ${JSON.stringify(k.prefix)} (--trust-keys-from-https):`,
        );
        ctx.stderr.write(`${k.lines.join("\n")}\n`);
        log(`added key for prefix ${JSON.stringify(k.prefix)} at ${JSON.stringify(k.path)}`);
      },
    });
  } finally {
    if (drawn > 0) ctx.stderr.write("\r\x1b[K");
  }
}

/**
 * `--convert=aci`: the fetched OCI image's squashed ACI (docker2aci's rules), converted once per
 * manifest digest: a re-fetch of an unchanged tag finds the ACI of the first conversion.
 */
async function convertFetched(
  store: LocalStore,
  s: FetchSummary,
  ctx: CommandContext,
): Promise<FetchSummary> {
  const { convertStoredImage } = await import("@rkt/docker2aci");
  const { getImage } = await import("@rkt/store");
  const c = await convertStoredImage(store, s.id, { signal: ctx.signal });
  const aci = getImage(store, c.id);
  return {
    id: c.id,
    kind: "aci",
    name: aci.name,
    digests: [aci.manifestDigest],
    bytes: aci.size,
    convertedFrom: s.id,
    cached: c.cached,
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
  // Every reference is checked before the first fetch starts.
  const { fetchImageRef } = await import("@rkt/fetch");
  for (const a of flags.images) fetchImageRef(a.image, ctx.cwd);
  const { LocalStore } = await import("@rkt/store");
  const store = await LocalStore.open(ctx.globals.dir);
  try {
    const out: FetchSummary[] = [];
    // Render on fetch happens in the fetch's own pass where it can (the image ends up as it would
    // after renderOnFetch, which then finds the tree); a converted image renders afterwards.
    const { overlaySupported } = await import("@rkt/store");
    const render = flags.noRender !== true && flags.convert === undefined && (await overlaySupported());
    for (const arg of flags.images) {
      let s = await fetchForCli(store, arg, ctx, flags, { render });
      if (flags.convert === "aci" && s.kind === "oci") s = await convertFetched(store, s, ctx);
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

// `rkt fetch IMAGE...` (also `rkt image fetch`): classify each argument as rkt does, import local
// sources into the store, pull docker:// refs from their registry, print one image ID per image.
// fetch appc images by name (discovery) or http(s) URL, verified before they are stored.
import { ErrorCode, RktError, hostPlatform, type Platform } from "@rkt/oci";
import type * as Fetch from "@rkt/fetch";
import type { LocalStore } from "@rkt/store";
import type { CommandContext } from "../context.js";
import type { ParsedArgs } from "../flags.js";
import { progressFor } from "../progress.js";
import { imagesWithSignatures } from "./image-common.js";

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
 * Reads `rkt fetch`'s parsed command line as rkt's `parseApps`: flags may sit between images, and
 * `--signature FILE` applies to the image just before it (`--signature must follow an image`,
 * `--signature specified multiple times for the same image`). `--store-only`/`--no-store` are
 * deprecated aliases of `--pull-policy=never|update` (both: `both --store-only and --no-store
 * specified`). No image: `must provide at least one image`. RKT_INVALID_ARGUMENT. Pure.
 */
export function parseFetchArgs(args: ParsedArgs): FetchFlags {
  if (args.dashAt !== undefined) throw usage("unable to parse arguments: app arguments unsupported");
  const images = imagesWithSignatures(args);
  const storeOnly = args.bool("store-only");
  const noStore = args.bool("no-store");
  if (storeOnly && noStore) throw usage("both --store-only and --no-store specified");
  // rkt tests only `update` and `never`; anything else behaves like `new`.
  const pullPolicy = args.string("pull-policy");
  let policy: PullPolicy = pullPolicy === "update" || pullPolicy === "never" ? pullPolicy : "new";
  if (storeOnly) policy = "never";
  if (noStore) policy = "update";
  const p = args.string("parallel") ?? "4";
  const parallel = Number(p);
  if (!/^\d+$/.test(p) || parallel < 1 || parallel > 64)
    throw usage(`invalid argument ${JSON.stringify(p)} for "--parallel" flag: must be 1..64`);
  const platform: { os?: string; arch?: string; variant?: string } = {};
  for (const name of ["os", "arch", "variant"] as const) {
    const v = args.string(name);
    if (v === undefined) continue;
    if (!/^[A-Za-z0-9._-]+$/.test(v))
      throw usage(`invalid argument ${JSON.stringify(v)} for "--${name}" flag: not a platform component`);
    platform[name] = v;
  }
  if (images.length === 0) throw usage("must provide at least one image");
  if (platform.variant !== undefined && platform.arch === undefined)
    throw usage("--variant needs --arch (a variant belongs to one architecture)");
  return {
    images,
    pullPolicy: policy,
    full: args.bool("full"),
    quiet: args.bool("quiet"),
    format: args.string("format") === "json" ? "json" : "",
    parallel: args.has("parallel") ? parallel : undefined,
    platform: Object.keys(platform).length > 0 ? platform : undefined,
    signaturePolicy: args.string("signature-policy"),
    notices: args.notices,
    noRender: args.bool("no-render"),
    convert: args.string("convert") === "aci" ? "aci" : undefined,
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
 * configuration directories; `image: ` lines, mirror failures and progress go to stderr. Progress
 * is the CLI's one renderer (../progress.ts): on a terminal one status line redrawn in place
 * (`Downloading 3 blobs: …` for registry pulls, `Importing …` for local sources, `Downloading
 * ACI: …`); without one, a line now and then, and for registry pulls one `Downloaded` line per
 * blob. Shared by `rkt fetch`, `rkt run` and `rkt image convert`.
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
  const quiet = flags.quiet === true;
  const remote = ["docker", "http", "appc-name"].includes(fetch.fetchImageRef(arg.image, ctx.cwd).transport);
  const registry = arg.image.startsWith("docker://") || arg.image.startsWith("docker:");
  // Without a terminal, registry pulls log each blob as it completes (as before the renderer).
  const progress = progressFor(ctx, remote ? "Downloading" : "Importing", {
    quiet,
    doneLine: registry ? (digest, total) => `Downloaded ${digest} (${total} bytes)` : undefined,
  });
  const log = (m: string): void => progress.println(`image: ${m}`);
  const onProgress = (p: Fetch.FetchProgress): void => {
    if (p.kind === "blob") progress.blob(p);
    else progress.update(p.url, p.bytes, p.total ?? p.bytes, "ACI");
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
        progress.println(`mirror ${src.registry} failed, trying the next source: ${e.message}`),
      onKeyTrusted: (k) => {
        log(
          `trusting ${JSON.stringify(k.location)} for prefix ${JSON.stringify(k.prefix)} (--trust-keys-from-https):`,
        );
        progress.println(k.lines.join("\n"));
        log(`added key for prefix ${JSON.stringify(k.prefix)} at ${JSON.stringify(k.path)}`);
      },
    });
  } finally {
    progress.end();
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
export async function fetchCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const flags = parseFetchArgs(ctx.args);
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
      if (flags.noRender !== true)
        await (await import("./image-render.js")).renderOnFetch(store, s.id, ctx, flags.quiet);
      out.push(s);
      if (flags.format === "") ctx.stdout.write(`${printedId(s.id, flags.full)}\n`);
    }
    if (flags.format === "json") ctx.stdout.write(`${JSON.stringify(out)}\n`);
    return 0;
  } finally {
    store.close();
  }
}

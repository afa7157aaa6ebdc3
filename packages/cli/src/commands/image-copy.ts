// `rkt image copy SRC DST`, `rkt image push IMAGE DST` and `rkt image save -o FILE IMAGE…`: copies
// between any source and sink of @rkt/fetch (skopeo's transport syntax, `rkt:` for the store).
import { resolve } from "node:path";
import { ErrorCode, RktError, type ImageSink } from "@rkt/oci";
import type * as Fetch from "@rkt/fetch";
import type { LocalStore } from "@rkt/store";
import type { CommandContext } from "../context.js";
import type { ParsedArgs } from "../flags.js";
import { progressFor, type Progress } from "../progress.js";
import { wantedPlatform } from "./fetch.js";
import { parseCreds, registryClients } from "./registry-clients.js";
import { positiveInt, usageError, withStore } from "./image-common.js";

/** The flags of copy, push and save (declared in the command tree). */
interface CopyValues {
  readonly all: boolean;
  readonly format: string;
  readonly quiet: boolean;
  readonly overwrite: boolean;
  readonly parallel: string | undefined;
  readonly os: string | undefined;
  readonly arch: string | undefined;
  readonly variant: string | undefined;
  readonly "override-os": string | undefined;
  readonly "override-arch": string | undefined;
  readonly "override-variant": string | undefined;
  readonly authfile: string | undefined;
  readonly creds: string | undefined;
  readonly "src-creds": string | undefined;
  readonly "dest-creds": string | undefined;
  readonly "src-tls-verify": boolean;
  readonly "dest-tls-verify": boolean;
  readonly "src-cert-dir": string | undefined;
  readonly "dest-cert-dir": string | undefined;
  readonly "chunk-size": string | undefined;
}

function copyValues(a: ParsedArgs): CopyValues {
  return {
    all: a.bool("all"),
    format: a.string("format") ?? "text",
    quiet: a.bool("quiet"),
    overwrite: a.bool("overwrite"),
    parallel: a.has("parallel") ? a.string("parallel") : undefined,
    os: a.string("os"),
    arch: a.string("arch"),
    variant: a.string("variant"),
    "override-os": a.string("override-os"),
    "override-arch": a.string("override-arch"),
    "override-variant": a.string("override-variant"),
    authfile: a.string("authfile"),
    creds: a.string("creds"),
    "src-creds": a.string("src-creds"),
    "dest-creds": a.string("dest-creds"),
    "src-tls-verify": a.bool("src-tls-verify"),
    "dest-tls-verify": a.bool("dest-tls-verify"),
    "src-cert-dir": a.string("src-cert-dir"),
    "dest-cert-dir": a.string("dest-cert-dir"),
    "chunk-size": a.string("chunk-size"),
  };
}

// Registry clients for one side of a copy: that side's credentials (`--src-creds` /
// `--dest-creds`, else `--creds`), TLS and cert dir.
function clientsFor(
  fetch: typeof Fetch,
  ctx: CommandContext,
  v: CopyValues,
  side: "src" | "dest",
  opened: Fetch.RegistryClient[],
): (registry: string) => Fetch.RegistryClient {
  const own = v[`${side}-creds`];
  const creds = parseCreds(own ?? v.creds, own === undefined ? "creds" : `${side}-creds`, usageError);
  const settings = {
    creds,
    authfile: v.authfile,
    tlsVerify: v[`${side}-tls-verify`],
    certDir: v[`${side}-cert-dir`],
  };
  return registryClients(fetch, ctx, settings, opened);
}

/** What one copy printed as JSON. */
interface CopySummary {
  source: string;
  destination: string;
  digest: string;
  mediaType: string;
  tag: string | undefined;
  /** The destination already held this manifest under this tag: nothing was sent. */
  unchanged: boolean;
  blobs: Readonly<Record<"exists" | "mounted" | "written", number>>;
  bytes: Readonly<Record<"exists" | "mounted" | "written", number>>;
}

// The copy's events: the status line of the CLI's renderer, and one line per finished blob
// (what happened to it) above it.
function copyEvents(progress: Progress): (e: Fetch.CopyEvent) => void {
  return (e) => {
    if (e.kind === "blob") progress.update(e.digest, e.bytes, e.total);
    else if (e.kind === "blob-done") {
      progress.update(e.digest, e.size, e.size);
      const verb = e.how === "exists" ? "Skipped" : e.how === "mounted" ? "Mounted" : "Copied";
      progress.info(`${verb} blob ${e.digest} (${e.size} bytes)`);
    }
  };
}

/** One sink for many images (save), and the name each image gets in it. */
interface SharedSink {
  readonly sink: ImageSink;
  tag(src: Fetch.OpenedSource): string | undefined;
}

async function runCopy(
  ctx: CommandContext,
  v: CopyValues,
  store: LocalStore | undefined,
  pairs: readonly { src: string; dst: Fetch.ImageLocation }[],
  sinkFor?: (fetch: typeof Fetch) => SharedSink,
): Promise<CopySummary[]> {
  const fetch = await import("@rkt/fetch");
  const clients: Fetch.RegistryClient[] = [];
  const wanted: { os?: string; arch?: string; variant?: string } = {};
  for (const k of ["os", "arch", "variant"] as const) {
    const value = v[k] ?? v[`override-${k}`];
    if (value !== undefined) wanted[k] = value;
  }
  const platform = wantedPlatform({ platform: wanted });
  const srcCtx: Fetch.TransportContext = { store, client: clientsFor(fetch, ctx, v, "src", clients) };
  const dstCtx: Fetch.TransportContext = { store, client: clientsFor(fetch, ctx, v, "dest", clients) };
  // One sink for all pairs when given (save: many images, one archive), committed once at the end.
  const shared = sinkFor?.(fetch);
  const out: CopySummary[] = [];
  const progress = progressFor(ctx, "Copying", { quiet: v.quiet || v.format === "json" });
  try {
    for (const [i, p] of pairs.entries()) {
      const src = await fetch.openImageSource(fetch.parseImageLocation(p.src, ctx.cwd), srcCtx);
      try {
        const opened =
          shared === undefined
            ? fetch.openImageSink(p.dst, dstCtx, src, {
                overwrite: v.overwrite,
                chunkSize: positiveInt(v["chunk-size"], "chunk-size"),
              })
            : undefined;
        const sink = shared?.sink ?? opened!.sink;
        const tag = shared === undefined ? opened!.tag : shared.tag(src);
        const last = shared === undefined || i === pairs.length - 1;
        // A shared sink commits only after its last image.
        const target: ImageSink = last
          ? sink
          : { ...sink, commit: () => Promise.resolve(), abort: (f) => sink.abort(f) };
        const r = await fetch.copyImage(src.image, target, {
          tag,
          all: v.all,
          platform,
          origin: src.origin,
          ranged: src.ranged,
          parallel: positiveInt(v.parallel, "parallel"),
          signal: ctx.signal,
          onProgress: copyEvents(progress),
        });
        out.push({
          source: p.src,
          destination: sink.what,
          digest: r.descriptor.digest,
          mediaType: r.descriptor.mediaType,
          tag,
          unchanged: r.unchanged,
          blobs: r.blobs,
          bytes: r.bytes,
        });
      } finally {
        await src.close();
      }
    }
  } finally {
    progress.end();
    await Promise.all(clients.map((c) => c.close()));
  }
  return out;
}

function print(ctx: CommandContext, v: CopyValues, out: readonly CopySummary[]): number {
  if (v.format === "json") {
    ctx.stdout.write(`${JSON.stringify(out.length === 1 ? out[0] : out)}\n`);
    return 0;
  }
  for (const s of out) ctx.stdout.write(`${s.digest}\n`);
  return 0;
}

// A stored image as a copy source: `rkt:IMAGE` (a bare name or ID means the same).
function stored(image: string): string {
  return image.startsWith("rkt:") ? image : `rkt:${image}`;
}

function checkFormat(v: CopyValues): void {
  if (v.format !== "text" && v.format !== "json")
    throw usageError(`--format wants text or json, not ${JSON.stringify(v.format)}`);
}

// The store is opened only when one side is `rkt:` or a stored image.
async function maybeWithStore<T>(
  ctx: CommandContext,
  need: boolean,
  fn: (s: LocalStore | undefined) => Promise<T>,
): Promise<T> {
  return need ? withStore(ctx, fn) : fn(undefined);
}

/**
 * `rkt image copy SRC DST`: SRC and DST in skopeo's syntax (`docker://`, `oci:`, `oci-archive:`)
 * or `rkt:[NAME[:TAG]]` / a bare stored image for the store. Blobs the destination has are not
 * sent; on the same registry they are mounted; manifests go last. Prints the digest copied.
 */
export async function imageCopyCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const values = copyValues(ctx.args);
  const { positionals } = ctx.args;
  checkFormat(values);
  if (positionals.length !== 2) throw usageError("copy takes SOURCE and DESTINATION");
  const [src = "", dst = ""] = positionals;
  const { parseImageLocation } = await import("@rkt/fetch");
  const s = parseImageLocation(src, ctx.cwd);
  const d = parseImageLocation(dst, ctx.cwd);
  const out = await maybeWithStore(ctx, s.kind === "store" || d.kind === "store", (store) =>
    runCopy(ctx, values, store, [{ src, dst: d }]),
  );
  return print(ctx, values, out);
}

/** `rkt image push IMAGE docker://HOST/REPO[:TAG]`: a stored image to a registry. */
export async function imagePushCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const values = copyValues(ctx.args);
  const { positionals } = ctx.args;
  checkFormat(values);
  if (positionals.length !== 2) throw usageError("push takes IMAGE and docker://HOST/REPOSITORY[:TAG]");
  const [image = "", dst = ""] = positionals;
  const { parseImageLocation } = await import("@rkt/fetch");
  const d = parseImageLocation(dst, ctx.cwd);
  if (d.kind !== "docker")
    throw usageError(`push writes to a registry (docker://…), not ${JSON.stringify(dst)}`);
  const out = await withStore(ctx, (store) => runCopy(ctx, values, store, [{ src: stored(image), dst: d }]));
  return print(ctx, values, out);
}

/**
 * `rkt image save -o FILE [--format oci-archive|docker-archive] IMAGE…`: stored images into one
 * archive, each under `NAME:TAG` (an oci-archive's ref name; a docker-archive's RepoTag, in
 * docker's short form). The file appears only when complete.
 */
export async function imageSaveCommand(argv: readonly string[], ctx: CommandContext): Promise<number> {
  if (ctx.args.bool("bundle")) return (await import("./image-bundle.js")).imageSaveBundleCommand(argv, ctx);
  const { positionals } = ctx.args;
  const values = {
    ...copyValues(ctx.args),
    output: ctx.args.string("output"),
    format: ctx.args.string("format") ?? "oci-archive",
  };
  if (values.output === undefined) throw usageError("save needs -o FILE");
  if (positionals.length === 0) throw usageError("save takes at least one IMAGE");
  const kind = values.format;
  if (kind !== "oci-archive" && kind !== "docker-archive") {
    throw new RktError(
      ErrorCode.UnsupportedMediaType,
      `save: format ${JSON.stringify(kind)} is not supported; use oci-archive or docker-archive`,
    );
  }
  const file = resolve(ctx.cwd, values.output);
  const v = { ...values, format: ctx.args.bool("json") ? "json" : "text" };
  const out = await withStore(ctx, (store) =>
    runCopy(
      ctx,
      v,
      store,
      positionals.map((p) => ({
        src: stored(p),
        dst: { kind, path: file, raw: `${kind}:${file}` } as const,
      })),
      (fetch) => {
        const o = { overwrite: values.overwrite, what: `${kind}:${file}` };
        if (kind === "oci-archive") {
          return {
            sink: fetch.ociArchiveSink(file, o),
            tag: (src) => (src.name === undefined ? undefined : `${src.name}:${src.tag ?? "latest"}`),
          };
        }
        return {
          sink: fetch.dockerArchiveSink(file, o),
          tag: (src) =>
            src.name === undefined ? undefined : fetch.familiarRepoTag(src.name, src.tag ?? "latest"),
        };
      },
    ),
  );
  // A list whatever the number of images (copy and push print one object).
  if (v.format === "json") ctx.stdout.write(`${JSON.stringify(out)}\n`);
  else print(ctx, v, out);
  return 0;
}

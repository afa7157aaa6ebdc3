// `rkt image sync (--config sync.yaml | --src docker://HOST/REPO[:TAG]) DEST`: mirror
// pre-warming (DEST a registry), node pre-warming (`rkt:`, what `rkt fetch` would do for each
// image, admitted by the policy) and air-gap media (`oci:DIR`, one layout for every image).
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { resolve } from "node:path";
import { ErrorCode, RktError, parseDockerReference } from "@rkt/oci";
import type * as Fetch from "@rkt/fetch";
import type * as Yaml from "yaml";
import type { LocalStore } from "@rkt/store";
import type { CommandContext } from "../context.js";
import type { ParsedArgs } from "../flags.js";
import { progressFor } from "../progress.js";
import { usageError, withStore } from "./image-common.js";
import { parseCreds, registryClients } from "./registry-clients.js";

/** The flags of sync (declared in the command tree). */
interface SyncValues {
  readonly config: string | undefined;
  readonly src: string | undefined;
  readonly all: boolean;
  readonly scoped: boolean;
  readonly "dry-run": boolean;
  readonly "remove-signatures": boolean;
  readonly "keep-going": boolean;
  readonly format: string;
  readonly parallel: string | undefined;
  readonly quiet: boolean;
  readonly authfile: string | undefined;
  readonly "src-creds": string | undefined;
  readonly "src-tls-verify": boolean;
  readonly "src-cert-dir": string | undefined;
  readonly "dest-creds": string | undefined;
  readonly "dest-tls-verify": boolean;
  readonly "dest-cert-dir": string | undefined;
  readonly os: string | undefined;
  readonly arch: string | undefined;
  readonly variant: string | undefined;
}

function syncValues(a: ParsedArgs): SyncValues {
  const s = (n: string): string | undefined => a.string(n);
  return {
    config: s("config"),
    src: s("src"),
    all: a.bool("all"),
    scoped: a.bool("scoped"),
    "dry-run": a.bool("dry-run"),
    "remove-signatures": a.bool("remove-signatures"),
    "keep-going": a.bool("keep-going"),
    format: s("format") ?? "text",
    parallel: a.has("parallel") ? s("parallel") : undefined,
    quiet: a.bool("quiet"),
    authfile: s("authfile"),
    "src-creds": s("src-creds"),
    "src-tls-verify": a.bool("src-tls-verify"),
    "src-cert-dir": s("src-cert-dir"),
    "dest-creds": s("dest-creds"),
    "dest-tls-verify": a.bool("dest-tls-verify"),
    "dest-cert-dir": s("dest-cert-dir"),
    os: s("os"),
    arch: s("arch"),
    variant: s("variant"),
  };
}

async function loadConfig(
  fetch: typeof Fetch,
  v: SyncValues,
  ctx: CommandContext,
): Promise<Fetch.SyncConfig> {
  if ((v.config === undefined) === (v.src === undefined))
    throw usageError("sync takes one of --config FILE or --src docker://HOST/REPO[:TAG]");
  if (v.src !== undefined) {
    if (!v.src.startsWith("docker://"))
      throw usageError(`--src wants docker://HOST/REPO[:TAG], not ${JSON.stringify(v.src)}`);
    const r = parseDockerReference(v.src.slice(9), v.src);
    // No tag written: every tag of the repository (a parsed reference defaults to latest).
    const last = v.src.slice(v.src.lastIndexOf("/") + 1);
    const ref = r.digest ?? (last.includes(":") ? r.tag : undefined);
    return {
      registries: [
        {
          host: r.registry,
          repositories: [{ repository: r.repository, refs: ref === undefined ? [] : [ref] }],
          tlsVerify: v["src-tls-verify"],
          credentials: parseCreds(v["src-creds"], "src-creds", usageError),
          certDir: v["src-cert-dir"],
        },
      ],
    };
  }
  const file = resolve(ctx.cwd, v.config!);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new RktError(ErrorCode.Io, `${v.config}: ${e instanceof Error ? e.message : String(e)}`);
  }
  // yaml costs ~50 ms to import: only sync loads it.
  const yaml = createRequire(import.meta.url)("yaml") as typeof Yaml;
  let doc: unknown;
  try {
    doc = yaml.parse(text, { uniqueKeys: true });
  } catch (e) {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `${v.config}: not YAML: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`,
    );
  }
  return fetch.parseSyncConfig(doc, v.config!);
}

// DEST: `docker://HOST[:PORT][/PREFIX]`, `oci:DIR`, `rkt:`.
function targetFor(
  fetch: typeof Fetch,
  dest: string,
  v: SyncValues,
  ctx: CommandContext,
  store: LocalStore | undefined,
  opened: Fetch.RegistryClient[],
  sources: ReadonlyMap<string, Fetch.SourceRegistry>,
): Fetch.SyncTarget {
  if (dest.startsWith("docker://")) {
    const rest = dest.slice(9).replace(/\/+$/, "");
    const slash = rest.indexOf("/");
    const host = slash < 0 ? rest : rest.slice(0, slash);
    const prefix = slash < 0 ? "" : rest.slice(slash + 1);
    if (host === "") throw usageError(`DEST ${JSON.stringify(dest)} names no registry`);
    const creds = parseCreds(v["dest-creds"], "dest-creds", usageError);
    const client = registryClients(
      fetch,
      ctx,
      { creds, authfile: v.authfile, tlsVerify: v["dest-tls-verify"], certDir: v["dest-cert-dir"] },
      opened,
    )(host);
    return fetch.registryTarget(client, host, prefix, v.scoped);
  }
  if (dest.startsWith("oci:")) return fetch.layoutTarget(resolve(ctx.cwd, dest.slice(4)));
  if (dest === "rkt:" && store !== undefined) {
    return {
      name: (i) => `rkt:${i.registry}/${i.repository}:${i.ref}`,
      async copy(i) {
        const { fetchForCli } = await import("./fetch.js");
        // The source entry's TLS and credentials, as for the other targets.
        const src = sources.get(i.registry);
        const relax = src?.tlsVerify === false;
        const creds = src?.credentials;
        const r = await fetchForCli(
          store,
          { image: fetch.itemName(i) },
          ctx,
          { pullPolicy: "update", quiet: true, platform: platformFlags(v) },
          {
            insecure: relax ? { http: true, tls: true } : {},
            credentials: creds === undefined ? undefined : fetch.staticCredentials({ [i.registry]: creds }),
          },
        );
        return { digest: r.id, bytes: r.bytesDownloaded ?? 0, unchanged: (r.bytesDownloaded ?? 0) === 0 };
      },
      // Into this node's own lookaside, where its later admissions and `save --bundle` look.
      putSignatures: (i, digests, read, o) =>
        fetch.storeLookasideSignatures(parseDockerReference(fetch.itemName(i).slice(9)), digests, read, {
          registriesD: o.signatures.registriesD,
          fallback: o.signatures.defaultLookaside,
        }),
    };
  }
  throw usageError(`DEST wants docker://HOST[/PREFIX], oci:DIR or rkt:, not ${JSON.stringify(dest)}`);
}

function platformFlags(v: SyncValues) {
  const p = {
    ...(v.os && { os: v.os }),
    ...(v.arch && { arch: v.arch }),
    ...(v.variant && { variant: v.variant }),
  };
  return Object.keys(p).length > 0 ? p : undefined;
}

/**
 * `rkt image sync`: every image the config (or `--src`) names, to DEST, `--parallel` images at a
 * time (default 4). Unchanged images cost one HEAD per side and send nothing. A failing image is
 * reported and the rest synced (`--keep-going=false` stops at the first); exit 254 when any
 * failed. Prints one line per image (`copied|unchanged|failed|planned SOURCE -> DEST`) or, with
 * `--format json`, the list of results.
 */
export async function imageSyncCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const v = syncValues(ctx.args);
  const { positionals } = ctx.args;
  if (positionals.length !== 1) throw usageError("sync takes one DESTINATION");
  if (v.format !== "text" && v.format !== "json")
    throw usageError(`--format wants text or json, not ${JSON.stringify(v.format)}`);
  const parallel = v.parallel === undefined ? 4 : Number(v.parallel);
  if (!Number.isSafeInteger(parallel) || parallel < 1)
    throw usageError(`--parallel wants a positive integer, not ${JSON.stringify(v.parallel)}`);
  const [dest = ""] = positionals;
  const fetch = await import("@rkt/fetch");
  const config = await loadConfig(fetch, v, ctx);
  const sources = new Map(config.registries.map((r) => [r.host, r]));
  const opened: Fetch.RegistryClient[] = [];
  const sourceClients = new Map<string, Fetch.RegistryClient>();
  const client = (src: Fetch.SourceRegistry | undefined, registry: string): Fetch.RegistryClient => {
    let c = sourceClients.get(registry);
    if (c === undefined) {
      const settings = {
        creds: src?.credentials,
        authfile: v.authfile,
        tlsVerify: src?.tlsVerify,
        certDir: src?.certDir,
      };
      c = registryClients(fetch, ctx, settings, opened)(registry);
      sourceClients.set(registry, c);
    }
    return c;
  };
  const g = ctx.globals;
  const signatures = v["remove-signatures"]
    ? undefined
    : {
        ...(await fetch.signatureStorage({
          configDirs: { system: g.systemConfig, local: g.localConfig, user: g.userConfig },
          home: ctx.env["HOME"] ?? homedir(),
        })),
        http: { insecure: { http: g.insecure.http, tls: g.insecure.tls } },
      };
  // Quiet prints only failures; JSON keeps stdout for the results (progress stays on stderr).
  const progress = progressFor(ctx, "Syncing", { quiet: v.quiet });
  const run = async (store: LocalStore | undefined): Promise<Fetch.SyncResult[]> => {
    try {
      const target = targetFor(fetch, dest, v, ctx, store, opened, sources);
      const items = await fetch.planSync(config, (s) => client(s, s.host), { signal: ctx.signal });
      return await fetch.syncImages(items, target, sources, {
        client,
        parallel,
        all: v.all,
        platform: (await import("./fetch.js")).wantedPlatform({ platform: platformFlags(v) }),
        failFast: !v["keep-going"],
        dryRun: v["dry-run"],
        signatures,
        signal: ctx.signal,
        onProgress: progress.blob,
        onResult: (r) => {
          if (v.format === "text" && !(v.quiet && r.status !== "failed"))
            progress.println(line(r), ctx.stdout);
        },
      });
    } finally {
      progress.end();
      await Promise.all(opened.map((c) => c.close()));
    }
  };
  const results = dest === "rkt:" ? await withStore(ctx, run) : await run(undefined);
  const failed = results.filter((r) => r.status === "failed");
  if (v.format === "json") ctx.stdout.write(`${JSON.stringify(results)}\n`);
  if (failed.length > 0) {
    throw new RktError(
      ErrorCode.Unavailable,
      `${failed.length} of ${results.length} images failed to sync: ${failed.map((f) => f.source).join(", ")}`,
    );
  }
  return 0;
}

function line(r: Fetch.SyncResult): string {
  const tail =
    r.status === "failed"
      ? `: ${r.error?.message ?? ""}`
      : [
          r.bytes !== undefined && r.bytes > 0 ? ` (${r.bytes} bytes)` : "",
          r.signatures !== undefined && r.signatures > 0 ? ` (${r.signatures} signatures)` : "",
        ].join("");
  return `${r.status} ${r.source} -> ${r.destination}${tail}`;
}

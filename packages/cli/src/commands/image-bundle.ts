// Signed bundles for air gaps: `rkt image save --bundle -o FILE IMAGE… [--signature F]`,
// `rkt image load FILE` (bundles, OCI archives and docker archives, admitted by this machine's
// trust) and `rkt image bundle inspect FILE`. The work is @rkt/fetch's (bundle/); this parses,
// reviews keys on a terminal as `rkt trust` does, and prints.
import { homedir } from "node:os";
import { resolve } from "node:path";
import { ErrorCode, RktError } from "@rkt/oci";
import type * as Fetch from "@rkt/fetch";
import type { CommandContext } from "../context.js";
import type { ParsedArgs } from "../flags.js";
import { outputOf } from "../output.js";
import { wantedPlatform } from "./fetch.js";
import { imagesWithSignatures, positiveInt, usageError, withStore } from "./image-common.js";
import { parseCreds, registryClients } from "./registry-clients.js";

function admission(ctx: CommandContext, signaturePolicy: string | undefined): Fetch.AdmissionOptions {
  const g = ctx.globals;
  return {
    configDirs: { system: g.systemConfig, local: g.localConfig, user: g.userConfig },
    home: ctx.env["HOME"] ?? homedir(),
    signaturePolicy: signaturePolicy === undefined ? undefined : resolve(ctx.cwd, signaturePolicy),
  };
}

function platformOf(a: ParsedArgs) {
  const os = a.string("os");
  const arch = a.string("arch");
  const variant = a.string("variant");
  return wantedPlatform({
    platform: {
      ...(os !== undefined && { os }),
      ...(arch !== undefined && { arch }),
      ...(variant !== undefined && { variant }),
    },
  });
}

/**
 * `rkt image save --bundle -o FILE IMAGE [--signature FILE] …`: each IMAGE (a stored image, any
 * transport `rkt image copy` reads, or an ACI file) with the signatures found for it and the
 * keys that made them, into one OCI archive. `--signature FILE` after an ACI names its `.asc`.
 * Prints the bundle's description (`--json`: as JSON); warnings on stderr.
 */
export async function imageSaveBundleCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const a = ctx.args;
  // `--signature` belongs to the IMAGE just before it, as in `rkt fetch`.
  const specs = imagesWithSignatures(a);
  const output = a.string("output");
  if (output === undefined) throw usageError("save needs -o FILE");
  if (specs.length === 0) throw usageError("save takes at least one IMAGE");
  if (a.has("format") && a.string("format") !== "oci-archive")
    throw usageError("a bundle is an oci-archive: --format does not apply to --bundle");
  const json = a.bool("json");
  const quiet = a.bool("quiet");
  const fetch = await import("@rkt/fetch");
  const { rktVersion } = await import("../main.js");
  const file = resolve(ctx.cwd, output);
  const warn = (m: string): void => void ctx.stderr.write(`bundle: warning: ${m}\n`);
  const r = await withStore(ctx, async (store) => {
    const opened: Fetch.RegistryClient[] = [];
    try {
      const client = registryClients(
        fetch,
        ctx,
        {
          creds: parseCreds(a.string("src-creds"), "src-creds", usageError),
          authfile: a.string("authfile"),
          tlsVerify: a.bool("src-tls-verify"),
          certDir: a.string("src-cert-dir"),
        },
        opened,
      );
      return await fetch.saveBundle(file, specs, {
        transport: { store, client },
        trust: await fetch.machineTrust(admission(ctx, a.string("signature-policy"))),
        lookaside: a.string("lookaside"),
        all: a.bool("all"),
        platform: platformOf(a),
        parallel: positiveInt(a.string("parallel"), "parallel"),
        overwrite: a.bool("overwrite"),
        cwd: ctx.cwd,
        creator: `rkt ${rktVersion()}`,
        signal: ctx.signal,
        onWarning: warn,
      });
    } finally {
      await Promise.all(opened.map((c) => c.close()));
    }
  });
  if (json) ctx.stdout.write(`${JSON.stringify(r.description)}\n`);
  else if (!quiet) await printText(ctx, r.description, file);
  return 0;
}

async function printText(ctx: CommandContext, d: Fetch.BundleDescription, file: string): Promise<void> {
  const { bundleText } = await import("@rkt/fetch");
  const { formatFingerprint } = await import("@rkt/trust");
  ctx.stdout.write(bundleText(d, file, formatFingerprint));
}

/** `rkt image bundle inspect [--format text|json] FILE`: what a bundle holds, as its description says. */
export async function imageBundleInspectCommand(
  _argv: readonly string[],
  ctx: CommandContext,
): Promise<number> {
  const { positionals } = ctx.args;
  if (positionals.length !== 1) throw usageError("inspect takes one bundle FILE");
  const o = outputOf(ctx);
  const { inspectBundle } = await import("@rkt/fetch");
  const file = resolve(ctx.cwd, positionals[0]!);
  const d = await inspectBundle(file);
  if (o.json) o.writeJson(d);
  else await printText(ctx, d, positionals[0]!);
  return 0;
}

// `--trust-bundle-keys`: each key the bundle carries, for each name it signed, reviewed as
// `rkt trust` reviews a key, then stored in the local keystore.
async function trustBundleKeys(
  ctx: CommandContext,
  archive: Fetch.LoadableArchive,
  skipReview: boolean,
): Promise<void> {
  const { lineReader, reviewKey } = await import("./trust.js");
  const { KeyStore, parseArmoredKeyring } = await import("@rkt/trust");
  const keystore = new KeyStore({
    systemConfigDir: ctx.globals.systemConfig,
    localConfigDir: ctx.globals.localConfig,
  });
  const review = skipReview ? undefined : lineReader(ctx.stdin);
  try {
    for (const k of await archive.keys({ signal: ctx.signal })) {
      if (k.problem !== undefined) {
        ctx.stderr.write(`pubkey: not trusting ${JSON.stringify(k.location)}: ${k.problem}\n`);
        continue;
      }
      const parsed = await parseArmoredKeyring(k.armored, k.location);
      for (const prefix of k.prefixes) {
        if (!(await reviewKey(ctx, { prefix, location: k.location, keys: parsed.keys }, review))) continue;
        try {
          const path = await keystore.addKey(k.armored, { prefix }, k.location);
          ctx.stdout.write(`Added key for prefix ${JSON.stringify(prefix)} at ${JSON.stringify(path)}\n`);
        } catch (e) {
          if (!(e instanceof RktError) || e.code !== ErrorCode.InvalidName) throw e;
          ctx.stderr.write(
            `pubkey: not trusting ${JSON.stringify(k.location)} for ${JSON.stringify(prefix)}: ${e.message}\n`,
          );
        }
      }
    }
  } finally {
    review?.close();
  }
}

function line(r: Fetch.LoadResult): string {
  if (r.status === "refused") return `refused ${r.image}: ${r.error?.message ?? ""}`;
  return `${r.status} ${r.image} ${r.id ?? ""}`.trimEnd();
}

/**
 * `rkt image load [--trust-bundle-keys [--skip-fingerprint-review]] FILE`: every image of a
 * bundle, OCI archive or docker archive into the store, each admitted by this machine's trust
 * first. One line per image (`loaded|present|refused …`) or, with `--format json`, the results.
 * Exit 254 when any image was refused, naming them.
 */
export async function imageLoadCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const a = ctx.args;
  const { positionals } = a;
  if (positionals.length !== 1) throw usageError("load takes one FILE");
  const o = outputOf(ctx);
  const trustKeys = a.bool("trust-bundle-keys");
  if (a.bool("skip-fingerprint-review") && !trustKeys)
    throw usageError("--skip-fingerprint-review applies to --trust-bundle-keys");
  const fetch = await import("@rkt/fetch");
  const file = resolve(ctx.cwd, positionals[0]!);
  const log = (m: string): void => void ctx.stderr.write(`image: ${m}\n`);
  const results = await withStore(ctx, async (store) => {
    const archive = await fetch.openLoadableArchive(store, file);
    try {
      if (trustKeys) {
        if (archive.kind !== "bundle")
          throw usageError(
            `${positionals[0]}: --trust-bundle-keys needs a bundle, not a plain ${archive.kind}`,
          );
        await trustBundleKeys(ctx, archive, a.bool("skip-fingerprint-review"));
      }
      const insecure = ctx.globals.insecure.image;
      return await archive.load({
        trust: insecure ? null : await fetch.machineTrust(admission(ctx, a.string("signature-policy"))),
        platform: platformOf(a),
        parallel: positiveInt(a.string("parallel"), "parallel"),
        signal: ctx.signal,
        onInfo: o.quiet || o.json ? undefined : log,
        onWarning: log,
        onResult: (r) => {
          if (!o.json && !(o.quiet && r.status !== "refused")) ctx.stdout.write(`${line(r)}\n`);
        },
      });
    } finally {
      await archive.close();
    }
  });
  if (o.json) o.writeJson(results);
  const refused = results.filter((r) => r.status === "refused");
  if (refused.length > 0) {
    throw new RktError(
      (refused[0]?.error?.code as ErrorCode | undefined) ?? ErrorCode.SignatureInvalid,
      `${refused.length} of ${results.length} images refused: ${refused.map((r) => r.image).join(", ")}`,
    );
  }
  return 0;
}

// `rkt image sign` (beyond rkt and its peers' CLIs for stored images): signs an image of the local
// store so that operators can sign what they mirror. OCI images get a containers "simple signing"
// signature in a lookaside directory (`<dir>/<repo>@sha256=<hex>/signature-N`, what skopeo and
// podman read); ACIs a detached armored OpenPGP signature of the exported archive (`.aci.asc`).
import { open, readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { isAbsolute, resolve } from "node:path";
import { Readable } from "node:stream";
import { ErrorCode, RktError, isRktError, parseDockerReference } from "@rkt/oci";
import type { PrivateKey } from "openpgp";
import type { CommandContext } from "../context.js";
import { outputOf } from "../output.js";

/**
 * `rkt image sign IMAGE --key FILE [--passphrase-file F] [--lookaside DIR] [--reference REF]
 * [--output FILE]`. FILE is an ASCII-armored private key (`gpg --armor --export-secret-keys`).
 * OCI images: signs `{docker-reference: REF, manifest digest}` (REF defaults to the name and tag
 * the image was stored under), writes it at the first free `signature-N` under the lookaside DIR
 * (default: containers' built-in `/var/lib/containers/sigstore`, or `~/.local/share/…` when not
 * root) and prints the path. ACIs: streams the stored archive (the bytes `rkt image export`
 * writes) through a detached signature written to `--output` (never overwritten) and prints the
 * path. Exit 254 on error: no such image, a bad key or passphrase, a missing `--output` for an
 * ACI, a missing reference for an OCI image.
 */
export async function imageSignCommand(_argv: readonly string[], ctx: CommandContext): Promise<number> {
  const a = ctx.args;
  const { positionals } = a;
  const values = {
    key: a.string("key"),
    "passphrase-file": a.string("passphrase-file"),
    lookaside: a.string("lookaside"),
    reference: a.string("reference"),
    output: a.string("output"),
  };
  if (positionals.length !== 1) {
    throw new RktError(ErrorCode.InvalidArgument, "must provide exactly one image (ID or name)");
  }
  if (values.key === undefined) throw new RktError(ErrorCode.InvalidArgument, "--key FILE is required");
  const at = (p: string): string => (isAbsolute(p) ? p : resolve(ctx.cwd, p));
  const privateKeyArmored = await readText(at(values.key), "key file");
  const passphrase =
    values["passphrase-file"] === undefined
      ? undefined
      : (await readText(at(values["passphrase-file"]), "passphrase file")).replace(/\r?\n$/, "");
  const { LocalStore, getImage, resolveImage } = await import("@rkt/store");
  const store = await LocalStore.open(ctx.globals.dir);
  try {
    const image = getImage(store, resolveImage(store, positionals[0]!));
    if (image.kind === "aci") {
      if (values.output === undefined) {
        throw new RktError(
          ErrorCode.InvalidArgument,
          "--output FILE is required to sign an ACI (e.g. IMAGE.aci.asc)",
        );
      }
      const out = at(values.output);
      const { parseDigest } = await import("@rkt/oci");
      const content = await store.open(parseDigest(image.manifestDigest), { signal: ctx.signal });
      await writeDetachedSignature(content, privateKeyArmored, passphrase, out);
      printSigned(ctx, { id: image.id, kind: "aci", path: out, reference: null });
      return 0;
    }
    const version = image.labels["version"];
    const reference =
      values.reference ??
      (image.name === "" ? undefined : version === undefined ? image.name : `${image.name}:${version}`);
    if (reference === undefined) {
      throw new RktError(
        ErrorCode.InvalidArgument,
        `image ${image.id} was stored without a repository name; give --reference REGISTRY/REPO[:TAG]`,
      );
    }
    const ref = parseDockerReference(reference);
    const trust = await import("@rkt/trust");
    const signature = await trust.createSimpleSignature({
      dockerReference: reference,
      manifestDigest: image.manifestDigest,
      privateKeyArmored,
      passphrase,
    });
    const base =
      values.lookaside === undefined
        ? trust.builtinLookaside({ uid: process.getuid?.() ?? 0, home: ctx.env["HOME"] ?? homedir() })
        : values.lookaside.startsWith("file://")
          ? values.lookaside
          : `file://${at(values.lookaside)}`;
    const path = await trust.writeLookasideSignature(base, ref.repository, image.manifestDigest, signature);
    printSigned(ctx, { id: image.id, kind: "oci", path, reference });
    return 0;
  } finally {
    store.close();
  }
}

// The signature's path on stdout, or `{id,kind,path,reference}` with --format json.
function printSigned(
  ctx: CommandContext,
  s: { id: string; kind: "aci" | "oci"; path: string; reference: string | null },
): void {
  const o = outputOf(ctx);
  if (o.json) o.writeJson(s);
  else ctx.stdout.write(`${s.path}\n`);
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    throw new RktError(
      ErrorCode.Io,
      `cannot read ${what} ${path}: ${e instanceof Error ? e.message : String(e)}`,
      {
        cause: e,
      },
    );
  }
}

// A detached, armored signature over a stream (memory stays flat whatever the image size),
// written to a new file only once complete.
async function writeDetachedSignature(
  content: Readable,
  privateKeyArmored: string,
  passphrase: string | undefined,
  out: string,
): Promise<void> {
  const openpgp = await import("openpgp");
  let signingKey: PrivateKey;
  try {
    const key = await openpgp.readPrivateKey({ armoredKey: privateKeyArmored });
    signingKey = key.isDecrypted()
      ? key
      : await openpgp.decryptKey({ privateKey: key, passphrase: passphrase ?? "" });
  } catch (e) {
    content.destroy();
    throw new RktError(
      ErrorCode.InvalidArgument,
      `cannot use the signing key: ${e instanceof Error ? e.message : String(e)}`,
      {
        cause: e,
      },
    );
  }
  let armored: string;
  try {
    const message = await openpgp.createMessage({
      binary: Readable.toWeb(content) as ReadableStream<Uint8Array>,
    });
    const sig: unknown = await openpgp.sign({
      message,
      signingKeys: signingKey,
      detached: true,
      format: "armored",
    });
    armored = await readAll(sig as ReadableStream<string> | string);
  } catch (e) {
    content.destroy();
    if (isRktError(e)) throw e;
    throw new RktError(ErrorCode.Io, `signing failed: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e,
    });
  }
  let fh;
  try {
    fh = await open(out, "wx", 0o644);
  } catch (e) {
    const exists = (e as NodeJS.ErrnoException).code === "EEXIST";
    throw new RktError(
      exists ? ErrorCode.AlreadyExists : ErrorCode.Io,
      exists
        ? `output file ${out} exists`
        : `cannot create ${out}: ${e instanceof Error ? e.message : String(e)}`,
      { cause: e },
    );
  }
  try {
    await fh.writeFile(armored);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function readAll(s: ReadableStream<string> | string): Promise<string> {
  if (typeof s === "string") return s;
  let out = "";
  for await (const chunk of s as unknown as AsyncIterable<string>) out += chunk;
  return out;
}

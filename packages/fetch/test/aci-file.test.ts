// importAciFile with real GnuPG signatures, a real keystore on disk and a real store: verified
// imports, and every refusal leaves the store as it was (fsck clean, nothing listed).
import { execFileSync, spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { gunzipSync } from "node:zlib";
import { ascPathFromImgPath, importAciFile, verificationDisabledWarning } from "../src/aci-file.js";
import { ErrorCode, RktError } from "@rkt/oci";
import { LocalStore, fsck, listImages } from "@rkt/store";
import { KeyStore } from "@rkt/trust";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repo = resolve(import.meta.dirname, "..", "..", "..");
const helloAci = join(repo, "examples", "hello.aci");

let tmp: string;
let gnupg: string;
const gpg = (args: string[], input?: Buffer): Buffer =>
  execFileSync(
    "gpg",
    ["--batch", "--homedir", gnupg, "--pinentry-mode", "loopback", "--passphrase", "", ...args],
    {
      input,
      stdio: ["pipe", "pipe", "pipe"],
    },
  );

function sign(uid: string, file: string, out: string, armor = true): void {
  gpg(["--local-user", uid, "--detach-sign", ...(armor ? ["--armor"] : []), "--output", out, file]);
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-aci-file-"));
  gnupg = join(tmp, "gnupg");
  execFileSync("mkdir", ["-m", "700", gnupg]);
  gpg(["--quick-gen-key", "Hello Signer <hello@example.com>", "ed25519", "sign", "0"]);
  gpg(["--quick-gen-key", "Other Signer <other@example.com>", "ed25519", "sign", "0"]);
});
afterAll(() => {
  try {
    execFileSync("gpgconf", ["--homedir", gnupg, "--kill", "gpg-agent"], { stdio: "ignore" });
  } catch {
    // no agent started
  }
  rmSync(tmp, { recursive: true, force: true });
});

interface Case {
  dir: string;
  store: LocalStore;
  keystore: KeyStore;
  aci: string;
  info: string[];
  warnings: string[];
}

async function setup(trust: { uid: string; prefix: string } | undefined, aciBytes?: Buffer): Promise<Case> {
  const dir = mkdtempSync(join(tmp, "case-"));
  const keystore = new KeyStore({ systemConfigDir: join(dir, "sys"), localConfigDir: join(dir, "local") });
  if (trust !== undefined) {
    await keystore.addKey(gpg(["--armor", "--export", trust.uid]), { prefix: trust.prefix });
  }
  const aci = join(dir, "hello.aci");
  if (aciBytes === undefined) copyFileSync(helloAci, aci);
  else writeFileSync(aci, aciBytes);
  const store = await LocalStore.open(join(dir, "store"));
  return { dir, store, keystore, aci, info: [], warnings: [] };
}

async function run(c: Case, o: { signaturePath?: string; insecure?: boolean } = {}) {
  return importAciFile(c.store, {
    path: c.aci,
    signaturePath: o.signaturePath,
    keystore: o.insecure === true ? null : c.keystore,
    onInfo: (m) => c.info.push(m),
    onWarning: (m) => c.warnings.push(m),
  });
}

async function expectNothingStored(c: Case): Promise<void> {
  expect(listImages(c.store)).toEqual([]);
  const report = await fsck(c.store);
  expect(report.problems).toEqual([]);
  expect(report.blobsChecked).toBe(0);
}

async function refused(c: Case, o: Parameters<typeof run>[1] = {}): Promise<RktError> {
  const e = await run(c, o).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(RktError);
  return e as RktError;
}

describe("importAciFile", () => {
  it("ascPathFromImgPath is rkt's", () => {
    expect(ascPathFromImgPath("/x/image.aci")).toBe("/x/image.aci.asc");
    expect(ascPathFromImgPath("/x/image")).toBe("/x/image.aci.asc");
  });

  it("imports a gzip ACI signed beside it by a key trusted for its manifest name", async () => {
    const c = await setup({ uid: "hello@example.com", prefix: "example.com/hello" });
    sign("hello@example.com", c.aci, `${c.aci}.asc`);
    const r = await run(c);
    expect(r.name).toBe("example.com/hello");
    expect(r.id).toMatch(/^sha512-[0-9a-f]{64}$/);
    expect(r.verdict?.identities).toEqual(["Hello Signer <hello@example.com>"]);
    expect(c.info).toEqual(["signature verified:\n  Hello Signer <hello@example.com>"]);
    expect(listImages(c.store).map((i) => i.id)).toEqual([r.id]);
    expect((await fsck(c.store)).problems).toEqual([]);
    c.store.close();
  });

  it("verifies an uncompressed ACI over the ingested bytes; binary signatures and --signature work", async () => {
    const c = await setup(
      { uid: "hello@example.com", prefix: "example.com" },
      gunzipSync(readFileSync(helloAci)),
    );
    const sig = join(c.dir, "elsewhere.sig");
    sign("hello@example.com", c.aci, sig, false);
    const r = await run(c, { signaturePath: sig });
    expect(r.verdict?.prefix).toBe("example.com");
    expect(listImages(c.store)).toHaveLength(1);
    c.store.close();
  });

  it("refuses an unsigned ACI: error opening signature file", async () => {
    const c = await setup({ uid: "hello@example.com", prefix: "example.com/hello" });
    const e = await refused(c);
    expect(e.code).toBe(ErrorCode.Io);
    expect(e.message).toBe(`error opening signature file: ${c.aci}.asc: no such file or directory`);
    await expectNothingStored(c);
    c.store.close();
  });

  it("refuses a signer trusted only for another prefix, with rkt's hint", async () => {
    const c = await setup({ uid: "hello@example.com", prefix: "example.com/other" });
    sign("hello@example.com", c.aci, `${c.aci}.asc`);
    const e = await refused(c);
    expect(e.code).toBe(ErrorCode.KeyUntrusted);
    expect(e.message).toBe(
      'image "example.com/hello" verification failed: openpgp: signature made by unknown entity',
    );
    expect(c.info).toEqual([
      "If you expected the signing key to change, try running:",
      '    rkt trust --prefix "example.com/hello"',
    ]);
    await expectNothingStored(c);
    c.store.close();
  });

  it("refuses a signature by an untrusted key even when another key is trusted", async () => {
    const c = await setup({ uid: "hello@example.com", prefix: "example.com/hello" });
    sign("other@example.com", c.aci, `${c.aci}.asc`);
    expect((await refused(c)).code).toBe(ErrorCode.KeyUntrusted);
    await expectNothingStored(c);
    c.store.close();
  });

  it("refuses a tampered image", async () => {
    const c = await setup({ uid: "hello@example.com", prefix: "example.com/hello" });
    sign("hello@example.com", c.aci, `${c.aci}.asc`);
    // Same content, recompressed: a valid ACI whose bytes are not the signed ones.
    writeFileSync(c.aci, execFileSync("gzip", ["-1", "-c"], { input: gunzipSync(readFileSync(helloAci)) }));
    const e = await refused(c);
    expect(e.code).toBe(ErrorCode.SignatureInvalid);
    expect(e.message).toBe(
      'image "example.com/hello" verification failed: openpgp: invalid signature: signed digest did not match',
    );
    await expectNothingStored(c);
    c.store.close();
  });

  it("refuses an empty signature file", async () => {
    const c = await setup({ uid: "hello@example.com", prefix: "example.com/hello" });
    writeFileSync(`${c.aci}.asc`, "");
    const e = await refused(c);
    expect(e.code).toBe(ErrorCode.SignatureInvalid);
    expect(e.message).toBe(
      'image "example.com/hello" verification failed: keystore: no valid signatures found in signature file',
    );
    await expectNothingStored(c);
    c.store.close();
  });

  it("refuses when the keystore holds a garbage key file", async () => {
    const c = await setup(undefined);
    sign("hello@example.com", c.aci, `${c.aci}.asc`);
    const fp = gpg(["--with-colons", "--list-keys", "hello@example.com"])
      .toString()
      .split("\n")
      .find((l) => l.startsWith("fpr:"))!
      .split(":")[9]!
      .toLowerCase();
    const dir = join(c.dir, "local", "trustedkeys", "prefix.d", "example.com", "hello");
    execFileSync("mkdir", ["-p", dir]);
    writeFileSync(join(dir, fp), "garbage\n");
    const e = await refused(c);
    expect(e.code).toBe(ErrorCode.InvalidArgument);
    expect(e.message).toContain("error reading key: ");
    await expectNothingStored(c);
    c.store.close();
  });

  it("verifies the bytes it imported: a file whose content changes between the reads is refused", async () => {
    const c = await setup({ uid: "hello@example.com", prefix: "example.com/hello" });
    const signed = join(c.dir, "signed.aci");
    copyFileSync(helloAci, signed);
    sign("hello@example.com", signed, `${c.aci}.asc`);
    const other = join(c.dir, "other.aci");
    writeFileSync(other, execFileSync("gzip", ["-1", "-c"], { input: gunzipSync(readFileSync(helloAci)) }));
    // A FIFO serves unsigned bytes to the import, then the signed bytes to the verification (the
    // pause lets the import see the end of the first writer's bytes).
    rmSync(c.aci);
    execFileSync("mkfifo", [c.aci]);
    const writer = spawn(
      "sh",
      ["-c", 'cat "$1" > "$3"; sleep 1; cat "$2" > "$3"', "sh", other, signed, c.aci],
      {
        stdio: "ignore",
      },
    );
    const e = await refused(c);
    writer.kill();
    expect(e.code).toBe(ErrorCode.Io);
    expect(e.message).toBe(`${c.aci} changed while it was being imported`);
    await expectNothingStored(c);
    c.store.close();
  });

  it("--insecure-options=image imports without a signature and warns", async () => {
    const c = await setup(undefined);
    const r = await run(c, { insecure: true });
    expect(r.verdict).toBeUndefined();
    expect(c.warnings).toEqual([verificationDisabledWarning]);
    expect(verificationDisabledWarning).toBe("warning: image signature verification has been disabled");
    expect(listImages(c.store)).toHaveLength(1);
    c.store.close();
  });

  it("a missing image file: error opening ACI file", async () => {
    const c = await setup(undefined);
    rmSync(c.aci);
    const e = await refused(c, { insecure: true });
    expect(e.message).toBe(`error opening ACI file: ${c.aci}: no such file or directory`);
    await expectNothingStored(c);
    c.store.close();
  });
});

// End to end with the built `rkt`: `rkt trust` then `rkt fetch` of signed ACIs, with temporary
// --dir/--local-config/--system-config. Every refusal exits 254 with its exact reason and leaves
// the store empty and clean.
import { execFileSync, spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repo = resolve(import.meta.dirname, "..", "..", "..");
const bin = join(repo, "packages", "cli", "bin", "rkt.js");
const built = existsSync(join(repo, "packages", "cli", "dist", "commands", "trust.js"));
const helloAci = join(repo, "examples", "hello.aci");
const helloId = "sha512-651f49e2c7eab92b77ab7c19e1f2780a";

let tmp: string;
let gnupg: string;
const gpg = (args: string[]): Buffer =>
  execFileSync(
    "gpg",
    ["--batch", "--homedir", gnupg, "--pinentry-mode", "loopback", "--passphrase", "", ...args],
    { stdio: ["pipe", "pipe", "pipe"] },
  );

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-trust-fetch-"));
  gnupg = join(tmp, "gnupg");
  mkdirSync(gnupg, { mode: 0o700 });
  gpg(["--quick-gen-key", "Hello Publisher <pub@example.com>", "rsa2048", "sign", "0"]);
  gpg(["--quick-gen-key", "Someone Else <else@example.com>", "ed25519", "sign", "0"]);
  writeFileSync(join(tmp, "pub.asc"), gpg(["--armor", "--export", "pub@example.com"]));
  writeFileSync(join(tmp, "else.asc"), gpg(["--armor", "--export", "else@example.com"]));
  // Keys made on 2020-01-01 for the expiry and revocation cases (issue item 5).
  for (const who of ["old", "rev"]) {
    gpg([
      "--faked-system-time",
      "20200101T000000",
      "--quick-gen-key",
      `${who} <${who}@example.com>`,
      "ed25519",
      "sign",
      "0",
    ]);
    writeFileSync(join(tmp, `${who}.asc`), gpg(["--armor", "--export", `${who}@example.com`]));
  }
});

const fingerprintOf = (email: string): string =>
  gpg(["--with-colons", "--list-keys", email])
    .toString()
    .split("\n")
    .find((l) => l.startsWith("fpr:"))!
    .split(":")[9]!
    .toLowerCase();
afterAll(() => {
  try {
    execFileSync("gpgconf", ["--homedir", gnupg, "--kill", "gpg-agent"], { stdio: "ignore" });
  } catch {
    // no agent started
  }
  rmSync(tmp, { recursive: true, force: true });
});

let n = 0;
function env(): (args: string[]) => { code: number | null; stdout: string; stderr: string } {
  const d = join(tmp, `env-${n++}`);
  const globals = [
    `--dir=${join(d, "data")}`,
    `--local-config=${join(d, "etc")}`,
    `--system-config=${join(d, "lib")}`,
  ];
  return (args) => {
    const r = spawnSync(process.execPath, [bin, ...globals, ...args], { cwd: repo, encoding: "utf8" });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
}

function copyAci(name: string, bytes?: Buffer): string {
  const p = join(tmp, name);
  if (bytes === undefined) copyFileSync(helloAci, p);
  else writeFileSync(p, bytes);
  return p;
}

function sign(uid: string, file: string, armor = true): void {
  gpg(["--local-user", uid, "--detach-sign", ...(armor ? ["--armor"] : []), "--output", `${file}.asc`, file]);
}

function expectEmptyStore(rkt: ReturnType<typeof env>): void {
  expect(rkt(["image", "list", "--format", "json"]).stdout).toBe("null\n");
  expect(rkt(["image", "fsck"]).code).toBe(0);
}

describe.skipIf(!built)("rkt trust + rkt fetch (built binary)", () => {
  it("the committed example: trust the demo key for example.com/hello, fetch the signed ACI", () => {
    const rkt = env();
    const t = rkt([
      "trust",
      "--prefix",
      "example.com/hello",
      "--skip-fingerprint-review",
      "examples/keys/demo.pub.asc",
    ]);
    expect(t.code).toBe(0);
    expect(t.stdout).toContain(
      "gpg key fingerprint is: 6C9D FB8E 13A3 D85B C020  5340 BACE 6AAA 2EDA 1D65\n",
    );
    const f = rkt(["fetch", "examples/hello.aci"]);
    expect(f).toEqual({
      code: 0,
      stdout: `${helloId}\n`,
      stderr:
        "image: signature verified:\n  rkt demo signer (throwaway; private key discarded) <demo@example.com>\n",
    });
    expect(rkt(["image", "list", "--format", "json"]).stdout).toContain('"name":"example.com/hello');
  });

  it("a GnuPG RSA key and a signature made in the test verify; binary signature via --signature", () => {
    const rkt = env();
    expect(
      rkt(["trust", "--prefix", "example.com", "--skip-fingerprint-review", join(tmp, "pub.asc")]).code,
    ).toBe(0);
    const aci = copyAci("signed.aci");
    sign("pub@example.com", aci);
    const f = rkt(["fetch", "--full", aci]);
    expect(f.stderr).toBe("image: signature verified:\n  Hello Publisher <pub@example.com>\n");
    expect(f.stdout).toMatch(/^sha512-651f49e2c7eab92b77ab7c19e1f2780a[0-9a-f]{32}\n$/);
    const plain = copyAci("plain.aci", gunzipSync(readFileSync(helloAci)));
    gpg(["--local-user", "pub@example.com", "--detach-sign", "--output", join(tmp, "plain.sig"), plain]);
    const g = rkt(["fetch", plain, "--signature", join(tmp, "plain.sig")]);
    expect(g).toMatchObject({ code: 0, stdout: `${helloId}\n` });
  });

  const refusals: [string, (rkt: ReturnType<typeof env>) => string, string][] = [
    [
      "unsigned",
      (rkt) => {
        rkt(["trust", "--prefix", "example.com/hello", "--skip-fingerprint-review", join(tmp, "pub.asc")]);
        return copyAci("unsigned.aci");
      },
      `fetch: error opening signature file: ${join("TMP", "unsigned.aci.asc")}: no such file or directory\n`,
    ],
    [
      "tampered",
      (rkt) => {
        rkt(["trust", "--prefix", "example.com/hello", "--skip-fingerprint-review", join(tmp, "pub.asc")]);
        const aci = copyAci("tampered.aci");
        sign("pub@example.com", aci);
        writeFileSync(aci, gzipSync(gunzipSync(readFileSync(helloAci)), { level: 1 }));
        return aci;
      },
      'fetch: image "example.com/hello" verification failed: openpgp: invalid signature: signed digest did not match\n',
    ],
    [
      "signed by a key trusted for another prefix",
      (rkt) => {
        rkt(["trust", "--prefix", "example.com/hello2", "--skip-fingerprint-review", join(tmp, "pub.asc")]);
        rkt(["trust", "--prefix", "example.com/hello", "--skip-fingerprint-review", join(tmp, "else.asc")]);
        const aci = copyAci("otherprefix.aci");
        sign("pub@example.com", aci);
        return aci;
      },
      "image: If you expected the signing key to change, try running:\n" +
        'image:     rkt trust --prefix "example.com/hello"\n' +
        'fetch: image "example.com/hello" verification failed: openpgp: signature made by unknown entity\n',
    ],
    [
      "an empty signature",
      (rkt) => {
        rkt(["trust", "--prefix", "example.com/hello", "--skip-fingerprint-review", join(tmp, "pub.asc")]);
        const aci = copyAci("emptysig.aci");
        writeFileSync(`${aci}.asc`, "");
        return aci;
      },
      'fetch: image "example.com/hello" verification failed: keystore: no valid signatures found in signature file\n',
    ],
    [
      "a signature file with two signatures",
      (rkt) => {
        rkt(["trust", "--prefix", "example.com/hello", "--skip-fingerprint-review", join(tmp, "pub.asc")]);
        const aci = copyAci("twosigs.aci");
        gpg([
          "--local-user",
          "pub@example.com",
          "--local-user",
          "else@example.com",
          "--detach-sign",
          "--output",
          `${aci}.asc`,
          aci,
        ]);
        return aci;
      },
      'fetch: image "example.com/hello" verification failed: signature file contains 2 signatures; exactly one is expected\n',
    ],
    [
      "a signature over a different image",
      (rkt) => {
        rkt(["trust", "--prefix", "example.com/hello", "--skip-fingerprint-review", join(tmp, "pub.asc")]);
        const aci = copyAci("differentsig.aci");
        const other = join(tmp, "other-image.bin");
        writeFileSync(other, "another image\n");
        gpg(["--local-user", "pub@example.com", "--armor", "--detach-sign", "--output", `${aci}.asc`, other]);
        return aci;
      },
      'fetch: image "example.com/hello" verification failed: openpgp: invalid signature: signed digest did not match\n',
    ],
    [
      "an expired signature",
      (rkt) => {
        rkt(["trust", "--prefix", "example.com/hello", "--skip-fingerprint-review", join(tmp, "old.asc")]);
        const aci = copyAci("expiredsig.aci");
        gpg([
          "--faked-system-time",
          "20200101T010000",
          "--default-sig-expire",
          "1d",
          "--local-user",
          "old@example.com",
          "--armor",
          "--detach-sign",
          "--output",
          `${aci}.asc`,
          aci,
        ]);
        return aci;
      },
      'fetch: image "example.com/hello" verification failed: signature expired at 2020-01-02T01:00:00.000Z (made by key OLDFP)\n',
    ],
    [
      "a revoked signing key",
      (rkt) => {
        const out = rkt([
          "trust",
          "--prefix",
          "example.com/hello",
          "--skip-fingerprint-review",
          join(tmp, "rev.asc"),
        ]);
        const aci = copyAci("revoked.aci");
        sign("rev@example.com", aci);
        // The publisher revokes the key; the keystore file is updated with the revoked key.
        const fp = fingerprintOf("rev@example.com");
        const cert = readFileSync(join(gnupg, "openpgp-revocs.d", `${fp.toUpperCase()}.rev`), "utf8");
        execFileSync("gpg", ["--batch", "--homedir", gnupg, "--import"], {
          input: cert.replace(/^:-----BEGIN/m, "-----BEGIN"),
          stdio: ["pipe", "pipe", "pipe"],
        });
        writeFileSync(/at "([^"]+)"/.exec(out.stdout)![1]!, gpg(["--armor", "--export", "rev@example.com"]));
        return aci;
      },
      'fetch: image "example.com/hello" verification failed: signing key REVFP is not valid: primary key is revoked\n',
    ],
    [
      "a keystore file whose name is not its key's fingerprint",
      (rkt) => {
        const out = rkt([
          "trust",
          "--prefix",
          "example.com/hello",
          "--skip-fingerprint-review",
          join(tmp, "pub.asc"),
        ]);
        const path = /at "([^"]+)"/.exec(out.stdout)![1]!;
        writeFileSync(path, readFileSync(join(tmp, "else.asc")));
        const aci = copyAci("mismatch.aci");
        sign("pub@example.com", aci);
        return aci;
      },
      'fetch: image "example.com/hello" verification failed: fingerprint mismatch: KEYPATH\n',
    ],
    [
      "a garbage key file in the keystore",
      (rkt) => {
        const out = rkt([
          "trust",
          "--prefix",
          "example.com/hello",
          "--skip-fingerprint-review",
          join(tmp, "pub.asc"),
        ]);
        const path = /at "([^"]+)"/.exec(out.stdout)![1]!;
        writeFileSync(path, "garbage\n");
        const aci = copyAci("garbagekey.aci");
        sign("pub@example.com", aci);
        return aci;
      },
      "fetch: error reading key: KEYFILE: not an ASCII-armored OpenPGP public key block\n",
    ],
  ];
  for (const [title, setup, stderr] of refusals) {
    it(`refuses ${title}: exit 254, the reason, nothing stored`, () => {
      const rkt = env();
      const aci = setup(rkt);
      const r = rkt(["fetch", aci]);
      expect(r.code).toBe(254);
      expect(r.stdout).toBe("");
      expect(
        r.stderr
          .replace(/error reading key: \S+:/, "error reading key: KEYFILE:")
          .replace(/fingerprint mismatch: .*/, "fingerprint mismatch: KEYPATH"),
      ).toBe(
        stderr
          .replace("TMP", tmp)
          .replace("OLDFP", fingerprintOf("old@example.com"))
          .replace("REVFP", fingerprintOf("rev@example.com")),
      );
      expectEmptyStore(rkt);
    });
  }

  it("a garbage key is not trusted in the first place", () => {
    const rkt = env();
    const garbage = join(tmp, "garbage.asc");
    writeFileSync(
      garbage,
      "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot base64 at all\n-----END PGP PUBLIC KEY BLOCK-----\n",
    );
    const t = rkt(["trust", "--prefix", "example.com/hello", "--skip-fingerprint-review", garbage]);
    expect(t.code).toBe(254);
    expect(t.stderr).toMatch(new RegExp(`^trust: error reading key: ${garbage}: `));
    expect(rkt(["trust", "list", "--format", "json"]).stdout).toBe("[]\n");
  });

  it("--insecure-options=image fetches an unsigned copy with a warning", () => {
    const rkt = env();
    const aci = copyAci("insecure.aci");
    const r = rkt(["--insecure-options=image", "fetch", aci]);
    expect(r).toEqual({
      code: 0,
      stdout: `${helloId}\n`,
      stderr: "image: warning: image signature verification has been disabled\n",
    });
  });
});

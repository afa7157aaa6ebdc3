// `rkt image sign` with the built binary: simple-signing signatures checked by skopeo
// standalone-verify, and ACI signatures checked by GnuPG and by our own `rkt fetch`.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repo = resolve(import.meta.dirname, "..", "..", "..");
const bin = join(repo, "packages", "cli", "bin", "rkt.js");
const built = existsSync(join(repo, "packages", "cli", "dist", "commands", "image-sign.js"));
const ociHex = "7aebd25fa56e6fe161e00a5e61d577f1eb1fde8ef67c413c8b74d327623627c0";
const manifestFile = join(repo, "examples", "hello-oci", "blobs", "sha256", ociHex);

let tmp: string;
let gnupg: string;
let fp: string;
let priv: string;
let pub: string;
const gpg = (args: string[]): Buffer =>
  execFileSync(
    "gpg",
    ["--batch", "--homedir", gnupg, "--pinentry-mode", "loopback", "--passphrase", "", ...args],
    { stdio: ["pipe", "pipe", "pipe"] },
  );

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-image-sign-"));
  gnupg = join(tmp, "gnupg");
  mkdirSync(gnupg, { mode: 0o700 });
  gpg(["--quick-gen-key", "Mirror Operator <ops@example.com>", "ed25519", "sign", "0"]);
  fp = gpg(["--with-colons", "--list-keys", "ops@example.com"])
    .toString()
    .split("\n")
    .find((l) => l.startsWith("fpr:"))!
    .split(":")[9]!;
  priv = join(tmp, "priv.asc");
  writeFileSync(priv, gpg(["--armor", "--export-secret-keys", "ops@example.com"]));
  pub = join(tmp, "pub.asc");
  writeFileSync(pub, gpg(["--armor", "--export", "ops@example.com"]));
});
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

function skopeoVerify(reference: string, sig: string): { code: number | null; out: string } {
  const r = spawnSync("skopeo", ["standalone-verify", manifestFile, reference, fp, sig], {
    encoding: "utf8",
    env: { ...process.env, GNUPGHOME: gnupg },
  });
  return { code: r.status, out: r.stdout + r.stderr };
}

describe.skipIf(!built)("rkt image sign (built binary)", () => {
  it("signs a stored OCI image into a file lookaside; skopeo standalone-verify accepts it", () => {
    const rkt = env();
    expect(rkt(["fetch", "oci:examples/hello-oci"]).stdout).toBe(`sha256:${ociHex}\n`);
    const la = join(tmp, "lookaside");
    const a = rkt(["image", "sign", `sha256:${ociHex}`, "--key", priv, "--lookaside", la]);
    const first = join(la, "library", `hello-oci@sha256=${ociHex}`, "signature-1");
    expect(a).toEqual({ code: 0, stdout: `${first}\n`, stderr: "" });
    const v = skopeoVerify("docker.io/library/hello-oci:latest", first);
    expect(v.out).toContain(`Signature verified, digest sha256:${ociHex}`);
    expect(v.code).toBe(0);
    // An explicit reference; a second signature goes to the next free index.
    const b = rkt([
      "image",
      "sign",
      `sha256:${ociHex}`,
      "--key",
      priv,
      "--lookaside",
      `file://${la}`,
      "--reference",
      "registry.example.com/mirror/hello:1.0",
    ]);
    const sig1 = join(la, "mirror", `hello@sha256=${ociHex}`, "signature-1");
    expect(b.stdout).toBe(`${sig1}\n`);
    const c = rkt([
      "image",
      "sign",
      `sha256:${ociHex}`,
      "--key",
      priv,
      "--lookaside",
      la,
      "--reference",
      "registry.example.com/mirror/hello:1.0",
    ]);
    expect(c.stdout).toBe(`${join(la, "mirror", `hello@sha256=${ociHex}`, "signature-2")}\n`);
    expect(skopeoVerify("registry.example.com/mirror/hello:1.0", sig1).code).toBe(0);
    // skopeo refuses it for another identity: the reference is really signed.
    expect(skopeoVerify("registry.example.com/mirror/other:1.0", sig1).code).not.toBe(0);
  });

  it("signs a stored ACI: gpg verifies it and rkt fetch of the exported ACI trusts it", () => {
    const rkt = env();
    expect(rkt(["--insecure-options=image", "fetch", "examples/hello.aci"]).code).toBe(0);
    const out = join(tmp, "exported.aci");
    const sign = rkt(["image", "sign", "example.com/hello", "--key", priv, "--output", `${out}.asc`]);
    expect(sign).toEqual({ code: 0, stdout: `${out}.asc\n`, stderr: "" });
    expect(readFileSync(`${out}.asc`, "utf8")).toMatch(/^-----BEGIN PGP SIGNATURE-----/);
    expect(rkt(["image", "export", "example.com/hello", out]).code).toBe(0);
    gpg(["--verify", `${out}.asc`, out]);
    const again = rkt(["image", "sign", "example.com/hello", "--key", priv, "--output", `${out}.asc`]);
    expect(again).toMatchObject({ code: 254, stderr: `sign: output file ${out}.asc exists\n` });
    const other = env();
    expect(other(["trust", "--prefix", "example.com/hello", "--skip-fingerprint-review", pub]).code).toBe(0);
    const f = other(["fetch", out]);
    expect(f).toMatchObject({
      code: 0,
      stderr: "image: signature verified:\n  Mirror Operator <ops@example.com>\n",
    });
  });

  it("refuses without --key, an ACI without --output, an unknown image", () => {
    const rkt = env();
    expect(rkt(["--insecure-options=image", "fetch", "examples/hello.aci"]).code).toBe(0);
    expect(rkt(["image", "sign", "example.com/hello"])).toMatchObject({
      code: 254,
      stderr: "sign: --key FILE is required\n",
    });
    expect(rkt(["image", "sign", "example.com/hello", "--key", priv])).toMatchObject({
      code: 254,
      stderr: "sign: --output FILE is required to sign an ACI (e.g. IMAGE.aci.asc)\n",
    });
    const none = rkt(["image", "sign", "example.com/nothing", "--key", priv]);
    expect(none.code).toBe(254);
    expect(none.stderr).toMatch(/^sign: .*example\.com\/nothing/);
  });
});

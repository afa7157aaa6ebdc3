// `rkt fetch docker://…` under a policy.json, through the built binary (`npx tsc -b` first),
// against the real docker-registry: signatures made by `skopeo standalone-sign` (GnuPG keys) and
// by `rkt image sign` (an openpgp key) in a file lookaside named by registries.d. A refused image
// must leave nothing in the store: no blob, no ingest, no row.
import { execFileSync, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import * as openpgp from "openpgp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatFingerprint, formatSimpleSigningPayload, writeLookasideSignature } from "@rkt/trust";
import { pushLayout, randomLayer, useRegistry, writeOciLayout, type BuiltImage } from "@rkt/testkit";

const repo = resolve(import.meta.dirname, "..", "..", "..");
const bin = join(repo, "packages", "cli", "bin", "rkt.js");
const built = existsSync(join(repo, "packages", "cli", "dist", "main.js"));
const reg = useRegistry({ mode: "plain" });

let tmp: string;
let gnupg: string;
let la: string;
const fps: Record<string, string> = {};
const pubs: Record<string, string> = {};
const images: Record<string, BuiltImage> = {};
let mirrorKey: { priv: string; pub: string; fp: string };

const gpg = (args: string[]): Buffer =>
  execFileSync(
    "gpg",
    ["--batch", "--homedir", gnupg, "--pinentry-mode", "loopback", "--passphrase", "", ...args],
    { stdio: ["pipe", "pipe", "pipe"] },
  );

function genGpgKey(name: string, email: string, algo: string): void {
  gpg(["--quick-gen-key", `${name} <${email}>`, algo, "sign", "0"]);
  fps[name] = gpg(["--with-colons", "--list-keys", email])
    .toString()
    .split("\n")
    .find((l) => l.startsWith("fpr:"))!
    .split(":")[9]!
    .toLowerCase();
  pubs[name] = join(tmp, `${name}.gpg`);
  writeFileSync(pubs[name], gpg(["--export", email]));
}

// skopeo's signature of `image` as `reference`, by GnuPG key `signer`.
function skopeoSign(image: BuiltImage, reference: string, signer: string): Buffer {
  const dir = mkdtempSync(join(tmp, "sign-"));
  writeFileSync(join(dir, "manifest.json"), image.manifestBytes);
  execFileSync(
    "skopeo",
    [
      "standalone-sign",
      "--output",
      join(dir, "sig"),
      join(dir, "manifest.json"),
      reference,
      fps[signer]!.toUpperCase(),
    ],
    { env: { ...process.env, GNUPGHOME: gnupg }, stdio: "pipe" },
  );
  return readFileSync(join(dir, "sig"));
}

const host = (): string => reg().host;
const url = (repoTag: string): string => `docker://${host()}/${repoTag}`;
const laFor = (repoName: string, digest: string): string =>
  join(la, `${repoName}@${digest.replace(":", "=")}`);

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-fetch-policy-"));
  gnupg = join(tmp, "gnupg");
  mkdirSync(gnupg, { mode: 0o700 });
  la = join(tmp, "lookaside");
  genGpgKey("Signer", "signer@example.com", "ed25519");
  genGpgKey("Stranger", "stranger@example.com", "ed25519");
  const k = await openpgp.generateKey({
    type: "ecc",
    curve: "nistP256",
    userIDs: [{ name: "Mirror", email: "mirror@example.com" }],
    format: "armored",
  });
  const key = await openpgp.readKey({ armoredKey: k.publicKey });
  mirrorKey = { priv: join(tmp, "mirror.key"), pub: k.publicKey, fp: key.getFingerprint() };
  writeFileSync(mirrorKey.priv, k.privateKey);
  // One distinct image per repository; `copy` is `app` pushed under another name.
  for (const [name, seed] of [
    ["policy/app", "app"],
    ["policy/unsigned", "unsigned"],
    ["policy/stranger", "stranger"],
    ["policy/other", "other"],
    ["policy/swapped", "swapped"],
    ["policy/rejected", "rejected"],
    ["open/app", "open"],
    ["policy/mirror", "mirror"],
    ["policy/copy", "app"],
    ["policy/empty", "empty"],
    ["policy/double", "double"],
  ] as const) {
    const dir = join(tmp, `layout-${name.replace("/", "-")}`);
    const img = await writeOciLayout(dir, { layers: [randomLayer(4000, { seed })] });
    expect(await pushLayout(dir, `${name}:v1`, reg())).toBe(img.descriptor.digest);
    images[name] = img;
  }
  const base = pathToFileURL(la).href;
  const put = (name: string, sig: Buffer): Promise<string> =>
    writeLookasideSignature(base, name, images[name]!.descriptor.digest, sig);
  const app = images["policy/app"]!;
  await put("policy/app", skopeoSign(app, `${host()}/policy/app:v1`, "Signer"));
  await put(
    "policy/stranger",
    skopeoSign(images["policy/stranger"]!, `${host()}/policy/stranger:v1`, "Stranger"),
  );
  // Signed by the trusted key, but for another repository.
  await put("policy/other", skopeoSign(images["policy/other"]!, `${host()}/policy/app:v1`, "Signer"));
  // app's valid signature, filed under another image.
  await put("policy/swapped", skopeoSign(app, `${host()}/policy/app:v1`, "Signer"));
  await put(
    "policy/rejected",
    skopeoSign(images["policy/rejected"]!, `${host()}/policy/rejected:v1`, "Signer"),
  );
  await put("policy/copy", skopeoSign(app, `${host()}/policy/app:v1`, "Signer"));
  await put("policy/empty", Buffer.alloc(0));
  // One message signed by two keys (the trusted one among them): two signature packets.
  const double = images["policy/double"]!;
  const payload = formatSimpleSigningPayload({
    dockerReference: `${host()}/policy/double:v1`,
    manifestDigest: double.descriptor.digest,
  });
  await put(
    "policy/double",
    execFileSync(
      "gpg",
      [
        "--batch",
        "--homedir",
        gnupg,
        "--local-user",
        fps["Signer"]!,
        "--local-user",
        fps["Stranger"]!,
        "--sign",
      ],
      { input: payload },
    ),
  );
});

afterAll(() => {
  try {
    execFileSync("gpgconf", ["--homedir", gnupg, "--kill", "gpg-agent"], { stdio: "ignore" });
  } catch {
    // no agent started
  }
  rmSync(tmp, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}
interface Env {
  rkt: (args: string[]) => Run;
  data: string;
  etc: string;
  policyPath: string;
}

let n = 0;
// A store and config dirs of their own: `<local-config>/policy.json` (unless `policy` is
// undefined) and `<local-config>/registries.d/lookaside.yaml` naming the lookaside.
function env(policy: unknown, o: { lookaside?: string; insecure?: string } = {}): Env {
  const d = join(tmp, `env-${n++}`);
  const etc = join(d, "etc");
  mkdirSync(join(etc, "registries.d"), { recursive: true });
  writeFileSync(
    join(etc, "registries.d", "lookaside.yaml"),
    `default-docker:\n  lookaside: ${pathToFileURL(o.lookaside ?? la).href}\n`,
  );
  const policyPath = join(etc, "policy.json");
  if (policy !== undefined)
    writeFileSync(policyPath, typeof policy === "string" ? policy : JSON.stringify(policy, null, 2));
  const data = join(d, "data");
  const globals = [
    `--dir=${data}`,
    `--local-config=${etc}`,
    `--system-config=${join(d, "lib")}`,
    `--insecure-options=${o.insecure ?? "http"}`,
  ];
  return {
    data,
    etc,
    policyPath,
    rkt: (args) => {
      const r = spawnSync(process.execPath, [bin, ...globals, ...args], {
        cwd: repo,
        encoding: "utf8",
        env: { ...process.env, HOME: d },
      });
      return { code: r.status, stdout: r.stdout, stderr: r.stderr };
    },
  };
}

const signedBy = (keyPath: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  type: "signedBy",
  keyType: "GPGKeys",
  keyPath,
  ...extra,
});

function standardPolicy(): unknown {
  return {
    default: [{ type: "reject" }],
    transports: {
      docker: {
        [host()]: [signedBy(pubs["Signer"]!)],
        [`${host()}/open`]: [{ type: "insecureAcceptAnything" }],
        [`${host()}/policy/rejected`]: [{ type: "reject" }],
        [`${host()}/policy/copy`]: [
          signedBy(pubs["Signer"]!, {
            signedIdentity: {
              type: "remapIdentity",
              prefix: `${host()}/policy/copy`,
              signedPrefix: `${host()}/policy/app`,
            },
          }),
        ],
      },
    },
  };
}

function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => e.name);
}

// Nothing of the image reached the store.
function expectNothingStored(e: Env): void {
  expect(files(join(e.data, "cas", "blobs"))).toEqual([]);
  expect(files(join(e.data, "cas", "ingest"))).toEqual([]);
  expect(e.rkt(["image", "list", "--no-legend"]).stdout).toBe("");
}

describe.skipIf(!built)("rkt fetch docker:// under policy.json (built binary)", () => {
  it("verifies a skopeo-signed image (GnuPG key, file lookaside) and says by whom; re-checks on update", () => {
    const e = env(standardPolicy());
    const digest = images["policy/app"]!.descriptor.digest;
    const r = e.rkt(["fetch", url("policy/app:v1")]);
    expect(r.stdout).toBe(`${digest}\n`);
    expect(r.code).toBe(0);
    const verified = `image: signature verified: ${host()}/policy/app:v1@${digest} by key ${formatFingerprint(fps["Signer"]!)} Signer <signer@example.com>\n`;
    expect(r.stderr.startsWith(verified)).toBe(true);
    expect(
      e.rkt(["image", "list", "--no-legend", "--full", "--fields=id,name"]).stdout.trim().split(/\s+/),
    ).toEqual([digest, `${host()}/policy/app:v1`]);
    // Unchanged on the registry: still admitted (one HEAD, the signature read again).
    expect(e.rkt(["fetch", url("policy/app:v1")])).toEqual({
      code: 0,
      stdout: `${digest}\n`,
      stderr: verified,
    });
    // A withdrawn signature refuses the unchanged image too.
    const sigDir = laFor("policy/app", digest);
    renameSync(sigDir, `${sigDir}.off`);
    try {
      const gone = e.rkt(["fetch", url("policy/app:v1")]);
      expect(gone).toEqual({
        code: 254,
        stdout: "",
        stderr: `fetch: ${url("policy/app:v1")}: rejected by ${e.policyPath}: A signature was required, but no signature exists\n`,
      });
      // --pull-policy=new asks no registry, so the stored image stands (as rkt's store does).
      expect(e.rkt(["fetch", "--pull-policy=new", url("policy/app:v1")]).code).toBe(0);
    } finally {
      renameSync(`${sigDir}.off`, sigDir);
    }
  });

  it("refuses unsigned images, other signers, other identities, other images and reject scopes; nothing stored", () => {
    const appDigest = images["policy/app"]!.descriptor.digest;
    const strangerKeyId = fps["Stranger"]!.slice(-16).toUpperCase();
    const cases: [string, string][] = [
      ["policy/unsigned", "A signature was required, but no signature exists"],
      ["policy/stranger", `signature made by unknown key ${strangerKeyId}`],
      [
        "policy/other",
        `signature is for "${host()}/policy/app:v1", which matchRepoDigestOrExact does not accept for "${host()}/policy/other:v1"`,
      ],
      [
        "policy/swapped",
        `signature is for manifest digest ${appDigest}, not ${images["policy/swapped"]!.descriptor.digest}`,
      ],
      ["policy/rejected", `Running image ${url("policy/rejected:v1")} is rejected by policy.`],
      ["policy/empty", "empty signature"],
      ["policy/double", "signature contains 2 signature packets; exactly one is expected"],
    ];
    for (const [name, why] of cases) {
      const e = env(standardPolicy());
      const r = e.rkt(["fetch", url(`${name}:v1`)]);
      expect(r, name).toEqual({
        code: 254,
        stdout: "",
        stderr: `fetch: ${url(`${name}:v1`)}: rejected by ${e.policyPath}: ${why}\n`,
      });
      expectNothingStored(e);
    }
  });

  it("accepts anything under an insecureAcceptAnything scope, and remaps identities for copies", () => {
    const e = env(standardPolicy());
    const open = e.rkt(["fetch", url("open/app:v1")]);
    expect(open).toEqual({
      code: 0,
      stdout: `${images["open/app"]!.descriptor.digest}\n`,
      stderr: expect.not.stringContaining("signature verified") as string,
    });
    // policy/copy holds app's signature, made for policy/app: remapIdentity accepts it there.
    const copy = e.rkt(["fetch", url("policy/copy:v1")]);
    expect(copy.code).toBe(0);
    expect(copy.stderr).toContain(`image: signature verified: ${host()}/policy/app:v1@`);
  });

  it("refuses a policy.json with an unknown field before anything else, naming the file", () => {
    const p = {
      default: [{ type: "reject" }],
      transports: {
        docker: { [host()]: [{ type: "signedBy", keyType: "GPGKeys", keyPth: pubs["Signer"] }] },
      },
    };
    const e = env(p);
    expect(e.rkt(["fetch", url("policy/app:v1")])).toEqual({
      code: 254,
      stdout: "",
      stderr: `fetch: ${e.policyPath}: $.transports.docker["${host()}"][0].keyPth: unknown field\n`,
    });
    expectNothingStored(e);
  });

  it("without a policy refuses, naming where policy.json was looked for; --insecure-options=image warns", () => {
    const e = env(undefined);
    const refused = e.rkt(["fetch", url("policy/unsigned:v1")]);
    expect(refused).toMatchObject({ code: 254, stdout: "" });
    expect(refused.stderr).toMatch(
      /^fetch: no signature policy for docker images: none of \/\S+\/policy\.json(, \/\S+\/policy\.json)* exists; write a policy\.json \(containers-policy\.json\(5\)\) there or give --signature-policy FILE, or fetch without verification with --insecure-options=image\n$/,
    );
    const e2 = env(standardPolicy(), { insecure: "http,image" });
    const r = e2.rkt(["fetch", "--quiet", url("policy/unsigned:v1")]);
    expect(r).toEqual({
      code: 0,
      stdout: `${images["policy/unsigned"]!.descriptor.digest}\n`,
      stderr: "image: warning: image signature verification has been disabled\n",
    });
  });

  it("applies the oci transport's scopes to local layouts: path scopes, reject, insecure bypass", () => {
    const layout = join(repo, "examples", "hello-oci");
    const e = env({ default: [{ type: "reject" }] });
    expect(e.rkt(["fetch", "oci:examples/hello-oci"])).toEqual({
      code: 254,
      stdout: "",
      stderr: `fetch: oci:examples/hello-oci: rejected by ${e.policyPath}: Running image oci:${layout} is rejected by policy.\n`,
    });
    expectNothingStored(e);
    // signedBy cannot hold: local layouts carry no simple-signing signatures.
    const signed = env({
      default: [{ type: "reject" }],
      transports: { oci: { "": [signedBy(pubs["Signer"]!)] } },
    });
    expect(signed.rkt(["fetch", "oci:examples/hello-oci"]).stderr).toMatch(
      /rejected by .*: A signature was required, but no signature exists\n$/,
    );
    // The parent directory's scope admits it; --insecure-options=image skips the policy.
    const ok = env({
      default: [{ type: "reject" }],
      transports: { oci: { [join(repo, "examples")]: [{ type: "insecureAcceptAnything" }] } },
    });
    expect(ok.rkt(["fetch", "oci:examples/hello-oci"])).toMatchObject({ code: 0, stderr: "" });
    expect(
      env({ default: [{ type: "reject" }] }, { insecure: "image" }).rkt(["fetch", "oci:examples/hello-oci"])
        .code,
    ).toBe(0);
  });

  it("verifies what `rkt image sign` wrote (openpgp ECDSA key, keyData, --signature-policy, keyPaths)", () => {
    const digest = images["policy/mirror"]!.descriptor.digest;
    const la2 = join(tmp, "lookaside-mirror");
    // The mirror operator fetches unverified, signs what it stored.
    const op = env(undefined, { insecure: "http,image", lookaside: la2 });
    expect(op.rkt(["fetch", url("policy/mirror:v1")]).code).toBe(0);
    const signed = op.rkt(["image", "sign", digest, "--key", mirrorKey.priv, "--lookaside", la2]);
    expect(signed).toEqual({
      code: 0,
      stdout: `${join(laFor("policy/mirror", digest).replace(la, la2), "signature-1")}\n`,
      stderr: "",
    });

    const policyFile = join(tmp, "mirror-policy.json");
    const keyData = Buffer.from(mirrorKey.pub).toString("base64");
    writeFileSync(
      policyFile,
      JSON.stringify({
        default: [{ type: "reject" }],
        transports: {
          docker: { [`${host()}/policy/mirror`]: [{ type: "signedBy", keyType: "GPGKeys", keyData }] },
        },
      }),
    );
    const e = env(undefined, { lookaside: la2 });
    const r = e.rkt(["fetch", "--signature-policy", policyFile, url("policy/mirror:v1")]);
    expect(r.stdout).toBe(`${digest}\n`);
    expect(r.stderr).toContain(
      `image: signature verified: ${host()}/policy/mirror:v1@${digest} by key ${formatFingerprint(mirrorKey.fp.toLowerCase())} Mirror <mirror@example.com>\n`,
    );
    // keyPaths: any of the listed keyrings may have signed.
    const mirrorPub = join(tmp, "mirror.asc");
    writeFileSync(mirrorPub, mirrorKey.pub);
    const e2 = env(
      {
        default: [{ type: "reject" }],
        transports: {
          docker: {
            [host()]: [{ type: "signedBy", keyType: "GPGKeys", keyPaths: [pubs["Stranger"], mirrorPub] }],
          },
        },
      },
      { lookaside: la2 },
    );
    expect(e2.rkt(["fetch", url("policy/mirror:v1")]).code).toBe(0);
    // Another key entirely: refused.
    const e3 = env({ default: [signedBy(pubs["Signer"]!)] }, { lookaside: la2 });
    const bad = e3.rkt(["fetch", url("policy/mirror:v1")]);
    expect(bad.code).toBe(254);
    expect(bad.stderr).toMatch(/rejected by .*: signature made by unknown key [0-9A-F]{16}\n$/);
    expectNothingStored(e3);
    // A --signature-policy that does not exist is an error, not a fallback.
    const missing = e.rkt(["fetch", "--signature-policy", join(tmp, "nope.json"), url("policy/mirror:v1")]);
    expect(missing.code).toBe(254);
    expect(missing.stderr).toBe(
      `fetch: signature policy ${join(tmp, "nope.json")}: ENOENT: no such file or directory, open '${join(tmp, "nope.json")}'\n`,
    );
  });
});

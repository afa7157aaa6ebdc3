import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { ErrorCode, digestOf, isRktError, parseDockerReference } from "@rkt/oci";
import {
  createSimpleSignature,
  evaluatePolicy,
  formatSimpleSigningPayload,
  parseAnyKeyring,
  parsePolicyOrThrow,
  parseSimpleSigningPayload,
  readLookasideSignatures,
  verifySimpleSignature,
  writeLookasideSignature,
} from "@rkt/trust";
import * as openpgp from "openpgp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { removeTempDirs, tempDir } from "./tmp.js";

afterAll(removeTempDirs);
import { disposeGpgs, makeGpg, type Gpg } from "./gpg.js";

afterAll(disposeGpgs);

const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: `sha256:${"a".repeat(64)}`,
      size: 2,
    },
    layers: [],
  }),
);
const digest = digestOf(manifest);
const ref = "registry.example.com/ns/app:1.0";

async function rejects(p: Promise<unknown>, code: string, message: string | RegExp): Promise<void> {
  const e: unknown = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(isRktError(e), String(e)).toBe(true);
  expect((e as { code: string }).code).toBe(code);
  if (typeof message === "string") expect((e as Error).message).toBe(message);
  else expect((e as Error).message).toMatch(message);
}

function throwsSync(f: () => unknown, code: string, message: string): void {
  let e: unknown;
  try {
    f();
  } catch (err) {
    e = err;
  }
  expect(isRktError(e), String(e)).toBe(true);
  expect((e as { code: string }).code).toBe(code);
  expect((e as Error).message).toBe(message);
}

let priv: openpgp.PrivateKey;
let privArmored: string;
let pub: openpgp.Key;
let gpg: Gpg;
let gpgFp: string;
let gpgKeys: readonly openpgp.Key[];

beforeAll(async () => {
  const k = await openpgp.generateKey({
    type: "ecc",
    curve: "ed25519Legacy",
    userIDs: [{ name: "Mirror Signer", email: "mirror@example.com" }],
    format: "armored",
  });
  privArmored = k.privateKey;
  priv = await openpgp.readPrivateKey({ armoredKey: k.privateKey });
  pub = await openpgp.readKey({ armoredKey: k.publicKey });
  gpg = makeGpg();
  gpgFp = gpg.genKey("Skopeo Signer <skopeo@example.com>", "rsa2048");
  gpgKeys = await parseAnyKeyring(gpg.exportKey("skopeo@example.com", false), "gpg export");
  gpg.run(["--import"], { input: k.publicKey });
}, 60_000);

// Signs an arbitrary payload the way simple signing does, to test the payload checks.
async function signRaw(
  payload: string | Uint8Array,
  keys: openpgp.PrivateKey[] = [priv],
): Promise<Uint8Array> {
  const message = await openpgp.createMessage({
    binary: typeof payload === "string" ? Buffer.from(payload) : payload,
  });
  const signed: unknown = await openpgp.sign({ message, signingKeys: keys, format: "binary" });
  return signed as Uint8Array;
}

describe("simple signing interop", () => {
  it("our signatures verify with us and with skopeo standalone-verify", async () => {
    const sig = await createSimpleSignature({
      dockerReference: ref,
      manifestDigest: digest,
      privateKeyArmored: privArmored,
      timestamp: 1483228800,
    });
    const v = await verifySimpleSignature(sig, {
      keys: [pub],
      expectedReference: ref,
      manifestDigest: digest,
    });
    expect(v).toMatchObject({
      dockerReference: ref,
      manifestDigest: digest,
      creator: "rkt",
      timestamp: 1483228800,
      fingerprint: priv.getFingerprint(),
    });
    const dir = tempDir("rkt-trust-ss-");
    writeFileSync(join(dir, "manifest.json"), manifest);
    writeFileSync(join(dir, "signature-1"), sig);
    const out = execFileSync(
      "skopeo",
      [
        "standalone-verify",
        join(dir, "manifest.json"),
        ref,
        priv.getFingerprint().toUpperCase(),
        join(dir, "signature-1"),
      ],
      { env: { ...process.env, GNUPGHOME: gpg.home } },
    ).toString();
    expect(out).toContain(`Signature verified, digest ${digest}`);
  });

  it("skopeo standalone-sign signatures (GnuPG RSA key) verify with us", async () => {
    const dir = tempDir("rkt-trust-ss-");
    writeFileSync(join(dir, "manifest.json"), manifest);
    execFileSync(
      "skopeo",
      ["standalone-sign", "--output", join(dir, "sig"), join(dir, "manifest.json"), ref, gpgFp.toUpperCase()],
      { env: { ...process.env, GNUPGHOME: gpg.home } },
    );
    const sig = readFileSync(join(dir, "sig"));
    const v = await verifySimpleSignature(sig, {
      keys: gpgKeys,
      expectedReference: ref,
      manifestDigest: digest,
    });
    expect(v).toMatchObject({ dockerReference: ref, manifestDigest: digest, fingerprint: gpgFp });
    expect(v.creator).toMatch(/^atomic /);
    // The same signature is refused for another tag, another manifest, or untrusted keys.
    await rejects(
      verifySimpleSignature(sig, {
        keys: gpgKeys,
        expectedReference: `${ref}-other`,
        manifestDigest: digest,
      }),
      ErrorCode.SignatureInvalid,
      `signature is for "${ref}", which matchRepoDigestOrExact does not accept for "${ref}-other"`,
    );
    await rejects(
      verifySimpleSignature(sig, {
        keys: gpgKeys,
        expectedReference: ref,
        manifestDigest: digestOf("other"),
      }),
      ErrorCode.SignatureInvalid,
      `signature is for manifest digest ${digest}, not ${digestOf("other")}`,
    );
    await rejects(
      verifySimpleSignature(sig, { keys: [pub], expectedReference: ref, manifestDigest: digest }),
      ErrorCode.KeyUntrusted,
      `signature made by unknown key ${gpgFp.slice(-16).toUpperCase()}`,
    );
    // A pull by digest accepts a signature made for any tag of the same repository.
    expect(
      await verifySimpleSignature(sig, {
        keys: gpgKeys,
        expectedReference: `registry.example.com/ns/app@${digest}`,
        manifestDigest: digest,
      }),
    ).toMatchObject({ dockerReference: ref });
  });

  it("a skopeo signature in a file:// lookaside satisfies a signedBy policy with a gpg keyring", async () => {
    const dir = tempDir("rkt-trust-flow-");
    writeFileSync(join(dir, "manifest.json"), manifest);
    execFileSync(
      "skopeo",
      ["standalone-sign", "--output", join(dir, "sig"), join(dir, "manifest.json"), ref, gpgFp.toUpperCase()],
      { env: { ...process.env, GNUPGHOME: gpg.home } },
    );
    writeFileSync(join(dir, "pubring.gpg"), gpg.exportKey("skopeo@example.com", false));
    const base = pathToFileURL(join(dir, "lookaside")).href;
    await writeLookasideSignature(base, "ns/app", digest, readFileSync(join(dir, "sig")));
    const policy = parsePolicyOrThrow(
      JSON.stringify({
        default: [{ type: "reject" }],
        transports: {
          docker: {
            "registry.example.com": [
              { type: "signedBy", keyType: "GPGKeys", keyPath: join(dir, "pubring.gpg") },
            ],
          },
        },
      }),
      "policy.json",
    );
    const image = (tag: string) => ({
      transport: "docker",
      reference: parseDockerReference(`registry.example.com/ns/app:${tag}`),
      manifestDigest: digest,
      signatures: () => readLookasideSignatures(base, "ns/app", digest),
    });
    expect(await evaluatePolicy(policy, image("1.0"))).toMatchObject({
      accepted: true,
      scope: "registry.example.com",
      signatures: [{ dockerReference: ref, fingerprint: gpgFp }],
    });
    expect(await evaluatePolicy(policy, image("2.0"))).toEqual({
      accepted: false,
      scope: "registry.example.com",
      reasons: [
        `signature is for "${ref}", which matchRepoDigestOrExact does not accept for "registry.example.com/ns/app:2.0"`,
      ],
    });
  });

  it("a GnuPG-exported private key signs too", async () => {
    const armored = gpg.run(["--export-secret-keys", "--armor", "skopeo@example.com"]).toString();
    const sig = await createSimpleSignature({
      dockerReference: ref,
      manifestDigest: digest,
      privateKeyArmored: armored,
    });
    expect(
      await verifySimpleSignature(sig, { keys: gpgKeys, expectedReference: ref, manifestDigest: digest }),
    ).toMatchObject({ signerFingerprint: gpgFp });
  });
});

describe("simple signing structure and payload", () => {
  const good = (): string =>
    new TextDecoder().decode(formatSimpleSigningPayload({ dockerReference: ref, manifestDigest: digest }));
  const verify = (sig: Uint8Array): Promise<unknown> =>
    verifySimpleSignature(sig, { keys: [pub], expectedReference: ref, manifestDigest: digest });

  it("formats the payload as skopeo does", () => {
    expect(
      new TextDecoder().decode(
        formatSimpleSigningPayload({
          dockerReference: ref,
          manifestDigest: digest,
          creator: "c",
          timestamp: 1,
        }),
      ),
    ).toBe(
      `{"critical":{"identity":{"docker-reference":"${ref}"},"image":{"docker-manifest-digest":"${digest}"},"type":"atomic container signature"},"optional":{"creator":"c","timestamp":1}}`,
    );
  });

  it.each([
    [
      "unknown critical field",
      (s: string) => s.replace('"type":', '"extra":1,"type":'),
      "invalid signature payload: $.critical.extra: unknown field",
    ],
    [
      "unknown top-level field",
      (s: string) => s.replace('"optional":', '"more":{},"optional":'),
      "invalid signature payload: $.more: unknown field",
    ],
    [
      "unknown image field",
      (s: string) => s.replace('"image":{', '"image":{"size":1,'),
      "invalid signature payload: $.critical.image.size: unknown field",
    ],
    [
      "duplicate member",
      (s: string) => s.replace('"type":', '"type":"x","type":'),
      'invalid signature payload: $.critical.type: duplicate key "type" at offset 205',
    ],
    [
      "wrong type",
      (s: string) => s.replace("atomic container signature", "cosign container image signature"),
      'invalid signature payload: $.critical.type: must be "atomic container signature"',
    ],
    [
      "missing optional",
      (s: string) => s.replace(',"optional":{}', ""),
      'invalid signature payload: $: missing field "optional"',
    ],
    [
      "fractional timestamp",
      (s: string) => s.replace('"optional":{}', '"optional":{"timestamp":1.5}'),
      "invalid signature payload: $.optional.timestamp: must be an integer",
    ],
    [
      "bad digest",
      (s: string) => s.replace(digest, "sha256:abc"),
      /^invalid signature payload: \$\.critical\.image\["docker-manifest-digest"\]: /,
    ],
  ])("refuses a payload with %s", async (_, edit, message) => {
    const sig = await signRaw(edit(good()));
    await rejects(verify(sig), ErrorCode.SignatureInvalid, message);
  });

  it("pure parser: tolerates unknown optional members", () => {
    const p = parseSimpleSigningPayload(Buffer.from(good().replace('"optional":{}', '"optional":{"x":[1]}')));
    expect(p.optional).toEqual({ x: [1] });
    throwsSync(
      () => parseSimpleSigningPayload(Buffer.from("[]")),
      ErrorCode.SignatureInvalid,
      "invalid signature payload: $: must be an object",
    );
  });

  it("refuses several signatures, empty, garbage, cleartext, tampered and sigstore blobs", async () => {
    const other = await openpgp.generateKey({
      type: "ecc",
      curve: "nistP256",
      userIDs: [{ name: "o" }],
      format: "object",
    });
    const two = await signRaw(good(), [priv, other.privateKey]);
    await rejects(
      verify(two),
      ErrorCode.SignatureInvalid,
      "signature contains 2 signature packets; exactly one is expected",
    );
    await rejects(verify(new Uint8Array()), ErrorCode.SignatureInvalid, "empty signature");
    await rejects(verify(Buffer.from("garbage")), ErrorCode.SignatureInvalid, /^not an OpenPGP message: /);
    const clear = await openpgp.sign({
      message: await openpgp.createCleartextMessage({ text: good() }),
      signingKeys: priv,
    });
    await rejects(
      verify(Buffer.from(clear)),
      ErrorCode.SignatureInvalid,
      "a cleartext signature is not a simple-signing signature",
    );
    const sig = Buffer.from(await signRaw(good()));
    const at = sig.indexOf(Buffer.from("registry.example.com"));
    sig[at] = 0x52; // "r" -> "R"
    await rejects(verify(sig), ErrorCode.SignatureInvalid, /^openpgp: invalid signature: /);
    const env = Buffer.concat([Buffer.from("\0simple-signing\n"), await signRaw(good())]);
    expect(await verify(env)).toMatchObject({ dockerReference: ref });
    await rejects(
      verify(Buffer.from("\0sigstore-json\n{}")),
      ErrorCode.SignatureInvalid,
      "sigstore signatures are not supported; only simple signing is",
    );
  });

  it("refuses a literal message without a signature", async () => {
    const lit = await openpgp.createMessage({ binary: Buffer.from(good()) });
    await rejects(
      verify(lit.write() as Uint8Array),
      ErrorCode.SignatureInvalid,
      "signature contains 0 signature packets; exactly one is expected",
    );
  });

  it("accepts an ASCII-armored signed message", async () => {
    const message = await openpgp.createMessage({ binary: Buffer.from(good()) });
    const armored = await openpgp.sign({ message, signingKeys: priv, format: "armored" });
    expect(await verify(Buffer.from(armored))).toMatchObject({ dockerReference: ref });
  });

  it("refuses an expired key and accepts it at a time it was valid", async () => {
    const created = new Date("2020-01-01T00:00:00Z");
    const k = await openpgp.generateKey({
      type: "ecc",
      curve: "ed25519Legacy",
      userIDs: [{ name: "Expired" }],
      date: created,
      keyExpirationTime: 86400,
      format: "object",
    });
    const message = await openpgp.createMessage({ binary: Buffer.from(good()), date: created });
    const signed: unknown = await openpgp.sign({
      message,
      signingKeys: k.privateKey,
      date: new Date("2020-01-01T01:00:00Z"),
      format: "binary",
    });
    const opts = { keys: [k.publicKey], expectedReference: ref, manifestDigest: digest };
    await rejects(
      verifySimpleSignature(signed as Uint8Array, opts),
      ErrorCode.SignatureInvalid,
      `signing key ${k.publicKey.getFingerprint()} is not valid: primary key is expired`,
    );
    expect(
      await verifySimpleSignature(signed as Uint8Array, { ...opts, date: new Date("2020-01-01T02:00:00Z") }),
    ).toMatchObject({ fingerprint: k.publicKey.getFingerprint() });
  });
});

describe("simple signing with GnuPG key states (issue item 5)", () => {
  // A signed message over the payload, as skopeo (gpgme) makes it: gpg --sign.
  const gpgSign = (g: Gpg, uid: string, o: { fakedTime?: string; expire?: string } = {}): Buffer => {
    const payload = formatSimpleSigningPayload({ dockerReference: ref, manifestDigest: digest });
    return g.run(
      [
        "--local-user",
        uid,
        ...(o.expire === undefined ? [] : ["--default-sig-expire", o.expire]),
        "--sign",
        "--output",
        "-",
      ],
      { input: Buffer.from(payload), ...(o.fakedTime === undefined ? {} : { fakedTime: o.fakedTime }) },
    );
  };

  it("a signing subkey made by skopeo standalone-sign verifies; the verdict names primary and subkey", async () => {
    const g = makeGpg();
    const primary = g.genKey("Sub Signer <sub@example.com>", "ed25519");
    const sub = g.addSigningSubkey(primary, "ed25519");
    const dir = tempDir("rkt-trust-subkey-");
    writeFileSync(join(dir, "manifest.json"), manifest);
    execFileSync(
      "skopeo",
      [
        "standalone-sign",
        "--output",
        join(dir, "sig"),
        join(dir, "manifest.json"),
        ref,
        primary.toUpperCase(),
      ],
      { env: { ...process.env, GNUPGHOME: g.home } },
    );
    const keys = await parseAnyKeyring(g.exportKey("sub@example.com"), "export");
    const v = await verifySimpleSignature(readFileSync(join(dir, "sig")), {
      keys,
      expectedReference: ref,
      manifestDigest: digest,
    });
    expect(v).toMatchObject({
      fingerprint: primary,
      signerFingerprint: sub,
      identities: ["Sub Signer <sub@example.com>"],
    });
  });

  it("refuses revoked keys and expired signatures with that reason", async () => {
    const g = makeGpg();
    const rev = g.genKey("Rev <rev@example.com>", "ed25519");
    const old = g.genKey("Old <old@example.com>", "nistp256", { fakedTime: "20200101T000000" });
    const revSig = gpgSign(g, "rev@example.com");
    const expiring = gpgSign(g, "old@example.com", { fakedTime: "20200101T010000", expire: "1d" });
    const oldKeys = await parseAnyKeyring(g.exportKey("old@example.com"), "export");
    const opts = { expectedReference: ref, manifestDigest: digest };
    await rejects(
      verifySimpleSignature(expiring, { ...opts, keys: oldKeys }),
      ErrorCode.SignatureInvalid,
      `signature expired at 2020-01-02T01:00:00.000Z (made by key ${old})`,
    );
    // Before the revocation the signature verifies; after it, it is refused as revoked.
    const before = await parseAnyKeyring(g.exportKey("rev@example.com"), "export");
    expect(await verifySimpleSignature(revSig, { ...opts, keys: before })).toMatchObject({
      fingerprint: rev,
    });
    g.revoke(rev);
    const after = await parseAnyKeyring(g.exportKey("rev@example.com"), "export");
    await rejects(
      verifySimpleSignature(revSig, { ...opts, keys: after }),
      ErrorCode.SignatureInvalid,
      `signing key ${rev} is not valid: primary key is revoked`,
    );
  });
});

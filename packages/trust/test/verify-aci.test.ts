import { join } from "node:path";
import { Readable } from "node:stream";
import { ErrorCode, isRktError } from "@rkt/oci";
import {
  KeyStore,
  createAciVerifier,
  noSignaturesMessage,
  unknownEntityMessage,
  verifyDetached,
  type KeyScope,
} from "@rkt/trust";
import * as openpgp from "openpgp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { removeTempDirs, tempDir } from "./tmp.js";

afterAll(removeTempDirs);
import { disposeGpgs, makeGpg, type Gpg } from "./gpg.js";

afterAll(disposeGpgs);

const content = Buffer.from("an ACI would be a tar archive; these bytes stand in for one\n".repeat(1000));
const other = Buffer.from("a different image\n");

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

function newStore(): KeyStore {
  const root = tempDir("rkt-trust-v-");
  return new KeyStore({ systemConfigDir: join(root, "sys"), localConfigDir: join(root, "local") });
}

const verify = (
  store: KeyStore,
  signature: Uint8Array,
  o: { name?: string; data?: Buffer; date?: Date } = {},
): Promise<unknown> =>
  verifyDetached({
    name: o.name ?? "example.com/app",
    open: () => Promise.resolve(Readable.from([o.data ?? content])),
    signature,
    keystore: store,
    date: o.date,
  });

describe("verifyDetached with GnuPG keys and signatures", () => {
  let gpg: Gpg;
  const fps: Record<string, string> = {};
  beforeAll(() => {
    gpg = makeGpg();
    fps["rsa"] = gpg.genKey("RSA Signer <rsa@example.com>", "rsa2048");
    fps["ed25519"] = gpg.genKey("Ed Signer <ed@example.com>", "ed25519");
    fps["nistp256"] = gpg.genKey("EC Signer <ec@example.com>", "nistp256");
  }, 120_000);

  for (const [algo, email] of [
    ["rsa", "rsa@example.com"],
    ["ed25519", "ed@example.com"],
    ["nistp256", "ec@example.com"],
  ] as const) {
    it(`${algo}: armored and binary detached signatures verify`, async () => {
      const store = newStore();
      await store.addKey(gpg.exportKey(email), { prefix: "example.com" });
      for (const armor of [true, false]) {
        const sig = gpg.detachSign(email, content, { armor });
        expect(await verify(store, sig)).toEqual({
          fingerprint: fps[algo],
          signerFingerprint: fps[algo],
          identities: [expect.stringContaining(email)],
          prefix: "example.com",
        });
      }
    });
  }

  it("a signing subkey works; the verdict names the primary key and the subkey", async () => {
    const g = makeGpg();
    const primary = g.genKey("Sub Signer <sub@example.com>", "ed25519");
    const sub = g.addSigningSubkey(primary, "ed25519");
    const store = newStore();
    await store.addKey(g.exportKey("sub@example.com"), { root: true });
    const sig = g.detachSign("sub@example.com", content);
    expect(await verify(store, sig)).toEqual({
      fingerprint: primary,
      signerFingerprint: sub,
      identities: ["Sub Signer <sub@example.com>"],
      prefix: "",
    });
  });

  it("refuses an unknown signer before opening the content", async () => {
    const store = newStore();
    await store.addKey(gpg.exportKey("rsa@example.com"), { prefix: "example.com" });
    let opened = false;
    await rejects(
      verifyDetached({
        name: "example.com/app",
        open: () => {
          opened = true;
          return Promise.resolve(Readable.from([content]));
        },
        signature: gpg.detachSign("ed@example.com", content),
        keystore: store,
      }),
      ErrorCode.KeyUntrusted,
      unknownEntityMessage,
    );
    expect(opened).toBe(false);
  });

  it("refuses a key trusted for another prefix (and for a string-prefix sibling)", async () => {
    const store = newStore();
    await store.addKey(gpg.exportKey("ed@example.com"), { prefix: "example.com/other" });
    await store.addKey(gpg.exportKey("ed@example.com"), { prefix: "example.com/ap" });
    const sig = gpg.detachSign("ed@example.com", content);
    await rejects(verify(store, sig), ErrorCode.KeyUntrusted, unknownEntityMessage);
    expect(await verify(store, sig, { name: "example.com/other/x" })).toMatchObject({
      prefix: "example.com/other",
    });
  });

  it("refuses tampered content and a signature over different content", async () => {
    const store = newStore();
    await store.addKey(gpg.exportKey("ed@example.com"), { prefix: "example.com" });
    const sig = gpg.detachSign("ed@example.com", content);
    const tampered = Buffer.from(content);
    tampered[100] = tampered[100]! ^ 1;
    await rejects(
      verify(store, sig, { data: tampered }),
      ErrorCode.SignatureInvalid,
      "openpgp: invalid signature: signed digest did not match",
    );
    await rejects(
      verify(store, gpg.detachSign("ed@example.com", other)),
      ErrorCode.SignatureInvalid,
      "openpgp: invalid signature: signed digest did not match",
    );
  });

  it("refuses empty, garbage and multi-signature files", async () => {
    const store = newStore();
    await store.addKey(gpg.exportKey("ed@example.com"), { prefix: "example.com" });
    await rejects(verify(store, new Uint8Array()), ErrorCode.SignatureInvalid, noSignaturesMessage);
    await rejects(
      verify(store, Buffer.from("not a signature")),
      ErrorCode.SignatureInvalid,
      noSignaturesMessage,
    );
    await rejects(
      verify(store, Buffer.from("-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----\n")),
      ErrorCode.SignatureInvalid,
      noSignaturesMessage,
    );
    const two = Buffer.concat([
      gpg.detachSign("ed@example.com", content),
      gpg.detachSign("rsa@example.com", content),
    ]);
    await rejects(
      verify(store, two),
      ErrorCode.SignatureInvalid,
      "signature file contains 2 signatures; exactly one is expected",
    );
  });

  it("refuses expired keys, revoked keys and expired signatures with that reason", async () => {
    const g = makeGpg();
    const old = g.genKey("Old <old@example.com>", "ed25519", { expire: "1d", fakedTime: "20200101T000000" });
    const rev = g.genKey("Rev <rev@example.com>", "ed25519");
    const store = newStore();
    await store.addKey(g.exportKey("old@example.com"), { root: true });
    const oldSig = g.detachSign("old@example.com", content, { fakedTime: "20200101T010000" });
    // Valid at the time it was made; refused now.
    expect(await verify(store, oldSig, { date: new Date("2020-01-01T02:00:00Z") })).toMatchObject({
      fingerprint: old,
    });
    await rejects(
      verify(store, oldSig),
      ErrorCode.SignatureInvalid,
      `signing key ${old} is not valid: primary key is expired`,
    );
    const expiringSig = g.detachSign("old@example.com", content, {
      fakedTime: "20200101T010000",
      expire: "1d",
    });
    await rejects(
      verify(store, expiringSig),
      ErrorCode.SignatureInvalid,
      `signature expired at 2020-01-02T01:00:00.000Z (made by key ${old})`,
    );
    const revSig = g.detachSign("rev@example.com", content);
    g.revoke(rev);
    await store.addKey(g.exportKey("rev@example.com"), { root: true });
    await rejects(
      verify(store, revSig),
      ErrorCode.SignatureInvalid,
      `signing key ${rev} is not valid: primary key is revoked`,
    );
  });

  it("stops on abort with RKT_ABORTED", async () => {
    const store = newStore();
    await store.addKey(gpg.exportKey("ed@example.com"), { prefix: "example.com" });
    const ac = new AbortController();
    await rejects(
      verifyDetached({
        name: "example.com/app",
        open: () =>
          Promise.resolve(
            Readable.from(
              (async function* () {
                yield content;
                ac.abort();
                await new Promise((r) => setTimeout(r, 50));
                yield content;
              })(),
            ),
          ),
        signature: gpg.detachSign("ed@example.com", content),
        keystore: store,
        signal: ac.signal,
      }),
      ErrorCode.Aborted,
      "verification of example.com/app aborted",
    );
  });

  it("passes stream errors through unchanged", async () => {
    const store = newStore();
    await store.addKey(gpg.exportKey("ed@example.com"), { prefix: "example.com" });
    const boom = new Error("disk on fire");
    await rejects(
      verifyDetached({
        name: "example.com/app",
        open: () =>
          Promise.resolve(
            new Readable({
              read() {
                this.destroy(boom);
              },
            }),
          ),
        signature: gpg.detachSign("ed@example.com", content),
        keystore: store,
      }),
      ErrorCode.Io,
      "reading example.com/app: disk on fire",
    );
  });
});

describe("verifyDetached with openpgp keys and signatures", () => {
  const kinds: [string, Omit<Parameters<typeof openpgp.generateKey>[0], "format">][] = [
    ["rsa", { type: "rsa", rsaBits: 2048, userIDs: [{ name: "RSA", email: "rsa@example.org" }] }],
    ["ed25519", { type: "ecc", curve: "ed25519Legacy", userIDs: [{ name: "Ed", email: "ed@example.org" }] }],
    ["p256", { type: "ecc", curve: "nistP256", userIDs: [{ name: "P256", email: "p256@example.org" }] }],
  ];
  for (const [kind, opts] of kinds) {
    it(`${kind}: armored and binary signatures verify through a Verifier`, async () => {
      const { privateKey, publicKey } = await openpgp.generateKey({ ...opts, format: "armored" });
      const priv = await openpgp.readPrivateKey({ armoredKey: privateKey });
      const store = newStore();
      const scope: KeyScope = { prefix: "example.org/app" };
      await store.addKey(publicKey, scope);
      const verifier = createAciVerifier(store);
      const message = await openpgp.createMessage({ binary: content });
      const armored = await openpgp.sign({ message, signingKeys: priv, detached: true, format: "armored" });
      const binary = await openpgp.sign({ message, signingKeys: priv, detached: true, format: "binary" });
      const sigs: Uint8Array[] = [Buffer.from(armored), binary as Uint8Array];
      for (const sig of sigs) {
        const v = await verifier.verify(
          { name: "example.org/app/sub", open: () => Promise.resolve(Readable.from([content])) },
          sig,
        );
        expect(v).toMatchObject({ fingerprint: priv.getFingerprint(), prefix: "example.org/app" });
      }
    });
  }
});

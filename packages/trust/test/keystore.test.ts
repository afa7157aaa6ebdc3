import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ErrorCode, isRktError } from "@rkt/oci";
import {
  KeyStore,
  describeKey,
  formatFingerprint,
  parseArmoredKeyring,
  prefixCovers,
  selectKeys,
  type KeyFileEntry,
} from "@rkt/trust";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { removeTempDirs, tempDir } from "./tmp.js";

afterAll(removeTempDirs);
import { disposeGpgs, makeGpg, type Gpg } from "./gpg.js";

afterAll(disposeGpgs);

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

const entry = (
  layer: "system" | "local",
  prefix: string,
  fingerprint: string,
  empty = false,
): KeyFileEntry => ({
  layer,
  prefix,
  fingerprint,
  empty,
  path: `${layer}/${prefix || "root"}/${fingerprint}`,
});

describe("selectKeys (pure, rkt's TestCheckSignature matrix)", () => {
  const index: KeyFileEntry[] = [
    entry("local", "example.com/app", "app"),
    entry("local", "acme.com/services", "services"),
    entry("local", "acme.com/services/web/nginx", "nginx"),
    entry("local", "", "coreos"),
    entry("system", "", "acme"),
    entry("local", "", "acme", true),
  ];
  const fps = (name: string): string[] => selectKeys(name, index).map((e) => e.fingerprint);
  it.each([
    ["coreos.com/etcd", ["coreos"]],
    ["coreos.com/fleet", ["coreos"]],
    ["example.com/app", ["coreos", "app"]],
    ["acme.com/services/web/nginx", ["coreos", "services", "nginx"]],
    ["acme.com/services/web/auth", ["coreos", "services"]],
    ["acme.com/services/web", ["coreos", "services"]],
    ["acme.com/etcd", ["coreos"]],
  ])("%s -> %j", (name, want) => {
    expect(fps(name)).toEqual(want);
  });

  it("a local prefix file masks a system prefix key and a root key for names under it only", () => {
    const idx = [
      entry("system", "", "k1"),
      entry("system", "a.com/x", "k2"),
      entry("local", "a.com/x", "k2", true),
      entry("local", "a.com/x/y", "k1", true),
    ];
    expect(selectKeys("a.com/x", idx).map((e) => e.fingerprint)).toEqual(["k1"]);
    expect(selectKeys("a.com/x/y", idx).map((e) => e.fingerprint)).toEqual([]);
    expect(selectKeys("b.com", idx).map((e) => e.fingerprint)).toEqual(["k1"]);
  });

  it("an empty system file does not mask a key loaded later (local root)", () => {
    const idx = [entry("system", "", "k", true), entry("local", "", "k")];
    expect(selectKeys("x", idx).map((e) => e.path)).toEqual(["local/root/k"]);
  });

  it("prefixes match by path segment, not rkt's raw string prefix", () => {
    expect(prefixCovers("coreos.com/etcd", "coreos.com/etcd")).toBe(true);
    expect(prefixCovers("coreos.com/etcd", "coreos.com/etcd/sub")).toBe(true);
    expect(prefixCovers("coreos.com/et", "coreos.com/etcd")).toBe(false);
    expect(prefixCovers("coreos.com/etcd", "coreos.com/etcd2")).toBe(false);
    expect(prefixCovers("", "anything")).toBe(true);
  });
});

describe("formatting", () => {
  it("formats fingerprints as gpg and rkt print them", () => {
    expect(formatFingerprint("8b86de38890ddb7291867b025210bd8888182190")).toBe(
      "8B86 DE38 890D DB72 9186  7B02 5210 BD88 8818 2190",
    );
  });
});

describe("KeyStore on disk", () => {
  let gpg: Gpg;
  const k = {} as Record<
    "coreos" | "acme" | "app" | "services" | "nginx" | "nginxSub",
    { fp: string; armored: Buffer }
  >;
  beforeAll(() => {
    gpg = makeGpg();
    for (const n of ["coreos", "acme", "app", "services", "nginx"] as const) {
      const fp = gpg.genKey(`${n} <${n}@example.com>`, "ed25519");
      k[n] = { fp, armored: gpg.exportKey(`${n}@example.com`) };
    }
    const sub = gpg.addSigningSubkey(k.nginx.fp, "ed25519");
    k.nginxSub = { fp: sub, armored: gpg.exportKey(`nginx@example.com`) };
  }, 60_000);

  function layout(): { store: KeyStore; sys: string; loc: string } {
    const root = tempDir("rkt-trust-ks-");
    const sys = join(root, "usr-lib-rkt");
    const loc = join(root, "etc-rkt");
    return { store: new KeyStore({ systemConfigDir: sys, localConfigDir: loc }), sys, loc };
  }
  function put(dir: string, rel: string, fp: string, content: Buffer | string): string {
    const d = join(dir, "trustedkeys", rel);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, fp), content);
    return join(d, fp);
  }

  it("honours a keystore laid out by hand as rkt writes it, including masking", async () => {
    const { store, sys, loc } = layout();
    put(loc, "prefix.d/example.com/app", k.app.fp, k.app.armored);
    put(loc, "prefix.d/acme.com/services", k.services.fp, k.services.armored);
    put(loc, "prefix.d/acme.com/services/web/nginx", k.nginx.fp, k.nginx.armored);
    put(loc, "root.d", k.coreos.fp, k.coreos.armored);
    put(sys, "root.d", k.acme.fp, k.acme.armored);
    put(loc, "root.d", k.acme.fp, "");
    const fps = async (name: string): Promise<string[]> =>
      (await store.keysFor(name)).map((t) => t.fingerprint);
    expect(await fps("coreos.com/etcd")).toEqual([k.coreos.fp]);
    expect(await fps("acme.com/etcd")).toEqual([k.coreos.fp]);
    expect(await fps("acme.com/services/web/auth")).toEqual([k.coreos.fp, k.services.fp]);
    expect(await fps("acme.com/services/web/nginx")).toEqual([k.coreos.fp, k.services.fp, k.nginx.fp]);
    const nginx = (await store.keysFor("acme.com/services/web/nginx")).at(-1)!;
    expect(nginx).toMatchObject({ prefix: "acme.com/services/web/nginx", layer: "local" });
    expect(await store.prefixHasKeys("acme.com/services/x")).toBe(true);
    expect(await store.prefixHasKeys("coreos.com/etcd")).toBe(false); // root keys do not count
    // Without the mask the system root key is back.
    const listed = await store.list();
    expect(listed.map((t) => [t.prefix, t.fingerprint])).toEqual([
      ["", k.coreos.fp],
      ["acme.com/services", k.services.fp],
      ["acme.com/services/web/nginx", k.nginx.fp],
      ["example.com/app", k.app.fp],
    ]);
  });

  it("refuses a key file whose name is not its fingerprint", async () => {
    const { store, loc } = layout();
    const p = put(loc, "prefix.d/example.com", k.acme.fp, k.app.armored);
    await rejects(
      store.keysFor("example.com/app"),
      ErrorCode.KeyUntrusted,
      `fingerprint mismatch: "${p}":"${k.app.fp}"`,
    );
  });

  it("refuses garbage and non-armored key files with error reading key", async () => {
    const { store, loc } = layout();
    const p = put(loc, "prefix.d/example.com", k.app.fp, "hello, not a key\n");
    await rejects(
      store.keysFor("example.com/app"),
      ErrorCode.InvalidArgument,
      `error reading key: ${p}: not an ASCII-armored OpenPGP public key block`,
    );
    const q = layout();
    const p2 = put(q.loc, "root.d", k.app.fp, gpg.exportKey("app@example.com", false));
    await rejects(
      q.store.keysFor("x"),
      ErrorCode.InvalidArgument,
      `error reading key: ${p2}: not an ASCII-armored OpenPGP public key block`,
    );
    const r = layout();
    const armoredGarbage =
      "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n";
    const p3 = put(r.loc, "root.d", k.app.fp, armoredGarbage);
    await rejects(r.store.keysFor("x"), ErrorCode.InvalidArgument, new RegExp(`^error reading key: ${p3}: `));
  });

  it("writes keys as rkt does: local dir, fingerprint name, whole input, 0755/0644", async () => {
    const { store, loc } = layout();
    const path = await store.addKey(k.nginx.armored, { prefix: "acme.com/services/web/nginx" });
    expect(path).toBe(join(loc, "trustedkeys/prefix.d/acme.com/services/web/nginx", k.nginx.fp));
    expect(readFileSync(path, "utf8")).toBe(k.nginx.armored.toString());
    expect(statSync(path).mode & 0o777).toBe(0o644);
    expect(statSync(join(loc, "trustedkeys/prefix.d/acme.com")).mode & 0o777).toBe(0o755);
    const rootPath = await store.addKey(k.coreos.armored.toString(), { root: true });
    expect(rootPath).toBe(join(loc, "trustedkeys/root.d", k.coreos.fp));
    expect((await store.keysFor("acme.com/services/web/nginx")).map((t) => t.fingerprint)).toEqual([
      k.coreos.fp,
      k.nginx.fp,
    ]);
    expect(await store.remove(k.coreos.fp.toUpperCase(), { root: true })).toBe(rootPath);
    await rejects(
      store.remove(k.coreos.fp, { root: true }),
      ErrorCode.NotFound,
      `no trusted key ${k.coreos.fp} for the root at "${rootPath}"`,
    );
    await rejects(
      store.addKey(k.nginx.armored, { prefix: "https://example.com/foo" }),
      ErrorCode.InvalidName,
      /^invalid prefix "https:\/\/example.com\/foo": must be an AC identifier/,
    );
    await rejects(
      store.addKey(gpg.exportKey("app@example.com", false), { root: true }, "app.gpg"),
      ErrorCode.InvalidArgument,
      "error reading key: app.gpg: not an ASCII-armored OpenPGP public key block",
    );
  });

  it("masks a system key with an empty local file", async () => {
    const { store, sys } = layout();
    put(sys, "prefix.d/example.com", k.app.fp, k.app.armored);
    expect((await store.keysFor("example.com/app")).length).toBe(1);
    const mask = await store.maskKey(k.app.fp, { prefix: "example.com" });
    expect(statSync(mask).size).toBe(0);
    expect(await store.keysFor("example.com/app")).toEqual([]);
    expect(await store.prefixHasKeys("example.com/app")).toBe(true); // rkt counts non-empty files anywhere
  });

  it("describes keys, subkeys and identities as rkt trust prints them", async () => {
    const parsed = await parseArmoredKeyring(k.nginxSub.armored, "nginx.asc");
    const d = describeKey(parsed.keys[0]!);
    expect(d.fingerprint).toBe(k.nginx.fp);
    expect(d.lines).toEqual([
      `gpg key fingerprint is: ${formatFingerprint(k.nginx.fp)}`,
      `    Subkey fingerprint: ${formatFingerprint(k.nginxSub.fp)}`,
      "\tnginx <nginx@example.com>",
    ]);
    expect(d.lines[0]).toMatch(
      /^gpg key fingerprint is: ([0-9A-F]{4} ){4}[0-9A-F]{4} {2}([0-9A-F]{4} ){4}[0-9A-F]{4}$/,
    );
  });
});

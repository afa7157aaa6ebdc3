// Signed bundles between two machines, each with its own store, keystore and policy.json, and
// real GnuPG keys: a round trip; keys in the bundle never trusted on their own; tampering (one
// byte of one layer, signatures swapped between images, a key replaced) refused with nothing of
// the refused image visible and the rest of the bundle loaded and reported.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buffer } from "node:stream/consumers";
import { writeAci } from "@rkt/appc";
import { ErrorCode, digestOf } from "@rkt/oci";
import { LocalStore, fsck, listImages } from "@rkt/store";
import { gnupgHome, writeOciLayout, writeOciLayoutIndex, type GnupgHome } from "@rkt/testkit";
import { KeyStore, createSimpleSignature, writeLookasideSignature } from "@rkt/trust";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  bundleAnnotation,
  importOciLayout,
  inspectBundle,
  machineTrust,
  openLoadableArchive,
  openOciLayout,
  parseBundleDescription,
  saveBundle,
  type BundleDescription,
  type LoadResult,
} from "../src/index.js";

let tmp: string;
let gnupg: GnupgHome;
let bundle: string;
let sent: Map<string, string>;
const names = ["one", "two", "three"] as const;

interface Machine {
  dirs: { system: string; local: string };
  store: LocalStore;
}

async function machine(name: string): Promise<Machine> {
  const root = mkdtempSync(join(tmp, `${name}-`));
  const dirs = { system: join(root, "lib"), local: join(root, "etc") };
  mkdirSync(dirs.local, { recursive: true });
  return { dirs, store: await LocalStore.open(join(root, "store")) };
}

const trustOf = (m: Machine) => machineTrust({ configDirs: m.dirs, home: tmp });

function pubKey(who: string): string {
  const p = join(tmp, `${who}.pub.asc`);
  writeFileSync(p, gnupg.exportKey(`${who}@example.com`));
  return p;
}

// The receiving side's policy: images under example.com/app must be signed by `who`.
function policy(m: Machine, who: string): void {
  const req = [{ type: "signedBy", keyType: "GPGKeys", keyPath: pubKey(who) }];
  writeFileSync(
    join(m.dirs.local, "policy.json"),
    JSON.stringify({ default: [{ type: "reject" }], transports: { docker: { "example.com/app": req } } }),
  );
}

async function aci(name: string): Promise<Buffer> {
  const manifest = {
    acKind: "ImageManifest",
    acVersion: "0.8.11",
    name,
    labels: [
      { name: "version", value: "1.0" },
      { name: "os", value: "linux" },
      { name: "arch", value: "amd64" },
    ],
  };
  const entries = [{ header: { name: "tool.txt", type: "file" as const }, body: `${name}\n` }];
  return buffer(writeAci(JSON.stringify(manifest), entries));
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-bundle-"));
  gnupg = gnupgHome(join(tmp, "gnupg"));
  gnupg.generateKey("Alice Releaser <alice@example.com>");
  gnupg.generateKey("Acme Tools <acme@example.com>");
  gnupg.generateKey("Mallory <mallory@example.com>");
  const sender = await machine("sender");
  try {
    policy(sender, "alice");
    await new KeyStore({ systemConfigDir: sender.dirs.system, localConfigDir: sender.dirs.local }).addKey(
      gnupg.exportKey("acme@example.com"),
      { prefix: "example.com/tool" },
    );
    const alice = gnupg.gpg(["--armor", "--export-secret-keys", "alice@example.com"]).toString();
    const lookaside = `file://${join(tmp, "lookaside")}`;
    sent = new Map();
    for (const n of names) {
      const dir = join(tmp, `layout-${n}`);
      await writeOciLayout(
        dir,
        { layers: [[{ path: `${n}.bin`, type: "file", content: randomBytes(200_000) }]] },
        { ref: `example.com/app/${n}:1` },
      );
      const r = await importOciLayout(sender.store, await openOciLayout(dir));
      sent.set(n, r.id);
      const sig = await createSimpleSignature({
        dockerReference: `example.com/app/${n}:1`,
        manifestDigest: r.id,
        privateKeyArmored: alice,
      });
      await writeLookasideSignature(lookaside, `app/${n}`, r.id, sig);
    }
    const toolAci = join(tmp, "tool.aci");
    const bytes = await aci("example.com/tool");
    writeFileSync(toolAci, bytes);
    writeFileSync(`${toolAci}.asc`, gnupg.sign("acme@example.com", bytes));
    bundle = join(tmp, "bundle.tar");
    const r = await saveBundle(
      bundle,
      [...names.map((n) => ({ image: `example.com/app/${n}:1` })), { image: toolAci }],
      {
        transport: { store: sender.store, client: () => expect.unreachable("no registry here") },
        trust: await trustOf(sender),
        lookaside: join(tmp, "lookaside"),
        creator: "rkt test",
      },
    );
    sent.set("tool", r.description.images[3]!.kind === "aci" ? r.description.images[3]!.id! : "");
  } finally {
    sender.store.close();
  }
}, 60_000);

afterAll(() => {
  gnupg?.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function load(m: Machine, file = bundle): Promise<LoadResult[]> {
  const a = await openLoadableArchive(m.store, file);
  try {
    return await a.load({ trust: await trustOf(m) });
  } finally {
    await a.close();
  }
}

const statuses = (rs: readonly LoadResult[]) => Object.fromEntries(rs.map((r) => [r.image, r.status]));
const stored = (m: Machine) =>
  listImages(m.store)
    .map((i) => i.id)
    .sort();

async function trustAcme(m: Machine): Promise<void> {
  await new KeyStore({ systemConfigDir: m.dirs.system, localConfigDir: m.dirs.local }).addKey(
    gnupg.exportKey("acme@example.com"),
    { prefix: "example.com/tool" },
  );
}

// Unpacks the bundle, lets `edit` change its files (index.json parsed), and packs it again.
function rewrite(
  name: string,
  edit: (dir: string, index: { annotations: Record<string, string> }) => void,
): string {
  const dir = mkdtempSync(join(tmp, "edit-"));
  execFileSync("tar", ["-xf", bundle, "-C", dir]);
  const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8")) as {
    annotations: Record<string, string>;
  };
  edit(dir, index);
  writeFileSync(join(dir, "index.json"), JSON.stringify(index));
  const out = join(tmp, name);
  execFileSync("tar", ["-cf", out, "-C", dir, "oci-layout", "index.json", "blobs"]);
  return out;
}

const described = (index: { annotations: Record<string, string> }): BundleDescription =>
  parseBundleDescription(index.annotations[bundleAnnotation]!, "test");
const blobPath = (dir: string, digest: string) => join(dir, "blobs", ...digest.split(":"));

describe("signed bundles", () => {
  it("describes what it holds: images, their signatures and signers, and the keys", async () => {
    const d = await inspectBundle(bundle);
    expect(d.images.map((i) => [i.kind, i.name])).toEqual([
      ["oci", "example.com/app/one:1"],
      ["oci", "example.com/app/two:1"],
      ["oci", "example.com/app/three:1"],
      ["aci", "example.com/tool"],
    ]);
    const fps = d.keys.map((k) => k.identities[0]);
    expect(fps).toEqual(["Alice Releaser <alice@example.com>", "Acme Tools <acme@example.com>"]);
    for (const i of d.images) expect(i.signatures).toHaveLength(1);
    const one = d.images[0]!;
    expect(one.signatures[0]).toMatchObject({ signs: sent.get("one"), reference: "example.com/app/one:1" });
    expect(one.signatures[0]!.fingerprint).toBe(d.keys[0]!.fingerprint);
  });

  it("round trip: every image loads on a machine whose own policy and keystore trust the signers", async () => {
    const m = await machine("recv");
    try {
      policy(m, "alice");
      await trustAcme(m);
      const first = await load(m);
      expect(statuses(first)).toEqual({
        "example.com/app/one:1": "loaded",
        "example.com/app/two:1": "loaded",
        "example.com/app/three:1": "loaded",
        "example.com/tool": "loaded",
      });
      expect(stored(m)).toEqual([...sent.values()].sort());
      expect(first.map((r) => r.id)).toEqual([...names.map((n) => sent.get(n)), sent.get("tool")]);
      // Run again: everything is there; only manifests and signatures are read.
      const again = await load(m);
      expect(new Set(again.map((r) => r.status))).toEqual(new Set(["present"]));
      for (const r of again) expect(r.bytesRead).toBeLessThan(4096);
      expect((await fsck(m.store)).problems).toEqual([]);
    } finally {
      m.store.close();
    }
  });

  it("keys in the bundle are never trusted on their own; once trusted for the names they signed, they admit", async () => {
    const m = await machine("bare");
    try {
      const rs = await load(m);
      expect(new Set(rs.map((r) => r.status))).toEqual(new Set(["refused"]));
      expect(rs.map((r) => r.error?.code)).toEqual([
        ErrorCode.KeyUntrusted,
        ErrorCode.KeyUntrusted,
        ErrorCode.KeyUntrusted,
        ErrorCode.KeyUntrusted,
      ]);
      expect(rs[0]!.error?.message).toContain('no key trusted for "example.com/app/one"');
      expect(stored(m)).toEqual([]);
      expect((await fsck(m.store)).problems).toEqual([]);
      // What `--trust-bundle-keys` stores after the review: each key for the names it signed.
      const a = await openLoadableArchive(m.store, bundle);
      const keys = await a.keys();
      await a.close();
      expect(keys.map((k) => [k.prefixes, k.problem])).toEqual([
        [["example.com/app/one", "example.com/app/two", "example.com/app/three"], undefined],
        [["example.com/tool"], undefined],
      ]);
      const ks = new KeyStore({ systemConfigDir: m.dirs.system, localConfigDir: m.dirs.local });
      for (const k of keys) for (const prefix of k.prefixes) await ks.addKey(k.armored, { prefix });
      expect(new Set((await load(m)).map((r) => r.status))).toEqual(new Set(["loaded"]));
      expect(stored(m)).toEqual([...sent.values()].sort());
    } finally {
      m.store.close();
    }
  });

  it("one flipped byte in one layer: that image is refused, nothing of it visible; the rest load", async () => {
    const file = rewrite("flipped.tar", (dir) => {
      const manifest = JSON.parse(readFileSync(blobPath(dir, sent.get("two")!), "utf8")) as {
        layers: { digest: string }[];
      };
      const layer = blobPath(dir, manifest.layers[0]!.digest);
      const b = readFileSync(layer);
      b[b.length >> 1]! ^= 0x01;
      writeFileSync(layer, b);
    });
    const m = await machine("flip");
    try {
      policy(m, "alice");
      await trustAcme(m);
      const rs = await load(m, file);
      expect(statuses(rs)).toEqual({
        "example.com/app/one:1": "loaded",
        "example.com/app/two:1": "refused",
        "example.com/app/three:1": "loaded",
        "example.com/tool": "loaded",
      });
      expect(rs[1]!.error?.code).toBe(ErrorCode.DigestMismatch);
      expect(stored(m)).not.toContain(sent.get("two"));
      expect(stored(m)).toHaveLength(3);
      const report = await fsck(m.store);
      expect(report.problems).toEqual([]);
      expect(readdirSync(m.store.paths.ingest)).toEqual([]);
    } finally {
      m.store.close();
    }
  });

  it("signatures swapped between two images: both refused, naming the digest; the others load", async () => {
    const file = rewrite("swapped.tar", (_dir, index) => {
      const d = described(index);
      const [one, two] = d.images as [
        BundleDescription["images"][number],
        BundleDescription["images"][number],
      ];
      const swapped = {
        ...d,
        images: [
          { ...one, signatures: two.signatures },
          { ...two, signatures: one.signatures },
          ...d.images.slice(2),
        ],
      };
      index.annotations[bundleAnnotation] = JSON.stringify(swapped);
    });
    const m = await machine("swap");
    try {
      policy(m, "alice");
      await trustAcme(m);
      const rs = await load(m, file);
      expect(rs.map((r) => r.status)).toEqual(["refused", "refused", "loaded", "loaded"]);
      expect(rs[0]!.error?.code).toBe(ErrorCode.SignatureInvalid);
      expect(rs[0]!.error?.message).toContain(`signature is for manifest digest ${sent.get("two")}`);
      expect(stored(m)).toEqual([sent.get("three"), sent.get("tool")].sort());
    } finally {
      m.store.close();
    }
  });

  it("a key replaced: the blob that is not the key named is flagged; an image re-signed with it is refused", async () => {
    const mallory = gnupg.gpg(["--armor", "--export-secret-keys", "mallory@example.com"]).toString();
    const forged = await createSimpleSignature({
      dockerReference: "example.com/app/one:1",
      manifestDigest: sent.get("one")!,
      privateKeyArmored: mallory,
    });
    const malloryPub = gnupg.exportKey("mallory@example.com");
    // Alice's key blob holds Mallory's key, and image one carries Mallory's signature instead.
    const file = rewrite("rekeyed.tar", (dir, index) => {
      const d = described(index);
      const alice = d.keys[0]!;
      const key = {
        mediaType: alice.descriptor.mediaType,
        digest: digestOf(malloryPub),
        size: malloryPub.length,
      };
      writeFileSync(blobPath(dir, key.digest), malloryPub);
      const sig = {
        mediaType: "application/vnd.rkt.simple-signing.v1",
        digest: digestOf(forged),
        size: forged.length,
      };
      writeFileSync(blobPath(dir, sig.digest), forged);
      const one = d.images[0]!;
      const changed = {
        ...d,
        images: [{ ...one, signatures: [{ ...one.signatures[0]!, descriptor: sig }] }, ...d.images.slice(1)],
        keys: [{ ...alice, descriptor: key }, ...d.keys.slice(1)],
      };
      index.annotations[bundleAnnotation] = JSON.stringify(changed);
    });
    const m = await machine("rekey");
    try {
      const a = await openLoadableArchive(m.store, file);
      const keys = await a.keys();
      await a.close();
      expect(keys[0]!.problem).toMatch(/^the bundle names key [0-9a-f]{40}, the blob holds [0-9a-f]{40}$/);
      policy(m, "alice");
      await trustAcme(m);
      const rs = await load(m, file);
      expect(rs.map((r) => r.status)).toEqual(["refused", "loaded", "loaded", "loaded"]);
      expect(rs[0]!.error?.message).toContain("signature made by unknown key");
      expect(stored(m)).not.toContain(sent.get("one"));
    } finally {
      m.store.close();
    }
  });

  it("--all: an index with every platform and its signature over the index; the loader picks a platform", async () => {
    const sender = await machine("multi-sender");
    const dir = join(tmp, "layout-multi");
    const idx = await writeOciLayoutIndex(
      dir,
      ["amd64", "arm64"].map((architecture) => ({
        os: "linux",
        architecture,
        layers: [[{ path: `${architecture}.bin`, type: "file" as const, content: randomBytes(50_000) }]],
      })),
      { ref: "example.com/app/multi:1" },
    );
    const la = join(tmp, "lookaside-multi");
    const alice = gnupg.gpg(["--armor", "--export-secret-keys", "alice@example.com"]).toString();
    const sig = await createSimpleSignature({
      dockerReference: "example.com/app/multi:1",
      manifestDigest: idx.descriptor.digest,
      privateKeyArmored: alice,
    });
    await writeLookasideSignature(`file://${la}`, "app/multi", idx.descriptor.digest, sig);
    const file = join(tmp, "multi.tar");
    try {
      policy(sender, "alice");
      const r = await saveBundle(file, [{ image: `oci:${dir}:example.com/app/multi:1` }], {
        transport: { store: sender.store, client: () => expect.unreachable("no registry here") },
        trust: await trustOf(sender),
        lookaside: la,
        all: true,
      });
      expect(r.description.images[0]).toMatchObject({
        kind: "oci",
        name: "example.com/app/multi:1",
        descriptor: { digest: idx.descriptor.digest },
        platforms: ["linux/amd64", "linux/arm64"],
      });
    } finally {
      sender.store.close();
    }
    for (const [architecture, i] of [
      ["amd64", 0],
      ["arm64", 1],
    ] as const) {
      const m = await machine(`multi-${architecture}`);
      try {
        policy(m, "alice");
        const a = await openLoadableArchive(m.store, file);
        const rs = await a.load({ trust: await trustOf(m), platform: { os: "linux", architecture } });
        await a.close();
        expect(rs).toMatchObject([{ status: "loaded", id: idx.images[i]!.descriptor.digest }]);
        expect(stored(m)).toEqual([idx.images[i]!.descriptor.digest]);
      } finally {
        m.store.close();
      }
    }
  });

  it("refuses a description that does not parse, naming the path in it", () => {
    expect(() =>
      parseBundleDescription(
        '{"version":1,"created":"x","creator":"y","images":[],"keys":[],"x":1}',
        "b.tar",
      ),
    ).toThrow("b.tar: bundle description: $.x: unknown field");
    expect(() =>
      parseBundleDescription(
        '{"version":1,"created":"x","creator":"y","images":[{"kind":"oci","name":"a:1","size":1,"signatures":[],"descriptor":{"mediaType":"m","digest":"sha256:12","size":1}}],"keys":[]}',
        "b.tar",
      ),
    ).toThrow(/\$\.images\[0\]\.descriptor\.digest: /);
  });
});

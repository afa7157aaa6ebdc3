import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorCode, isRktError } from "@rkt/oci";
import {
  findImageByName,
  fsck,
  gc,
  getImage,
  importAci,
  isImageIdSyntax,
  listImages,
  parseImageName,
  removeImages,
  resolveImage,
  resolveImageKey,
  touchImage,
  type LocalStore,
} from "@rkt/store";
import { makeAci, readable, tempStore, type TempStore } from "./helpers.js";
import { indexDb } from "../src/internal/index-db.js";

let t: TempStore;
beforeEach(async () => {
  t = await tempStore();
});
afterEach(async () => {
  await t.cleanup();
});

function insertImage(
  store: LocalStore,
  id: string,
  o: {
    name?: string;
    labels?: Record<string, string>;
    latest?: boolean;
    importTime?: number;
    lastUsed?: number;
    size?: number;
  } = {},
): void {
  indexDb(store)
    .prepare(
      `INSERT INTO images (id, kind, name, labels, manifest_digest, size, import_time, last_used, latest)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .run(
      id,
      id.startsWith("sha512-") ? "aci" : "oci",
      o.name ?? "example.com/x",
      JSON.stringify(o.labels ?? {}),
      id,
      o.size ?? 1,
      o.importTime ?? 1000,
      o.lastUsed ?? o.importTime ?? 1000,
      o.latest === true ? 1 : 0,
    );
}

function err(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    if (isRktError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error("expected a failure");
}

const key = (hex: string): string => `sha512-${hex.padEnd(64, "0")}`;

describe("resolveImageKey (rkt TestResolveKey)", () => {
  const full =
    "67147019a5b56f5e2ee01e989a8aa4787f56b8445960be2d8678391cf111009bc0780f31001fd181a2b61507547aee4caa44cda4b8bdb238d0e4ba830069ed2c";
  beforeEach(() => {
    for (const hex of ["1234567890", "abcdefabc", "abcabcabc", "abc012345", full.slice(0, 64)])
      insertImage(t.store, key(hex));
  });

  it("resolves full 128-hex and 64-hex keys to the stored 64-hex ID", () => {
    expect(resolveImageKey(t.store, `sha512-${full}`)).toBe(`sha512-${full.slice(0, 64)}`);
    expect(resolveImageKey(t.store, `sha512-${full.slice(0, 64)}`)).toBe(`sha512-${full.slice(0, 64)}`);
  });

  it("resolves a unique prefix", () => {
    expect(resolveImageKey(t.store, "sha512-123")).toBe(key("1234567890"));
    expect(resolveImageKey(t.store, "sha512-12")).toBe(key("1234567890"));
  });

  it("refuses ambiguous, short, unknown and wrongly prefixed keys with rkt's messages", () => {
    expect(err(() => resolveImageKey(t.store, "sha512-abc"))).toEqual({
      code: ErrorCode.Ambiguous,
      message: 'ambiguous image ID: "sha512-abc"',
    });
    expect(err(() => resolveImageKey(t.store, "sha512-1"))).toEqual({
      code: ErrorCode.InvalidArgument,
      message: "image ID too short",
    });
    expect(err(() => resolveImageKey(t.store, "badprefix-1"))).toEqual({
      code: ErrorCode.InvalidArgument,
      message: "wrong key prefix",
    });
    expect(err(() => resolveImageKey(t.store, "sha512-ffff"))).toEqual({
      code: ErrorCode.NotFound,
      message: "no image IDs found",
    });
  });

  it("resolves OCI manifest digests by prefix too", () => {
    const oci = `sha256:${"ab".repeat(32)}`;
    insertImage(t.store, oci);
    expect(resolveImageKey(t.store, "sha256:abab")).toBe(oci);
    expect(resolveImage(t.store, oci)).toBe(oci);
    expect(err(() => resolveImageKey(t.store, "sha256:a")).message).toBe("image ID too short");
  });

  it("classifies arguments syntactically like rkt", () => {
    expect(isImageIdSyntax("sha512-abc")).toBe(true);
    expect(isImageIdSyntax("sha256:abc")).toBe(true);
    // two '-': a name, which then fails the name lookup
    expect(isImageIdSyntax("sha512-not-existed")).toBe(false);
    expect(err(() => resolveImage(t.store, "sha512-not-existed"))).toEqual({
      code: ErrorCode.NotFound,
      message: 'cannot find aci satisfying name: "sha512-not-existed" and labels: "" in the local store',
    });
  });
});

describe("findImageByName (rkt TestGetAci)", () => {
  beforeEach(() => {
    insertImage(t.store, key("01"), { name: "example.com/test01", importTime: 1 });
    insertImage(t.store, key("02"), {
      name: "example.com/test02",
      labels: { version: "1.0.0" },
      latest: true,
      importTime: 2,
    });
    insertImage(t.store, key("03"), {
      name: "example.com/test02",
      labels: { version: "2.0.0" },
      importTime: 3,
    });
  });

  it("finds by name and labels; the latest flag beats a newer import", () => {
    expect(resolveImage(t.store, "example.com/test01")).toBe(key("01"));
    expect(resolveImage(t.store, "example.com/test02:1.0.0")).toBe(key("02"));
    expect(resolveImage(t.store, "example.com/test02,version=2.0.0")).toBe(key("03"));
    expect(resolveImage(t.store, "example.com/test02")).toBe(key("02"));
  });

  it("prefers the newest import among equals", () => {
    insertImage(t.store, key("04"), { name: "example.com/test01", importTime: 10 });
    expect(findImageByName(t.store, { name: "example.com/test01", labels: {} })).toBe(key("04"));
  });

  it("reports a missing name with rkt's message", () => {
    expect(err(() => resolveImage(t.store, "example.com/nonexistentaci"))).toEqual({
      code: ErrorCode.NotFound,
      message:
        'cannot find aci satisfying name: "example.com/nonexistentaci" and labels: "" in the local store',
    });
    expect(err(() => resolveImage(t.store, "example.com/test02:3.0.0,os=linux")).message).toBe(
      'cannot find aci satisfying name: "example.com/test02" and labels: "version=3.0.0,os=linux" in the local store',
    );
  });

  it("parses app strings", () => {
    expect(parseImageName("example.com/app:1.0,os=linux")).toEqual({
      name: "example.com/app",
      labels: { version: "1.0", os: "linux" },
    });
    expect(parseImageName("localhost:5000/app")).toEqual({ name: "localhost:5000/app", labels: {} });
    expect(err(() => parseImageName("x,os")).code).toBe(ErrorCode.InvalidArgument);
  });
});

describe("listImages", () => {
  it("sorts by the requested fields and order, counting tree sizes per tree", () => {
    insertImage(t.store, key("a1"), { name: "c", importTime: 3, lastUsed: 30, size: 10 });
    insertImage(t.store, key("a2"), { name: "a", importTime: 1, lastUsed: 50, size: 30 });
    insertImage(t.store, key("a3"), { name: "b", importTime: 2, lastUsed: 40, size: 20 });
    const tree = indexDb(t.store).prepare(
      "INSERT INTO trees (id, image_id, size, created, last_used) VALUES (?, ?, ?, 0, 0)",
    );
    tree.run("tree-1", key("a1"), 15);
    tree.run("tree-2", key("a1"), 10);
    expect(listImages(t.store).map((i) => i.name)).toEqual(["a", "b", "c"]);
    expect(listImages(t.store, { sort: "name", order: "desc" }).map((i) => i.name)).toEqual(["c", "b", "a"]);
    expect(listImages(t.store, { sort: "lastused" }).map((i) => i.name)).toEqual(["c", "b", "a"]);
    expect(listImages(t.store, { sort: "size" }).map((i) => [i.name, i.size + i.treeSize])).toEqual([
      ["b", 20],
      ["a", 30],
      ["c", 35],
    ]);
    expect(getImage(t.store, key("a1")).treeSize).toBe(25);
  });

  it("lists 10,000 images well within 0.3 s", () => {
    const ins = indexDb(t.store).prepare(
      "INSERT INTO images (id, kind, name, labels, manifest_digest, size, import_time, last_used, latest) VALUES (?, 'aci', ?, '{\"version\":\"1\"}', ?, 1, ?, ?, 0)",
    );
    indexDb(t.store).transaction(() => {
      for (let i = 0; i < 10_000; i++)
        ins.run(`sha512-${i.toString(16).padStart(64, "0")}`, `example.com/app${i % 100}`, "x", i, i);
    })();
    const start = performance.now();
    const all = listImages(t.store);
    const ms = performance.now() - start;
    expect(all).toHaveLength(10_000);
    expect(ms).toBeLessThan(300);
  });
});

describe("removeImages and gc", () => {
  it("removes an image with its blob, refs and trees; reports unknown IDs", async () => {
    const aci = await makeAci("example.com/rm");
    const { id } = await importAci(t.store, readable(aci));
    indexDb(t.store)
      .prepare("INSERT INTO trees (id, image_id, size, created, last_used) VALUES ('tree-x', ?, 5, 0, 0)")
      .run(id);
    const res = await removeImages(t.store, [id, id, key("ff")]);
    expect(res.map((r) => [r.id, r.removed, r.error?.code])).toEqual([
      [id, true, undefined],
      [key("ff"), false, ErrorCode.NotFound],
    ]);
    expect(res[0]!.freedBytes).toBeGreaterThanOrEqual(aci.length);
    expect(await readdir(join(t.dir, "cas", "blobs", "sha512"))).toEqual([]);
    expect((await fsck(t.store)).clean).toBe(true);
  });

  it("refuses to remove an image a GC root (pod) holds", async () => {
    const { id } = await importAci(t.store, readable(await makeAci("example.com/held")));
    const pod = t.store.createLease({ id: "pod-1", process: false });
    t.store.leaseAdd(pod, "image", id);
    const [r] = await removeImages(t.store, [id]);
    expect(r!.removed).toBe(false);
    expect(r!.error?.code).toBe(ErrorCode.Unavailable);
    t.store.deleteLease(pod);
    expect((await removeImages(t.store, [id]))[0]!.removed).toBe(true);
  });

  it("gc removes images unused for longer than the grace period, oldest first, stopping at the first recent one", async () => {
    const a = await importAci(t.store, readable(await makeAci("example.com/a")));
    const b = await importAci(t.store, readable(await makeAci("example.com/b")));
    const c = await importAci(t.store, readable(await makeAci("example.com/c")));
    touchImage(t.store, a.id, 1_000);
    touchImage(t.store, b.id, 5_000);
    touchImage(t.store, c.id, 2_000);
    const pod = t.store.createLease({ process: false });
    t.store.leaseAdd(pod, "image", c.id);
    const report = await gc(t.store, { now: 10_000, gracePeriodMs: 6_000 });
    // a (age 9000) removed; c (age 8000) held by the pod; b (age 5000) within grace stops the scan.
    expect(report.removedImages).toEqual([a.id]);
    expect(
      listImages(t.store)
        .map((i) => i.id)
        .sort(),
    ).toEqual([b.id, c.id].sort());
    expect((await fsck(t.store)).clean).toBe(true);
  });

  it("gc --trees-only keeps images; trees held by a lease stay", async () => {
    const a = await importAci(t.store, readable(await makeAci("example.com/a")));
    const tree = indexDb(t.store).prepare(
      "INSERT INTO trees (id, image_id, size, created, last_used) VALUES (?, ?, 1, 0, 0)",
    );
    tree.run("t1", a.id);
    tree.run("t2", a.id);
    const pod = t.store.createLease({ process: false });
    t.store.leaseAdd(pod, "tree", "t2");
    const r = await gc(t.store, { treesOnly: true, gracePeriodMs: 0 });
    expect(r.removedTrees).toEqual(["t1"]);
    expect(r.removedImages).toEqual([]);
    expect(listImages(t.store)).toHaveLength(1);
    // the image is protected while one of its trees is held
    expect((await gc(t.store, { imagesOnly: true, gracePeriodMs: 0 })).removedImages).toEqual([]);
  });

  it("gc removes expired leases' protection and stale ingests of dead owners", async () => {
    const w = await t.store.writer({ ref: "stale" });
    w.stream.write(Buffer.from("partial"));
    await w.close();
    const lease = t.store.createLease({ process: false, expiresAt: Date.now() - 1 });
    expect(t.store.liveLeaseIds().has(lease)).toBe(false);
    const r = await gc(t.store, { gracePeriodMs: 0 });
    expect(r.removedIngests).toEqual(["stale"]);
    expect((await fsck(t.store)).clean).toBe(true);
  });

  it("gc keeps a blob a live lease protects, and takes it once the lease is gone", async () => {
    const w = await t.store.writer({ ref: "leased" });
    w.stream.write(Buffer.from("leased content"));
    const lease = t.store.createLease();
    const desc = await (async () => {
      const d = await w.commit();
      t.store.leaseAdd(lease, "blob", d.digest);
      return d;
    })();
    expect((await gc(t.store, { gracePeriodMs: 0 })).removedBlobs).toEqual([]);
    expect((await t.store.info(desc.digest)).size).toBe(14);
    t.store.deleteLease(lease);
    expect((await gc(t.store, { gracePeriodMs: 0 })).removedBlobs).toEqual([desc.digest]);
    expect((await fsck(t.store)).clean).toBe(true);
  });

  it("gc with 10,000 unused images finishes within 3 s", async () => {
    const ins = indexDb(t.store).prepare(
      "INSERT INTO images (id, kind, name, labels, manifest_digest, size, import_time, last_used, latest) VALUES (?, 'aci', 'n', '{}', ?, 1, 0, 0, 0)",
    );
    indexDb(t.store).transaction(() => {
      for (let i = 0; i < 10_000; i++) ins.run(`sha512-${i.toString(16).padStart(64, "0")}`, "x");
    })();
    const start = performance.now();
    const r = await gc(t.store, { gracePeriodMs: 1000 });
    expect(r.removedImages).toHaveLength(10_000);
    expect(performance.now() - start).toBeLessThan(3000);
  });
});

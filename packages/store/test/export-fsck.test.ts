import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, mkdir, readFile, readdir, readlink, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorCode, isRktError } from "@rkt/oci";
import {
  exportImage,
  extractImage,
  fsck,
  getImage,
  importAci,
  importOciImage,
  listImages,
  resolveImage,
  type LocalStore,
} from "@rkt/store";
import { makeAci, makeOciImage, makeTar, readable, tempStore, type TempStore } from "./helpers.js";
import { indexDb } from "../src/internal/index-db.js";

let t: TempStore;
beforeEach(async () => {
  t = await tempStore();
});
afterEach(async () => {
  await t.cleanup();
});

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    if (isRktError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error("expected a failure");
}

function hasTool(name: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${name}`]);
    return true;
  } catch {
    return false;
  }
}

describe("exportImage", () => {
  it("writes the stored ACI bytes, whose sha512 is the ID; refuses to overwrite without the flag", async () => {
    const aci = await makeAci("example.com/exp");
    const { id } = await importAci(t.store, readable(aci));
    const out = join(t.dir, "out.aci");
    await exportImage(t.store, id, out);
    const bytes = await readFile(out);
    expect(`sha512-${createHash("sha512").update(bytes).digest("hex").slice(0, 64)}`).toBe(id);
    expect((await stat(out)).mode & 0o777).toBe(0o644);
    expect(await failure(exportImage(t.store, id, out))).toEqual({
      code: ErrorCode.AlreadyExists,
      message: "output ACI file exists (try --overwrite)",
    });
    await exportImage(t.store, id, out, { overwrite: true });
    expect((await readdir(t.dir)).filter((n) => n.includes(".rkt-"))).toEqual([]);
  });

  it("writes an OCI image as an OCI archive that re-imports to the same ID (and skopeo reads)", async () => {
    const img = makeOciImage([await makeTar([{ name: "hello", body: "hi" }])]);
    await importOciImage(t.store, { rawManifest: img.raw, source: img.source, name: "x/y", tag: "v1" });
    const out = join(t.dir, "img.tar");
    await exportImage(t.store, img.digest, out, { tag: "v1" });
    const dir = join(t.dir, "unpacked");
    await mkdir(dir);
    execFileSync("tar", ["-xf", out, "-C", dir]);
    expect(JSON.parse(await readFile(join(dir, "oci-layout"), "utf8"))).toEqual({
      imageLayoutVersion: "1.0.0",
    });
    const index = JSON.parse(await readFile(join(dir, "index.json"), "utf8")) as {
      manifests: { digest: string; size: number; annotations: Record<string, string> }[];
    };
    expect(index.manifests[0]).toMatchObject({
      digest: img.digest,
      size: img.raw.length,
      annotations: { "org.opencontainers.image.ref.name": "v1" },
    });
    for (const [d, b] of img.blobs)
      expect((await readFile(join(dir, "blobs", "sha256", d.slice(7)))).equals(b)).toBe(true);
    expect((await readFile(join(dir, "blobs", "sha256", img.digest.slice(7)))).equals(img.raw)).toBe(true);
    if (hasTool("skopeo")) {
      const raw = execFileSync("skopeo", ["inspect", "--raw", `oci-archive:${out}:v1`]);
      expect(raw.equals(img.raw)).toBe(true);
    }
  });
});

async function plantAci(store: LocalStore, bytes: Buffer): Promise<string> {
  const w = await store.writer({ ref: "plant", algorithm: "sha512" });
  await pipeline(readable(bytes), w.stream);
  const desc = await w.commit();
  const id = `sha512-${desc.digest.slice(7, 71)}`;
  indexDb(store)
    .prepare(
      "INSERT INTO images (id, kind, name, labels, manifest_digest, manifest, size, import_time, last_used) VALUES (?, 'aci', 'x', '{}', ?, ?, ?, 0, 0)",
    )
    .run(id, desc.digest, Buffer.from("{}"), desc.size);
  indexDb(store)
    .prepare("INSERT INTO image_blobs (image_id, digest, role) VALUES (?, ?, 'aci')")
    .run(id, desc.digest);
  return id;
}

describe("extractImage", () => {
  it("extracts manifest and rootfs, or the rootfs alone", async () => {
    const aci = await makeAci("example.com/ex", {}, [
      { name: "rootfs/bin", type: "directory" },
      { name: "rootfs/bin/tool", body: "#!/bin/sh\n", mode: 0o755 },
      { name: "rootfs/bin/alias", type: "symlink", linkname: "tool" },
      { name: "rootfs/bin/hard", type: "link", linkname: "rootfs/bin/tool" },
    ]);
    const { id } = await importAci(t.store, readable(aci));
    const out = join(t.dir, "x");
    await extractImage(t.store, id, out);
    expect((await readdir(out)).sort()).toEqual(["manifest", "rootfs"]);
    expect(await readFile(join(out, "rootfs/etc/hello"), "utf8")).toBe("hello from example.com/ex\n");
    expect((await stat(join(out, "rootfs/bin/tool"))).mode & 0o777).toBe(0o755);
    expect(await readlink(join(out, "rootfs/bin/alias"))).toBe("tool");
    expect((await stat(join(out, "rootfs/bin/hard"))).ino).toBe(
      (await stat(join(out, "rootfs/bin/tool"))).ino,
    );
    expect(await failure(extractImage(t.store, id, out))).toEqual({
      code: ErrorCode.AlreadyExists,
      message: "output directory exists (try --overwrite)",
    });
    await extractImage(t.store, id, out, { rootfsOnly: true, overwrite: true });
    expect((await readdir(out)).sort()).toEqual(["bin", "etc"]);
    expect((await failure(extractImage(t.store, id, "/"))).message).toBe(
      "this would delete your root filesystem. Refusing.",
    );
  });

  it("refuses entries that escape the directory and leaves nothing behind", async () => {
    for (const evil of [
      [{ name: "rootfs/../../evil", body: "x" }],
      [
        { name: "rootfs/link", type: "symlink" as const, linkname: "/tmp" },
        { name: "rootfs/link/evil", body: "x" },
      ],
      [{ name: "rootfs/hard", type: "link" as const, linkname: "/etc/passwd" }],
    ]) {
      // Import refuses such archives; plant one directly to test the extractor's own defence.
      const id = await plantAci(t.store, await makeAci(`example.com/evil${evil.length}`, {}, evil));
      const out = join(t.dir, "evil-out");
      const f = await failure(extractImage(t.store, id, out));
      expect(f.code).toBe(ErrorCode.InvalidArchive);
      await expect(stat(out)).rejects.toThrow();
      expect((await readdir(t.dir)).filter((n) => n.includes(".rkt-"))).toEqual([]);
    }
  });

  it("extracts an OCI image through the tree store: layers in order, whiteouts applied", async () => {
    const img = makeOciImage([
      await makeTar([
        { name: "a", body: "a" },
        { name: "d/x", body: "x" },
      ]),
      await makeTar([
        { name: ".wh.a", body: "" },
        { name: "b", body: "b" },
      ]),
    ]);
    await importOciImage(t.store, { rawManifest: img.raw, source: img.source });
    const out = join(t.dir, "o");
    await extractImage(t.store, img.digest, out);
    expect((await readdir(out)).sort()).toEqual(["manifest", "rootfs"]);
    expect(await readFile(join(out, "manifest"))).toEqual(Buffer.from(img.raw));
    expect((await readdir(join(out, "rootfs"))).sort()).toEqual(["b", "d"]);
    expect(await readFile(join(out, "rootfs", "d", "x"), "utf8")).toBe("x");
    const f = await failure(extractImage(t.store, img.digest, out));
    expect(f.message).toBe("output directory exists (try --overwrite)");
    await extractImage(t.store, img.digest, out, { rootfsOnly: true, overwrite: true });
    expect((await readdir(out)).sort()).toEqual(["b", "d"]);
  });
});

describe("fsck", () => {
  it("finds a corrupt blob and the image that needs it; repair drops both", async () => {
    const aci = await makeAci("example.com/corrupt");
    const { id } = await importAci(t.store, readable(aci));
    const file = t.store.blobFile(getImage(t.store, id).manifestDigest as never);
    await chmod(file, 0o644);
    await writeFile(file, Buffer.concat([aci.subarray(0, 100), Buffer.from("X"), aci.subarray(101)]));
    const r = await fsck(t.store);
    expect(r.ok).toBe(false);
    expect(r.problems.map((p) => p.kind).sort()).toEqual(["corrupt-blob", "image-without-content"]);
    const fixed = await fsck(t.store, { repair: true });
    expect(fixed.ok).toBe(true);
    expect(listImages(t.store)).toEqual([]);
    expect((await fsck(t.store)).clean).toBe(true);
  });

  it("finds a row naming a missing file", async () => {
    const { id } = await importAci(t.store, readable(await makeAci("example.com/missing")));
    await rm(t.store.blobFile(getImage(t.store, id).manifestDigest as never));
    const r = await fsck(t.store);
    expect(r.problems.map((p) => p.kind).sort()).toEqual(["image-without-content", "missing-blob"]);
    await fsck(t.store, { repair: true });
    expect((await fsck(t.store)).clean).toBe(true);
    expect(listImages(t.store)).toEqual([]);
  });

  it("rebuilds ACI and OCI image rows from the blobs alone", async () => {
    const { id } = await importAci(t.store, readable(await makeAci("example.com/rebuild", { version: "2" })));
    const img = makeOciImage([await makeTar([{ name: "a", body: "a" }])]);
    await importOciImage(t.store, { rawManifest: img.raw, source: img.source, name: "x/y" });
    // lose the whole index
    indexDb(t.store).exec("DELETE FROM images; DELETE FROM blobs; DELETE FROM layers;");
    const r = await fsck(t.store);
    expect(r.ok).toBe(true);
    expect(r.garbage.filter((g) => g.kind === "orphan-blob")).toHaveLength(4);
    const fixed = await fsck(t.store, { repair: true });
    expect(fixed.rebuiltImages.sort()).toEqual([id, img.digest].sort());
    expect(resolveImage(t.store, "example.com/rebuild:2")).toBe(id);
    expect(getImage(t.store, img.digest).configDigest).toBe(img.config.digest);
    expect((await fsck(t.store)).clean).toBe(true);
  });

  it("reports an ingest no live process holds as garbage", async () => {
    const w = await t.store.writer({ ref: "left" });
    w.stream.write(Buffer.from("x"));
    await w.close();
    const r = await fsck(t.store);
    expect(r.ok).toBe(true);
    expect(r.garbage.map((g) => [g.kind, g.subject])).toEqual([["stale-ingest", "left"]]);
  });
});

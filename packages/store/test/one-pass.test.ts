// One pass from the source to a rendered tree: layer blobs unpacked while they are ingested
// (ingestBlob + createLayerUnpack + importOciImage render), ACIs extracted while imported
// (importAci render). Each blob is read from its source once, the snapshots carry a hash taken
// from the stream, the trees verify, and a failure of either branch leaves neither the blob nor
// the snapshot.
import { readdir } from "node:fs/promises";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorCode, MediaType, digestOf, isRktError, type Descriptor } from "@rkt/oci";
import {
  createLayerUnpack,
  getSnapshot,
  importAci,
  importOciImage,
  ingestBlob,
  layerSnapshotKey,
  listImages,
  storedTreeId,
  verifyStoredImage,
} from "@rkt/store";
import {
  gzip,
  makeAci,
  makeOciImage,
  makeTar,
  readable,
  sha512Id,
  tempStore,
  type OciImage,
  type TempStore,
} from "./helpers.js";
import { tarOf } from "./tree-helpers.js";

let t: TempStore;
beforeEach(async () => {
  t = await tempStore();
});
afterEach(async () => {
  await t.cleanup();
});

const base = await makeTar([
  { name: "etc/os-release", body: "ID=test\n" },
  { name: "usr/bin/tool", body: Buffer.alloc(700 << 10, 3) },
]);
const app = await makeTar([{ name: "app/one", body: "1" }]);

// Reads every blob of `img` through the store's import path as a copy into the store does:
// ingestBlob with an unpack for the layers, then importOciImage with render. Counts source opens.
async function onePass(img: OciImage, o: { ranged?: boolean; start?: Map<string, number> } = {}) {
  const opens = new Map<string, number>();
  const open = (d: Descriptor) => (start: number) => {
    opens.set(d.digest, (opens.get(d.digest) ?? 0) + 1);
    const b = img.blobs.get(d.digest)!;
    return Promise.resolve(readable(b.subarray(start), 4096));
  };
  const unpack = createLayerUnpack(t.store);
  const lease = t.store.createLease();
  try {
    for (const d of [img.config, ...img.layers])
      await ingestBlob(t.store, d, open(d), { lease, unpack, ranged: o.ranged });
    const r = await importOciImage(t.store, {
      rawManifest: img.raw,
      source: { blob: (d) => Promise.reject(new Error(`${d.digest} read twice`)) },
      name: "example.com/one",
      tag: "v1",
      render: true,
      unpack,
    });
    return { r, opens };
  } finally {
    await unpack.discard();
    t.store.deleteLease(lease);
  }
}

async function layersDirNames(): Promise<string[]> {
  return (await readdir(t.store.paths.layers)).sort();
}

describe("one pass into a tree", () => {
  it("an OCI image: each blob read once, snapshots hashed from the stream, the tree verifies", async () => {
    const img = makeOciImage([base, app]);
    const { r, opens } = await onePass(img);
    expect(r.id).toBe(img.digest);
    expect([...opens.values()]).toEqual([1, 1, 1]);
    for (const tar of [base, app]) {
      const snap = await getSnapshot(t.store.paths.layers, layerSnapshotKey(digestOf(tar)));
      expect(snap?.info.hashFrom).toBe("stream");
      expect(snap?.info.diffId).toBe(digestOf(tar));
    }
    const treeId = await storedTreeId(t.store, img.digest);
    expect(await readdir(t.store.paths.trees)).toEqual([treeId]);
    expect(await verifyStoredImage(t.store, img.digest)).toEqual({ status: "ok", treeId });
  });

  it("a resumed ingest: the extractor reads the kept prefix back, then the rest from the source", async () => {
    const img = makeOciImage([base]);
    const layer = img.layers[0]!;
    const gz = img.blobs.get(layer.digest)!;
    // An earlier attempt left half of the layer in its ingest.
    const w = await t.store.writer({ ref: `blob-${layer.digest}`, expected: layer });
    await new Promise<void>((res, rej) =>
      w.stream.write(gz.subarray(0, gz.length >> 1), (e) => (e ? rej(e) : res())),
    );
    await (w as unknown as { close(): Promise<void> }).close();
    await onePass(img, { ranged: true });
    const snap = await getSnapshot(t.store.paths.layers, layerSnapshotKey(digestOf(base)));
    expect(snap?.info.hashFrom).toBe("stream");
    expect((await verifyStoredImage(t.store, img.digest)).status).toBe("ok");
  });

  it("a layer the extractor refuses: neither its blob nor a snapshot is kept, nothing is recorded", async () => {
    const hostile = await tarOf([{ name: "../escape", content: "x" }]);
    const img = makeOciImage([base, hostile]);
    const err = await onePass(img).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isRktError(err, ErrorCode.InvalidArchive), String(err)).toBe(true);
    expect(await t.store.exists(img.layers[1]!.digest)).toBe(false);
    expect(listImages(t.store)).toEqual([]);
    expect((await layersDirNames()).filter((n) => !n.startsWith(".tmp-"))).toEqual([]);
    expect(await layersDirNames()).toEqual([]);
  });

  it("a config whose diffID does not match the layer: no image, no snapshot", async () => {
    const img = makeOciImage([base]);
    // Same layer blob, but the config names another diffID.
    const lying = makeOciImage([app]);
    const config = Buffer.from(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        rootfs: { type: "layers", diff_ids: [digestOf(app)] },
      }),
    );
    const cfg = { mediaType: MediaType.OciConfig, digest: digestOf(config), size: config.length };
    const raw = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: cfg, layers: img.layers }),
    );
    const blobs = new Map([...img.blobs, [cfg.digest, config]]);
    const err = await onePass({
      ...lying,
      raw,
      digest: digestOf(raw),
      blobs,
      config: cfg,
      layers: img.layers,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isRktError(err, ErrorCode.DigestMismatch), String(err)).toBe(true);
    expect(listImages(t.store)).toEqual([]);
    expect(await layersDirNames()).toEqual([]);
  });

  it("an ACI: decompressed once, stored, extracted and its tree recorded by the import", async () => {
    const aci = await makeAci("example.com/pass", { version: "1" }, [
      { name: "rootfs/etc/sh", body: "#!/bin/sh\n" },
      { name: "rootfs/var", type: "directory" },
      { name: "rootfs/var/data", body: Buffer.alloc(300 << 10, 9) },
    ]);
    const r = await importAci(t.store, readable(gzip(aci)), { render: true });
    expect(r.id).toBe(sha512Id(aci));
    const snap = await getSnapshot(t.store.paths.layers, r.id);
    expect(snap?.info.format).toBe("aci");
    expect(snap?.info.hashFrom).toBe("stream");
    const treeId = await storedTreeId(t.store, r.id);
    expect((await verifyStoredImage(t.store, r.id)).status).toBe("ok");
    expect(await readdir(t.store.paths.trees)).toEqual([treeId]);
  });

  it("an ACI the extractor refuses is not stored", async () => {
    const manifest = JSON.stringify({
      acKind: "ImageManifest",
      acVersion: "0.8.11",
      name: "example.com/bad",
    });
    const bad = await tarOf([
      { name: "manifest", content: manifest },
      { name: "rootfs/", type: "directory" },
      { name: "rootfs/l", type: "link", linkname: "rootfs/missing" },
    ]);
    const err = await importAci(t.store, Readable.from([bad]), { render: true }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isRktError(err), String(err)).toBe(true);
    expect(listImages(t.store)).toEqual([]);
    expect(await layersDirNames()).toEqual([]);
  });
});

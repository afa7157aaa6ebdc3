import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorCode, MediaType, digestOf, isRktError } from "@rkt/oci";
import {
  catManifest,
  diffIdOf,
  fsck,
  gc,
  getImage,
  importOciImage,
  listImages,
  removeImages,
  resolveImage,
} from "@rkt/store";
import { makeOciImage, makeTar, mapSource, tempStore, type TempStore } from "./helpers.js";

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

const base = await makeTar([{ name: "etc/os-release", body: "ID=test\n" }]);
const app1 = await makeTar([{ name: "app/one", body: "1" }]);
const app2 = await makeTar([{ name: "app/two", body: "2" }]);

describe("importOciImage", () => {
  it("records an image by manifest digest with its blobs, diffIDs and ref; the manifest bytes are exact", async () => {
    const img = makeOciImage([base, app1]);
    const r = await importOciImage(t.store, {
      rawManifest: img.raw,
      source: img.source,
      name: "example.com/app",
      tag: "v1",
      what: "oci:/layout:v1",
    });
    expect(r).toMatchObject({ id: img.digest, kind: "oci", name: "example.com/app", cached: false });
    const rec = getImage(t.store, img.digest);
    expect(rec.configDigest).toBe(img.config.digest);
    expect(rec.labels).toEqual({ version: "v1", os: "linux", arch: "amd64" });
    expect(rec.size).toBe(img.raw.length + [...img.blobs.values()].reduce((n, b) => n + b.length, 0));
    expect(Buffer.from(await catManifest(t.store, img.digest)).equals(img.raw)).toBe(true);
    expect(diffIdOf(t.store, img.layers[0]!.digest)).toBe(digestOf(base));
    expect(resolveImage(t.store, "example.com/app:v1")).toBe(img.digest);
    expect(resolveImage(t.store, img.digest.slice(0, 12))).toBe(img.digest);
    expect((await fsck(t.store)).clean).toBe(true);
  });

  it("shares layers between images and keeps shared blobs when one image is removed", async () => {
    const a = makeOciImage([base, app1]);
    const b = makeOciImage([base, app2]);
    let fetched = 0;
    const counting = (src: typeof a.source): typeof a.source => ({
      blob(d, o) {
        fetched++;
        return src.blob(d, o);
      },
    });
    await importOciImage(t.store, { rawManifest: a.raw, source: counting(a.source), name: "x/a" });
    expect(fetched).toBe(3);
    await importOciImage(t.store, { rawManifest: b.raw, source: counting(b.source), name: "x/b" });
    expect(fetched).toBe(5); // config and app2 only: the base layer is already stored
    expect(await readdir(join(t.dir, "cas", "blobs", "sha256"))).toHaveLength(7);
    await removeImages(t.store, [a.digest]);
    const left = await readdir(join(t.dir, "cas", "blobs", "sha256"));
    expect(left.sort()).toEqual(
      [b.digest, b.config.digest, ...b.layers.map((l) => l.digest)].map((d) => d.slice(7)).sort(),
    );
    expect((await fsck(t.store)).clean).toBe(true);
  });

  it("resumes an interrupted blob ingest through blobFrom (a range read)", async () => {
    const big = await makeTar([{ name: "big", body: Buffer.alloc(300_000, 7) }]);
    const img = makeOciImage([big]);
    const layer = img.layers[0]!;
    const bytes = img.blobs.get(layer.digest)!;
    const half = Math.floor(bytes.length / 2);
    const w = await t.store.writer({ ref: `blob-${layer.digest}`, expected: layer });
    await pipeline(Readable.from([bytes.subarray(0, half)]), w.stream);
    await w.close();
    const starts: number[] = [];
    await importOciImage(t.store, {
      rawManifest: img.raw,
      source: {
        blob: (d, o) => img.source.blob(d, o),
        blobFrom(d, start) {
          starts.push(start);
          return Promise.resolve(Readable.from([img.blobs.get(d.digest)!.subarray(start)]));
        },
      },
    });
    expect(starts).toEqual([half]);
    expect((await fsck(t.store)).clean).toBe(true);
  });

  it("is idempotent", async () => {
    const a = makeOciImage([base]);
    await importOciImage(t.store, { rawManifest: a.raw, source: a.source, name: "x/a" });
    await importOciImage(t.store, { rawManifest: a.raw, source: a.source, name: "x/a" });
    expect(listImages(t.store)).toHaveLength(1);
  });

  it("refuses a blob whose bytes do not match its digest; no image becomes visible", async () => {
    const a = makeOciImage([base, app1]);
    const blobs = new Map(a.blobs);
    const victim = a.layers[1]!.digest;
    const bad = Buffer.from(blobs.get(victim)!);
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 1;
    blobs.set(victim, bad);
    const f = await failure(
      importOciImage(t.store, { rawManifest: a.raw, source: mapSource(blobs), what: "oci:/l:bad" }),
    );
    expect(f.code).toBe(ErrorCode.DigestMismatch);
    expect(f.message).toMatch(/^oci:\/l:bad: /);
    expect(f.message).toContain(victim);
    expect(listImages(t.store)).toEqual([]);
    expect(await readdir(join(t.dir, "cas", "ingest"))).toEqual([]);
    expect((await fsck(t.store)).problems).toEqual([]);
    // what was written before the failure is unreferenced content that GC takes away
    await gc(t.store, { gracePeriodMs: 0 });
    expect(await readdir(join(t.dir, "cas", "blobs", "sha256"))).toEqual([]);
    expect((await fsck(t.store)).clean).toBe(true);
  });

  it("reports a blob missing from the source", async () => {
    const a = makeOciImage([base]);
    const blobs = new Map(a.blobs);
    blobs.delete(a.layers[0]!.digest);
    const f = await failure(
      importOciImage(t.store, { rawManifest: a.raw, source: mapSource(blobs), what: "oci:/l" }),
    );
    expect(f.code).toBe(ErrorCode.NotFound);
    expect(listImages(t.store)).toEqual([]);
  });

  it("refuses invalid manifests, indexes and a config that disagrees with the layers", async () => {
    const a = makeOciImage([base]);
    expect(
      (await failure(importOciImage(t.store, { rawManifest: Buffer.from("{"), source: a.source, what: "m" })))
        .code,
    ).toBe(ErrorCode.InvalidManifest);
    const index = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] }),
    );
    const f = await failure(importOciImage(t.store, { rawManifest: index, source: a.source, what: "idx" }));
    expect(f.code).toBe(ErrorCode.InvalidManifest);
    expect(f.message).toMatch(/^idx: manifest: .*index/);
    // a manifest listing two layers with a config naming one diffID
    const two = makeOciImage([base, app1]);
    const lying = Buffer.from(JSON.stringify({ ...JSON.parse(two.raw.toString()), config: a.config }));
    const blobs = new Map([...two.blobs, ...a.blobs]);
    const g = await failure(
      importOciImage(t.store, { rawManifest: lying, source: mapSource(blobs), what: "lie" }),
    );
    expect(g.code).toBe(ErrorCode.InvalidManifest);
    expect(g.message).toContain("rootfs.diff_ids has 1 entries for 2 layers");
    expect(listImages(t.store)).toEqual([]);
  });
});

import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorCode, isRktError } from "@rkt/oci";
import { catManifest, fsck, getImage, getRemote, importAci, listImages } from "@rkt/store";
import {
  aciManifest,
  gzip,
  leftovers,
  makeAci,
  makeTar,
  readable,
  sha512Id,
  tempStore,
  type TempStore,
} from "./helpers.js";

let t: TempStore;
beforeEach(async () => {
  t = await tempStore();
});
afterEach(async () => {
  await t.cleanup();
});

async function expectNothingLeft(): Promise<void> {
  expect(await leftovers(t.dir)).toEqual({ ingest: [], tmp: [] });
  const report = await fsck(t.store);
  expect(report.problems).toEqual([]);
  expect(report.garbage).toEqual([]);
  expect(listImages(t.store)).toEqual([]);
  expect(await readdir(join(t.dir, "cas", "blobs", "sha512"))).toEqual([]);
}

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    if (isRktError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error("expected a failure");
}

describe("importAci", () => {
  it("imports an uncompressed ACI: ID is sha512 of the archive, bytes kept as they are", async () => {
    const aci = await makeAci("example.com/app", { version: "1.0.0", os: "linux", arch: "amd64" });
    const r = await importAci(t.store, readable(aci), { what: "app.aci" });
    expect(r.id).toBe(sha512Id(aci));
    expect(r).toMatchObject({ kind: "aci", name: "example.com/app", size: aci.length, cached: false });
    const hex = createHash("sha512").update(aci).digest("hex");
    expect((await readFile(join(t.dir, "cas", "blobs", "sha512", hex))).equals(aci)).toBe(true);
    const img = getImage(t.store, r.id);
    expect(img.labels).toEqual({ version: "1.0.0", os: "linux", arch: "amd64" });
    expect(img.manifestDigest).toBe(`sha512:${hex}`);
    expect(Buffer.from(await catManifest(t.store, r.id)).toString()).toBe(
      aciManifest("example.com/app", { version: "1.0.0", os: "linux", arch: "amd64" }),
    );
    expect((await fsck(t.store)).clean).toBe(true);
  });

  it("gives a gzip-compressed copy the same ID (ID of the uncompressed tar)", async () => {
    const aci = await makeAci("example.com/gz");
    const a = await importAci(t.store, readable(gzip(aci)));
    expect(a.id).toBe(sha512Id(aci));
    const b = await importAci(t.store, readable(aci));
    expect(b.id).toBe(a.id);
    expect(listImages(t.store)).toHaveLength(1);
  });

  it.each(["bzip2", "xz", "zstd"])("decompresses %s by magic to the same ID", async (tool) => {
    const aci = await makeAci(`example.com/${tool}`);
    let packed: Buffer;
    try {
      packed = execFileSync(tool, ["-c"], { input: aci });
    } catch {
      return; // tool not installed here
    }
    const r = await importAci(t.store, readable(packed), { what: `x.aci.${tool}` });
    expect(r.id).toBe(sha512Id(aci));
  });

  it("is idempotent: re-import refreshes import time and the latest flag", async () => {
    const aci = await makeAci("example.com/again");
    const a = await importAci(t.store, readable(aci));
    const first = getImage(t.store, a.id);
    await new Promise((r) => setTimeout(r, 5));
    await importAci(t.store, readable(aci), { latest: true });
    const second = getImage(t.store, a.id);
    expect(second.importTime).toBeGreaterThan(first.importTime);
    expect(second.latest).toBe(true);
    expect(listImages(t.store)).toHaveLength(1);
    expect((await fsck(t.store)).clean).toBe(true);
  });

  it("handles a large random payload with bounded buffers", async () => {
    const aci = await makeAci("example.com/big", {}, [{ name: "rootfs/blob", body: randomBytes(5 << 20) }]);
    const r = await importAci(t.store, readable(gzip(aci), 7777));
    expect(r.id).toBe(sha512Id(aci));
  });

  it("records the remote and reuses it when the ETag is unchanged", async () => {
    const aci = await makeAci("example.com/remote");
    const remote = { url: "file:///srv/remote.aci", etag: "1-2" };
    const a = await importAci(t.store, readable(aci), { remote });
    expect(getRemote(t.store, remote.url)).toMatchObject({ url: remote.url, etag: "1-2", imageId: a.id });
    const b = await importAci(t.store, readable(Buffer.from("not read at all")), { remote });
    expect(b).toMatchObject({ id: a.id, cached: true });
    expect(await leftovers(t.dir)).toEqual({ ingest: [], tmp: [] });
  });

  describe("bad input: one clear error naming the input, nothing left behind", () => {
    it("truncated gzip", async () => {
      const gz = gzip(await makeAci("example.com/t"));
      const f = await failure(
        importAci(t.store, readable(gz.subarray(0, gz.length - 40)), { what: "t.aci" }),
      );
      expect(f.code).toBe(ErrorCode.InvalidArchive);
      expect(f.message).toMatch(/^t\.aci: corrupt or truncated gzip data/);
      await expectNothingLeft();
    });

    it("corrupt gzip", async () => {
      const gz = gzip(await makeAci("example.com/c"));
      for (let i = 20; i < gz.length - 20; i += 7) gz[i] = gz[i]! ^ 0x5a;
      const f = await failure(importAci(t.store, readable(gz), { what: "c.aci" }));
      expect(f.code).toBe(ErrorCode.InvalidArchive);
      expect(f.message).toMatch(/^c\.aci: /);
      await expectNothingLeft();
    });

    it("truncated tar", async () => {
      const aci = await makeAci("example.com/tt", {}, [{ name: "rootfs/x", body: randomBytes(20_000) }]);
      const f = await failure(importAci(t.store, readable(aci.subarray(0, 10_000)), { what: "tt.aci" }));
      expect(f.code).toBe(ErrorCode.InvalidArchive);
      expect(f.message).toMatch(/^tt\.aci: .*(truncated|tar)/);
      await expectNothingLeft();
    });

    it("not an archive (unknown compression or garbage)", async () => {
      const f = await failure(importAci(t.store, readable(randomBytes(4096)), { what: "junk.aci" }));
      expect(f.code).toBe(ErrorCode.InvalidArchive);
      expect(f.message).toMatch(/^junk\.aci: /);
      await expectNothingLeft();
    });

    it("empty input", async () => {
      const f = await failure(importAci(t.store, readable(Buffer.alloc(0)), { what: "empty.aci" }));
      expect(f).toEqual({
        code: ErrorCode.InvalidArchive,
        message: "empty.aci: archive is empty",
      });
      await expectNothingLeft();
    });

    it("tar without manifest", async () => {
      const tar = await makeTar([{ name: "rootfs/etc/x", body: "x" }]);
      const f = await failure(importAci(t.store, readable(tar), { what: "nomanifest.aci" }));
      expect(f).toEqual({
        code: ErrorCode.InvalidArchive,
        message: "nomanifest.aci: no image manifest found in layout",
      });
      await expectNothingLeft();
    });

    it("invalid manifest", async () => {
      const tar = await makeTar([
        {
          name: "manifest",
          body: JSON.stringify({ acKind: "ImageManifest", acVersion: "0.8.11", name: "Not A Name" }),
        },
        { name: "rootfs", type: "directory" },
      ]);
      const f = await failure(importAci(t.store, readable(tar), { what: "bad.aci" }));
      expect(f.code).toBe(ErrorCode.InvalidManifest);
      expect(f.message).toMatch(/^bad\.aci: .*manifest: \$\.name/);
      await expectNothingLeft();
    });

    it("manifest that is not JSON", async () => {
      const tar = await makeTar([{ name: "manifest", body: "{nope" }]);
      const f = await failure(importAci(t.store, readable(tar), { what: "nojson.aci" }));
      expect(f.code).toBe(ErrorCode.InvalidManifest);
      await expectNothingLeft();
    });

    it("an entry escaping the archive root", async () => {
      const aci = await makeAci("example.com/evil", {}, [{ name: "rootfs/../../evil", body: "x" }]);
      const f = await failure(importAci(t.store, readable(aci), { what: "evil.aci" }));
      expect(f.code).toBe(ErrorCode.InvalidArchive);
      expect(f.message).toMatch(/^evil\.aci: .*rootfs\/\.\.\/\.\.\/evil/);
      await expectNothingLeft();
    });

    it("a reading error from the source", async () => {
      const aci = await makeAci("example.com/src");
      // eslint-disable-next-line @typescript-eslint/require-await
      async function* broken(): AsyncGenerator<Buffer> {
        yield aci.subarray(0, 1024);
        yield aci.subarray(1024, 2048);
        throw Object.assign(new Error("EIO: i/o error, read"), { code: "EIO" });
      }
      const src = Readable.from(broken(), { objectMode: false });
      const f = await failure(importAci(t.store, src, { what: "src.aci" }));
      expect(f).toEqual({ code: ErrorCode.Io, message: "src.aci: cannot read: EIO: i/o error, read" });
      await expectNothingLeft();
    });
  });
});

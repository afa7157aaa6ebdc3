// File-system faults on real mounts: a full disk (a 2 MiB tmpfs) and a read-only store.
// Needs root for mount(8); skipped otherwise.
import { randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { existsSync, statSync } from "node:fs";
import { ErrorCode, digestOf, isRktError } from "@rkt/oci";
import {
  LocalStore,
  fsck,
  importAci,
  importOciImage,
  ingestBlob,
  listImages,
  removeImages,
  reserveBytes,
} from "@rkt/store";
import { fillDisk, mountTmpfs, type Tmpfs } from "@rkt/testkit";
import { makeAci, makeOciImage, makeTar, readable } from "./helpers.js";

let fs: Tmpfs | { skip: string };
let mnt: string;

beforeEach(async () => {
  fs = await mountTmpfs("2m");
  mnt = "skip" in fs ? "" : fs.dir;
});

afterEach(async () => {
  if (!("skip" in fs)) await fs.unmount();
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

describe("file-system faults", () => {
  it("a full disk fails the import with one clear error and leaves nothing behind", async (ctx) => {
    if ("skip" in fs) return ctx.skip(fs.skip);
    const store = await LocalStore.open(join(mnt, "store"));
    try {
      const aci = await makeAci("example.com/big", {}, [{ name: "rootfs/big", body: randomBytes(3 << 20) }]);
      const f = await failure(importAci(store, readable(aci), { what: "big.aci" }));
      expect(f.code).toBe(ErrorCode.Io);
      expect(f.message).toMatch(/^big\.aci: .*no space left on device/);
      expect(await readdir(join(mnt, "store", "cas", "ingest"))).toEqual([]);
      expect(listImages(store)).toEqual([]);
      const report = await fsck(store);
      expect(report.clean).toBe(true);
      // and the store still works for what fits
      const small = await importAci(store, readable(await makeAci("example.com/small")));
      expect(listImages(store).map((i) => i.id)).toEqual([small.id]);
      // an OCI import that does not fit
      const img = makeOciImage([await makeTar([{ name: "big", body: randomBytes(3 << 20) }])]);
      const g = await failure(
        importOciImage(store, { rawManifest: img.raw, source: img.source, what: "oci:big" }),
      );
      expect(g.code).toBe(ErrorCode.Io);
      expect(g.message).toMatch(/^oci:big: .*no space left on device/);
      expect((await fsck(store)).problems).toEqual([]);
    } finally {
      store.close();
    }
  });

  it("a resumable ingest that fills the disk is dropped, not kept for a resume", async (ctx) => {
    if ("skip" in fs) return ctx.skip(fs.skip);
    const store = await LocalStore.open(join(mnt, "store"));
    try {
      const bytes = randomBytes(3 << 20);
      const desc = { mediaType: "application/octet-stream", digest: digestOf(bytes), size: bytes.length };
      const dropped: number[] = [];
      const f = await failure(
        ingestBlob(store, desc, (start) => Promise.resolve(readable(bytes.subarray(start))), {
          ranged: true,
          onDropped: (n) => dropped.push(n),
        }),
      );
      expect(f.message).toMatch(/no space left on device/);
      expect(dropped).toHaveLength(1);
      expect(dropped[0]).toBeGreaterThan(0);
      expect(await readdir(join(mnt, "store", "cas", "ingest"))).toEqual([]);
      expect(fs.free()).toBeGreaterThan(dropped[0]!);
    } finally {
      store.close();
    }
  });

  it("on a disk with 0 bytes free, a cleanup opens the store through its reserve and removes images", async (ctx) => {
    if ("skip" in fs) return ctx.skip(fs.skip);
    const dir = join(mnt, "store");
    const first = await LocalStore.open(dir);
    const { id } = await importAci(first, readable(await makeAci("example.com/kept")));
    first.close();
    expect(statSync(join(dir, "cas", "reserve")).size).toBe(reserveBytes);
    const filler = fillDisk(join(mnt, "filler"));
    expect(fs.free()).toBe(0);
    const refused = await failure(LocalStore.open(dir));
    expect(refused.message).toBe(`store index ${join(dir, "cas", "index.db")}: no space left on device`);
    const store = await LocalStore.open(dir, { cleanup: true });
    try {
      expect(existsSync(join(dir, "cas", "reserve"))).toBe(false);
      const [r] = await removeImages(store, [id]);
      expect(r).toMatchObject({ id, removed: true });
      expect(r!.freedBytes).toBeGreaterThan(0);
    } finally {
      store.close();
    }
    // Closed, the index gives its log back: the reserve is in place again for the next cleanup.
    expect(statSync(join(dir, "cas", "reserve")).size).toBe(reserveBytes);
    filler.remove();
    const check = await LocalStore.open(dir);
    try {
      expect((await fsck(check)).problems).toEqual([]);
    } finally {
      check.close();
    }
  });

  it("a read-only store gives one clear error naming it", async (ctx) => {
    if ("skip" in fs) return ctx.skip(fs.skip);
    const dir = join(mnt, "store");
    const rw = await LocalStore.open(dir);
    await importAci(rw, readable(await makeAci("example.com/ro")));
    rw.close();
    fs.remount("ro");
    let store: LocalStore | undefined;
    try {
      store = await LocalStore.open(dir);
    } catch (e) {
      expect(isRktError(e, ErrorCode.Io)).toBe(true);
      expect((e as Error).message).toBe(`store ${dir}: read-only file system`);
      return;
    }
    try {
      // Opening may succeed (reads work); writing must fail cleanly.
      const f = await failure(
        importAci(store, readable(await makeAci("example.com/ro2")), { what: "ro2.aci" }),
      );
      expect(f.code).toBe(ErrorCode.Io);
      expect(f.message).toMatch(/^ro2\.aci: .*read-only/);
    } finally {
      store.close();
    }
  });
});

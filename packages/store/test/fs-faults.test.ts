// File-system faults on real mounts: a full disk (a 2 MiB tmpfs) and a read-only store.
// Needs root for mount(8); skipped otherwise.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorCode, isRktError } from "@rkt/oci";
import { LocalStore, fsck, importAci, importOciImage, listImages } from "@rkt/store";
import { makeAci, makeOciImage, makeTar, readable } from "./helpers.js";

const isRoot = process.getuid?.() === 0;
let mnt: string;
let mounted = false;

function mount(args: string[]): void {
  execFileSync("mount", args, { stdio: "pipe" });
}

beforeEach(async () => {
  mnt = await mkdtemp(join(tmpdir(), "rkt-fault-"));
  if (isRoot) {
    try {
      mount(["-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt]);
      mounted = true;
    } catch {
      mounted = false;
    }
  }
});

afterEach(async () => {
  if (mounted) execFileSync("umount", [mnt]);
  mounted = false;
  await rm(mnt, { recursive: true, force: true });
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
    if (!mounted) ctx.skip();
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

  it("a read-only store gives one clear error naming it", async (ctx) => {
    if (!mounted) ctx.skip();
    const dir = join(mnt, "store");
    const rw = await LocalStore.open(dir);
    await importAci(rw, readable(await makeAci("example.com/ro")));
    rw.close();
    mount(["-o", "remount,ro", mnt]);
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

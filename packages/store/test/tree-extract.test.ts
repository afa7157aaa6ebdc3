import { execFileSync } from "node:child_process";
import { lstat, mkdir, readFile, readdir, readlink, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorCode, digestOf, isRktError, parseDigest } from "@rkt/oci";
import { extractLayer, extractLayers, extractSnapshot, getSnapshot, treeHash } from "@rkt/store";
import {
  cleanup,
  diffIdOf,
  gz,
  listTree,
  sentinel,
  streamOf,
  tarOf,
  tempDir,
  type RawEntry,
} from "./tree-helpers.js";

let root: string;
let dest: string;
let guard: Awaited<ReturnType<typeof sentinel>>;

beforeEach(async () => {
  root = await tempDir();
  dest = join(root, "dest");
  await mkdir(dest);
  guard = await sentinel(root);
  await writeFile(join(guard.dir, "secret"), "keep");
});
afterEach(async () => {
  expect(await guard.check()).toEqual(["secret"]);
  expect(await readFile(join(guard.dir, "secret"), "utf8")).toBe("keep");
  await cleanup(root);
});

async function extract(entries: RawEntry[], o: { gzip?: boolean } = {}) {
  const tar = await tarOf(entries);
  return extractLayer(streamOf(o.gzip === false ? tar : gz(tar)), dest, {
    what: "layer L",
    diffId: diffIdOf(tar),
  });
}

async function refused(entries: RawEntry[], code: string, text: RegExp): Promise<void> {
  const err = await extract(entries).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isRktError(err), String(err)).toBe(true);
  expect((err as { code: string }).code).toBe(code);
  expect((err as Error).message).toMatch(text);
}

function xattrsOf(path: string): string {
  return execFileSync("getfattr", ["-h", "-d", "-m", "-", "--absolute-names", path], { encoding: "utf8" });
}

describe("extractLayer restores", () => {
  it("files, dirs, links, devices, owners, setuid modes, xattrs and times", async () => {
    const t = new Date("2010-01-01T00:00:00Z");
    const r = await extract([
      { name: "usr/", type: "directory", mode: 0o750, uid: 3, gid: 4, mtime: t },
      { name: "usr/bin/", type: "directory" },
      { name: "usr/bin/su", content: "suid", mode: 0o4755, uid: 0, gid: 0 },
      { name: "usr/bin/sg", content: "sgid", mode: 0o2711, uid: 1000, gid: 50 },
      { name: "tmp/", type: "directory", mode: 0o1777 },
      { name: "usr/bin/hard", type: "link", linkname: "usr/bin/su" },
      { name: "usr/bin/sym", type: "symlink", linkname: "/usr/bin/su", uid: 7, gid: 8 },
      { name: "dev/zero", type: "character-device", devmajor: 1, devminor: 5, mode: 0o666 },
      { name: "dev/loop0", type: "block-device", devmajor: 7, devminor: 0, mode: 0o660, gid: 6 },
      { name: "run/fifo", type: "fifo", mode: 0o600 },
      { name: "etc/attr", content: "x", pax: { "SCHILY.xattr.user.color": "blue" }, mtime: t },
    ]);
    expect(r.skipped).toEqual([]);
    expect(r.compression).toBe("gzip");
    expect(await listTree(dest)).toEqual({
      dev: "dir 755 0:0",
      "dev/loop0": `block 660 0:6 ${7 * 256}`,
      "dev/zero": `char 666 0:0 ${256 + 5}`,
      etc: "dir 755 0:0",
      "etc/attr": "file 644 0:0 1",
      run: "dir 755 0:0",
      "run/fifo": "fifo 600 0:0",
      tmp: "dir 1777 0:0",
      usr: "dir 750 3:4",
      "usr/bin": "dir 755 0:0",
      "usr/bin/hard": "file 4755 0:0 4",
      "usr/bin/sg": "file 2711 1000:50 4",
      "usr/bin/su": "file 4755 0:0 4",
      "usr/bin/sym": "symlink 7:8 -> /usr/bin/su",
    });
    expect((await stat(join(dest, "usr/bin/hard"))).ino).toBe((await stat(join(dest, "usr/bin/su"))).ino);
    expect((await stat(join(dest, "usr"))).mtime.toISOString()).toBe(t.toISOString());
    expect((await stat(join(dest, "etc/attr"))).mtime.toISOString()).toBe(t.toISOString());
    expect(xattrsOf(join(dest, "etc/attr"))).toContain('user.color="blue"');
  });

  it("converts whiteouts to overlay form and skips AUFS meta entries", async () => {
    await extract([
      { name: "a/", type: "directory" },
      { name: "a/.wh.gone", content: "" },
      { name: "b/.wh..wh..opq", content: "" },
      { name: "b/kept", content: "k" },
      { name: ".wh..wh.plnk/", type: "directory" },
      { name: "c/", type: "directory" },
      { name: ".wh.c", content: "" },
    ]);
    const tree = await listTree(dest);
    expect(tree["a/gone"]).toBe("char 0 0:0 0");
    expect(tree["b/kept"]).toBe("file 644 0:0 1");
    expect(Object.keys(tree).some((k) => k.includes(".wh."))).toBe(false);
    expect(xattrsOf(join(dest, "b"))).toContain('trusted.overlay.opaque="y"');
    // A same-layer directory named by a whiteout stays, made opaque (it hides only lower layers).
    expect(tree["c"]).toBe("dir 755 0:0");
    expect(xattrsOf(join(dest, "c"))).toContain('trusted.overlay.opaque="y"');
  });

  it("lets a later duplicate win, merging a directory over a directory", async () => {
    await extract([
      { name: "f", content: "one" },
      { name: "f", content: "two!" },
      { name: "d/", type: "directory", mode: 0o700 },
      { name: "d/x", content: "x" },
      { name: "d/", type: "directory", mode: 0o751 },
      { name: "g/", type: "directory" },
      { name: "g/child", content: "c" },
      { name: "g", content: "now a file" },
    ]);
    expect(await readFile(join(dest, "f"), "utf8")).toBe("two!");
    expect(await listTree(dest)).toMatchObject({
      d: "dir 751 0:0",
      "d/x": "file 644 0:0 1",
      g: "file 644 0:0 10",
    });
  });

  it("strips absolute names into the root (as GNU tar and umoci)", async () => {
    await extract([{ name: "/abs/file", content: "in" }]);
    expect(await readFile(join(dest, "abs/file"), "utf8")).toBe("in");
  });

  it("replaces a symlink by a later file instead of writing through it", async () => {
    await extract([
      { name: "s", type: "symlink", linkname: join(guard.dir, "secret") },
      { name: "s", content: "pwned" },
    ]);
    expect((await lstat(join(dest, "s"))).isFile()).toBe(true);
  });

  it("keeps a hard link to an escaping symlink a symlink (never followed)", async () => {
    await extract([
      { name: "s", type: "symlink", linkname: join(guard.dir, "secret") },
      { name: "h", type: "link", linkname: "s" },
    ]);
    expect(await readlink(join(dest, "h"))).toBe(join(guard.dir, "secret"));
  });
});

describe("extractLayer refuses hostile entries (naming them)", () => {
  it("a path climbing out with ..", async () => {
    await refused(
      [{ name: "../sentinel/pwned", content: "x" }],
      ErrorCode.InvalidArchive,
      /"\.\.\/sentinel\/pwned": path escapes/,
    );
    await refused([{ name: "a/../../x", content: "x" }], ErrorCode.InvalidArchive, /"a\/\.\.\/\.\.\/x"/);
  });

  it("a write through a symlink created earlier in the same layer", async () => {
    await refused(
      [
        { name: "link", type: "symlink", linkname: guard.dir },
        { name: "link/pwned", content: "x" },
      ],
      ErrorCode.InvalidArchive,
      /"link\/pwned": path goes through the symlink "link"/,
    );
    await refused(
      [
        { name: "rel", type: "symlink", linkname: "../../sentinel" },
        { name: "rel/sub/pwned", type: "directory" },
      ],
      ErrorCode.InvalidArchive,
      /through the symlink "rel"/,
    );
  });

  it("hard links out of the layer or through a symlink", async () => {
    await refused(
      [{ name: "h", type: "link", linkname: "../sentinel/secret" }],
      ErrorCode.InvalidArchive,
      /"h": path escapes|"\.\.\/sentinel\/secret"/,
    );
    await refused(
      [{ name: "h", type: "link", linkname: "/etc/passwd" }],
      ErrorCode.InvalidArchive,
      /"h": .*does not exist/,
    );
    await refused(
      [
        { name: "d", type: "symlink", linkname: guard.dir },
        { name: "h", type: "link", linkname: "d/secret" },
      ],
      ErrorCode.InvalidArchive,
      /"h": path goes through the symlink "d"/,
    );
    await refused(
      [
        { name: "dir/", type: "directory" },
        { name: "h", type: "link", linkname: "dir" },
      ],
      ErrorCode.InvalidArchive,
      /hard link to a directory/,
    );
  });

  it("a whiteout of .. or of nothing", async () => {
    await refused(
      [{ name: "a/.wh...", content: "" }],
      ErrorCode.InvalidArchive,
      /"a\/\.wh\.\.\.": invalid whiteout/,
    );
    await refused([{ name: ".wh.", content: "" }], ErrorCode.InvalidArchive, /invalid whiteout/);
  });

  it("a parent that is a file", async () => {
    await refused(
      [
        { name: "f", content: "x" },
        { name: "f/g", content: "y" },
      ],
      ErrorCode.InvalidArchive,
      /"f\/g": parent "f" is not a directory/,
    );
  });

  // Found by test/fuzz (archives): these reached the caller as raw ENOENT, RangeError and
  // ENAMETOOLONG errors instead of a refusal naming the entry.
  it("a symlink with an empty target", async () => {
    await refused(
      [{ name: "x", type: "symlink", linkname: "" }],
      ErrorCode.InvalidArchive,
      /entry "x": symlink with an empty target/,
    );
  });

  it("an owner or a time a PAX record makes impossible", async () => {
    await refused(
      [{ name: "f", content: "x", pax: { uid: "-100000" } }],
      ErrorCode.InvalidArchive,
      /entry "f": invalid uid -100000/,
    );
    await refused(
      [{ name: "f", content: "x", pax: { gid: "99999999999" } }],
      ErrorCode.InvalidArchive,
      /entry "f": invalid gid/,
    );
    await refused(
      [{ name: "f", content: "x", pax: { mtime: "1e300" } }],
      ErrorCode.InvalidArchive,
      /entry "f": invalid mtime/,
    );
  });

  it("a path too long for the file system", async () => {
    const name = `${"d".repeat(200)}/`.repeat(25) + "f";
    await refused(
      [{ name, content: "x" }],
      ErrorCode.InvalidArchive,
      /its path is too long for the file system \(ENAMETOOLONG\)/,
    );
    await refused([{ name: "n".repeat(300), content: "x" }], ErrorCode.InvalidArchive, /ENAMETOOLONG/);
  });

  it("a layer whose diffID does not match", async () => {
    const tar = await tarOf([{ name: "a", content: "a" }]);
    const err = await extractLayer(streamOf(gz(tar)), dest, {
      what: "layer L",
      diffId: diffIdOf(Buffer.from("other")),
    }).catch((e: unknown) => e);
    expect((err as { code: string }).code).toBe(ErrorCode.DigestMismatch);
    expect((err as Error).message).toMatch(/layer L: diffID: digest mismatch/);
  });

  it("a layer whose diffID names an algorithm it cannot compute, before reading it", async () => {
    const tar = await tarOf([{ name: "a", content: "a" }]);
    const err = await extractLayer(streamOf(gz(tar)), dest, {
      what: "layer L",
      diffId: parseDigest(`blake3:${diffIdOf(tar).slice(7)}`),
    }).catch((e: unknown) => e);
    expect((err as { code: string }).code).toBe(ErrorCode.UnsupportedAlgorithm);
    expect(await readdir(dest)).toEqual([]);
    // sha512 is computed: a sha512 diffID is checked like a sha256 one.
    const ok = await extractLayer(streamOf(gz(tar)), dest, {
      what: "layer L",
      diffId: digestOf(tar, "sha512"),
    });
    expect(ok.diffId).toBe(diffIdOf(tar));
  });

  it("a truncated gzip stream and a truncated tar", async () => {
    const tar = await tarOf([{ name: "a", content: "a".repeat(100_000) }]);
    const z = gz(tar);
    let err = await extractLayer(streamOf(z.subarray(0, z.length - 20)), dest, { what: "layer L" }).catch(
      (e: unknown) => e,
    );
    expect((err as { code: string }).code).toBe(ErrorCode.InvalidArchive);
    expect((err as Error).message).toMatch(/layer L: corrupt or truncated/);
    await cleanup(dest);
    await mkdir(dest);
    err = await extractLayer(streamOf(tar.subarray(0, 2048)), dest, { what: "layer L" }).catch(
      (e: unknown) => e,
    );
    expect((err as { code: string }).code).toBe(ErrorCode.InvalidArchive);
  });

  it("an enormous sparse file (GNU and PAX formats), quickly", async () => {
    const src = join(root, "src");
    await mkdir(src);
    execFileSync("truncate", ["-s", "200G", join(src, "big")]);
    for (const format of ["gnu", "posix"]) {
      const tarFile = join(root, `sparse-${format}.tar`);
      execFileSync("tar", ["--sparse", `--format=${format}`, "-cf", tarFile, "-C", src, "big"]);
      const tar = await readFile(tarFile);
      expect(tar.length).toBeLessThan(1 << 20);
      const t0 = Date.now();
      const err = await extractLayer(streamOf(tar), dest, { what: "layer S" }).catch((e: unknown) => e);
      expect((err as { code: string }).code).toBe(ErrorCode.InvalidArchive);
      expect((err as Error).message).toMatch(/big.*sparse/i);
      expect(Date.now() - t0).toBeLessThan(5000);
    }
  });

  it("entries over the size and count caps", async () => {
    const tar = await tarOf([
      { name: "a", content: "12345" },
      { name: "b", content: "1" },
      { name: "c", content: "1" },
    ]);
    let err = await extractLayer(streamOf(tar), dest, { what: "layer C", maxEntrySize: 4 }).catch(
      (e: unknown) => e,
    );
    expect((err as { code: string }).code).toBe(ErrorCode.TooLarge);
    expect((err as Error).message).toMatch(/"a": 5 bytes is over the 4-byte cap/);
    err = await extractLayer(streamOf(tar), join(root, "dest"), { what: "layer C", maxEntries: 2 }).catch(
      (e: unknown) => e,
    );
    expect((err as Error).message).toMatch(/more than 2 entries/);
  });
});

describe("snapshots", () => {
  it("are visible only when complete: a mismatch leaves neither snapshot nor tmp dir", async () => {
    const layers = join(root, "layers");
    const tar = await tarOf([{ name: "a", content: "a" }]);
    const bad = extractSnapshot(layers, "k1", () => Promise.resolve(streamOf(gz(tar))), {
      diffId: diffIdOf(Buffer.from("x")),
    });
    await expect(bad).rejects.toMatchObject({ code: ErrorCode.DigestMismatch });
    expect(await readdir(layers)).toEqual([]);
    const ok = await extractSnapshot(layers, "k1", () => Promise.resolve(streamOf(gz(tar))), {
      diffId: diffIdOf(tar),
    });
    expect(ok.created).toBe(true);
    expect(await readdir(layers)).toEqual(["k1"]);
    const again = await extractSnapshot(layers, "k1", () => Promise.reject(new Error("must not reopen")));
    expect(again.created).toBe(false);
    expect((await getSnapshot(layers, "k1"))?.info.diffId).toBe(diffIdOf(tar));
  });

  it("extract each layer once under concurrency: first rename wins, no corruption", async () => {
    const layers = join(root, "layers");
    const tar = await tarOf([{ name: "a", content: "a".repeat(300_000) }]);
    const all = await Promise.all(
      Array.from({ length: 4 }, () =>
        extractSnapshot(layers, "same", () => Promise.resolve(streamOf(gz(tar))), { diffId: diffIdOf(tar) }),
      ),
    );
    expect(all.every((s) => s.fs === all[0]!.fs)).toBe(true);
    expect(await readdir(layers)).toEqual(["same"]);
    expect((await readFile(join(layers, "same/fs/a"))).length).toBe(300_000);
  });
});

describe("extractLayers", () => {
  it("returns snapshots in input order and reports the failing layer, not the aborts", async () => {
    const layers = join(root, "layers");
    const tars = await Promise.all(["a", "b", "c"].map((n) => tarOf([{ name: n, content: n }])));
    const ok = await extractLayers(
      layers,
      tars.map((t, i) => ({
        key: `k${i}`,
        diffId: diffIdOf(t),
        open: () => Promise.resolve(streamOf(gz(t))),
      })),
    );
    expect(ok.map((s) => s.key)).toEqual(["k0", "k1", "k2"]);
    const bad = await tarOf([{ name: "../x", content: "x" }]);
    const err = await extractLayers(layers, [
      { key: "b0", open: () => Promise.resolve(streamOf(bad)), what: "layer BAD" },
      { key: "b1", open: () => Promise.resolve(streamOf(gz(tars[0]!))) },
    ]).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^layer BAD: entry "\.\.\/x"/);
    expect(await getSnapshot(layers, "b0")).toBeUndefined();
  });

  it("extract ACIs with the same safety (rootfs only, manifest kept, escapes refused)", async () => {
    const manifest = JSON.stringify({ acKind: "ImageManifest", acVersion: "0.8.11", name: "example.com/x" });
    const good = await tarOf([
      { name: "manifest", content: manifest },
      { name: "rootfs/", type: "directory" },
      { name: "rootfs/f", content: "f" },
      { name: "other", content: "ignored" },
    ]);
    const r = await extractLayer(streamOf(good), dest, { what: "aci A", format: "aci" });
    expect(r.manifest?.toString()).toBe(manifest);
    expect(Object.keys(await listTree(dest))).toEqual(["f"]);
    const evil = await tarOf([
      { name: "manifest", content: manifest },
      { name: "rootfs/../../sentinel/pwned", content: "x" },
    ]);
    const err = await extractLayer(streamOf(evil), join(root, "dest"), {
      what: "aci B",
      format: "aci",
    }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(
      /aci B: entry "rootfs\/\.\.\/\.\.\/sentinel\/pwned": path escapes/,
    );
  });
});

describe("treeHash", () => {
  it("never reads device contents (/dev/zero in an image finishes)", async () => {
    await extract([
      { name: "dev/zero", type: "character-device", devmajor: 1, devminor: 5, mode: 0o666 },
      { name: "dev/urandom", type: "character-device", devmajor: 1, devminor: 9, mode: 0o666 },
      { name: "f", content: "x" },
    ]);
    const h1 = await treeHash(dest);
    expect(h1).toMatch(/^sha512-[0-9a-f]{128}$/);
    await writeFile(join(dest, "f"), "y");
    expect(await treeHash(dest)).not.toBe(h1);
  });
});

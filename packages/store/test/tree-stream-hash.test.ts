// The tree hash computed from the tar stream while extracting must be byte for byte the hash a walk
// of the finished directory computes (treeHash, what `image verify` re-checks), for every kind of
// entry the extractor writes: whiteouts and opaque directories, hard links, xattrs, devices and
// FIFOs, implicit parents, duplicates, set-group-ID directories, ACIs; in walk order (hashed from
// the stream alone) and shuffled (reordered from the model, contents read back).
import { createReadStream } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { randomLayer, writeLayer, type FileEntry } from "@rkt/testkit";
import { extractLayer, extractLayers, getSnapshot, treeHash } from "@rkt/store";
import {
  cleanup,
  diffIdOf,
  gz,
  layersWithWhiteouts,
  streamOf,
  tarOf,
  tempDir,
  type RawEntry,
} from "./tree-helpers.js";

const isRoot = process.getuid?.() === 0;
let root: string;
let n = 0;

beforeEach(async () => {
  root = await tempDir("rkt-stream-hash-");
});
afterEach(async () => {
  await cleanup(root);
});

async function check(
  entries: RawEntry[],
  o: { format?: "oci" | "aci"; whiteouts?: "overlay" | "aufs" } = {},
): Promise<{ from: string | undefined }> {
  const dest = join(root, `d${n++}`);
  await mkdir(dest);
  const tar = await tarOf(entries);
  const r = await extractLayer(streamOf(gz(tar)), dest, {
    what: "layer L",
    diffId: diffIdOf(tar),
    treeHash: true,
    format: o.format,
    whiteouts: o.whiteouts,
  });
  expect(r.treeHash).toBe(await treeHash(dest));
  return { from: r.treeHashFrom };
}

const clean = (name: string): string => name.replace(/^\.?\/+/, "").replace(/\/+$/, "");
// The walk order of the tree hash: components in byte order, a directory before its children.
const walkKey = (name: string): Buffer => Buffer.from(clean(name).replaceAll("/", "\0"));
function walkOrdered<T extends { name: string } | { path: string }>(entries: readonly T[]): T[] {
  const name = (e: T): string => ("name" in e ? e.name : e.path);
  return [...entries].sort((a, b) => Buffer.compare(walkKey(name(a)), walkKey(name(b))));
}

/**
 * The entries in reverse walk order where that stays a valid tar (a directory before what is in
 * it, a hard link after its target): every directory's children reversed, hard links last.
 */
function scrambled(entries: readonly RawEntry[]): RawEntry[] {
  const byName = new Map<string, RawEntry[]>();
  for (const e of entries) byName.set(clean(e.name), [...(byName.get(clean(e.name)) ?? []), e]);
  const children = new Map<string, Set<string>>();
  for (const name of byName.keys()) {
    const parts = name.split("/");
    for (let i = 1; i <= parts.length; i++) {
      const parent = parts.slice(0, i - 1).join("/");
      const child = parts.slice(0, i).join("/");
      if (child === "") continue;
      if (!children.has(parent)) children.set(parent, new Set());
      children.get(parent)!.add(child);
    }
  }
  const out: RawEntry[] = [];
  const visit = (name: string): void => {
    out.push(...(byName.get(name) ?? []));
    for (const c of [...(children.get(name) ?? [])].sort((a, b) => Buffer.compare(walkKey(b), walkKey(a))))
      visit(c);
  };
  visit("");
  return [...out.filter((e) => e.type !== "link"), ...out.filter((e) => e.type === "link")];
}

/**
 * A testkit layer in walk order, as a tar writer walking the finished tree would make it: of a
 * hard-linked file's names the first in walk order carries the data, the others link to it.
 */
function walkOrderedLayer(entries: readonly FileEntry[]): FileEntry[] {
  const out = walkOrdered(entries).map((e) => ({ ...e }));
  for (const e of out) {
    if (e.type !== "hardlink") continue;
    const target = out.find((x) => clean(x.path) === clean(e.linkname ?? ""));
    if (target === undefined || Buffer.compare(walkKey(e.path), walkKey(target.path)) > 0) continue;
    const [p, q] = [e.path, target.path];
    Object.assign(e, { ...target, path: p });
    Object.assign(target, { path: q, type: "hardlink", linkname: p, content: undefined });
  }
  return out;
}

const t = new Date("2010-01-01T00:00:00Z");
const rich: RawEntry[] = walkOrdered([
  { name: "./", type: "directory", mode: 0o755 },
  { name: "bin/", type: "directory" },
  { name: "bin/big", content: Buffer.alloc(300 << 10, 7) },
  { name: "bin/empty", content: "" },
  { name: "bin/su", content: "suid", mode: 0o4755 },
  { name: "bin/sg", content: "sgid", mode: 0o2711, uid: 1000, gid: 50 },
  { name: "bin/zz-hard", type: "link", linkname: "bin/su" },
  { name: "bin/sym", type: "symlink", linkname: "/bin/su", uid: 7, gid: 8 },
  { name: "dev/", type: "directory" },
  { name: "dev/loop0", type: "block-device", devmajor: 7, devminor: 0, mode: 0o660, gid: 6 },
  { name: "dev/null", type: "character-device", devmajor: 1, devminor: 3, mode: 0o666 },
  { name: "dev/pipe", type: "fifo", mode: 0o600 },
  { name: "etc/attr", content: "x", pax: { "SCHILY.xattr.user.color": "blue", "SCHILY.xattr.user.a": "1" } },
  { name: "etc/dir/", type: "directory", pax: { "SCHILY.xattr.user.d": "dir" } },
  { name: "home/", type: "directory", mode: 0o750, uid: 1000, gid: 1000, mtime: t },
  { name: "home/u", content: "mine", uid: 1000, gid: 1000 },
  { name: "implicit/deep/file", content: "parents made 0755" },
  { name: "tmp/", type: "directory", mode: 0o1777 },
]);

describe("the streamed tree hash equals the walked one", () => {
  it("for files, empty and large files, setuid/setgid modes, owners, links, devices, FIFOs, xattrs, implicit parents", async () => {
    expect((await check(rich)).from).toBe("stream");
  });

  it("for the same entries out of walk order (reordered, contents read back)", async () => {
    expect((await check(scrambled(rich))).from).toBe("reordered");
  });

  it("for whiteouts, opaque directories and same-layer whiteouts, in overlay and aufs form", async () => {
    const entries: RawEntry[] = [
      { name: "a/", type: "directory" },
      { name: "a/.wh..wh..opq", content: "" },
      { name: "a/.wh.gone", content: "" },
      { name: "a/keep", content: "k" },
      { name: "b/", type: "directory" },
      { name: "b/.wh.x", content: "" },
      { name: "b/y", content: "y" },
      { name: "c/", type: "directory" },
      { name: "c/.wh.sub", content: "" },
      { name: "c/sub/", type: "directory" },
      { name: "c/sub/f", content: "f" },
      { name: "d/.wh..wh.plnk", content: "" },
      { name: "d/z", content: "z" },
    ];
    if (isRoot) expect((await check(entries)).from).toBe("stream");
    expect((await check(entries, { whiteouts: "aufs" })).from).toBe("stream");
    if (isRoot) await check(scrambled(entries));
  });

  it("for duplicates: a file replaced, a directory merged with new attributes, a directory replaced by a file", async () => {
    await check([
      { name: "f", content: "one" },
      { name: "f", content: "two, longer" },
      { name: "d/", type: "directory", mode: 0o700 },
      { name: "d/x", content: "x" },
      { name: "d/", type: "directory", mode: 0o755, uid: 5, gid: 6 },
      { name: "e/", type: "directory" },
      { name: "e/inner", content: "i" },
      { name: "e", content: "now a file" },
      { name: "s", type: "symlink", linkname: "f" },
      { name: "s", content: "s is a file" },
    ]);
  });

  it("for hard links whose name sorts before their target, and a root entry that comes late", async () => {
    await check([
      { name: "z/target", content: "data" },
      { name: "a/link", type: "link", linkname: "z/target" },
      { name: "./", type: "directory", mode: 0o700 },
    ]);
    await check([
      { name: "b", content: "" },
      { name: "a", type: "link", linkname: "b" },
      { name: "c", type: "link", linkname: "b" },
    ]);
  });

  it.runIf(isRoot)("for entries created in a set-group-ID directory, and trusted xattrs", async () => {
    expect(
      (
        await check([
          { name: "g/", type: "directory", mode: 0o2775, gid: 42 },
          { name: "g/file", content: "gets group 42" },
          { name: "g/sub/f", content: "implicit parent under setgid" },
          { name: "g/t", content: "t", pax: { "SCHILY.xattr.trusted.x": "v" } },
        ])
      ).from,
    ).toBe("stream");
  });

  it("for an ACI: only rootfs/ is the tree", async () => {
    const manifest = JSON.stringify({ acKind: "ImageManifest", acVersion: "0.8.11", name: "example.com/x" });
    expect(
      (
        await check(
          [
            { name: "manifest", content: manifest },
            { name: "rootfs/", type: "directory", mode: 0o755 },
            { name: "rootfs/bin/", type: "directory" },
            { name: "rootfs/bin/sh", content: "sh", mode: 0o755 },
            { name: "rootfs/bin/zsh", type: "link", linkname: "rootfs/bin/sh" },
            { name: "other", content: "ignored" },
          ],
          { format: "aci" },
        )
      ).from,
    ).toBe("stream");
  });

  it("for testkit images: the whiteout layers and a random layer, through snapshots", async () => {
    // As given (not in walk order) and in walk order: the same hashes, the second from the stream.
    const layers: FileEntry[][] = [
      ...layersWithWhiteouts,
      ...layersWithWhiteouts.map((l) => walkOrderedLayer(l)),
    ];
    const sources = [];
    for (const [i, entries] of layers.entries()) {
      const file = join(root, `l${i}.tar.gz`);
      const built = await writeLayer({ entries }, file);
      sources.push({
        key: `k${i}`,
        diffId: built.diffId,
        open: () => Promise.resolve(createReadStream(file)),
      });
    }
    const rnd = join(root, "random.tar.gz");
    const builtR = await writeLayer(randomLayer(6 << 20, { files: 40 }), rnd);
    sources.push({ key: "rnd", diffId: builtR.diffId, open: () => Promise.resolve(createReadStream(rnd)) });
    const layersDir = join(root, "layers");
    const snaps = await extractLayers(layersDir, sources, { durable: false });
    for (const [i, s] of snaps.entries()) {
      const info = await getSnapshot(layersDir, s.key);
      expect(info?.info.hashFrom).toBe(i < layersWithWhiteouts.length ? "reordered" : "stream");
      expect(info?.info.hash).toBe(await treeHash(s.fs));
      const marker = JSON.parse(await readFile(join(layersDir, s.key, "snapshot.json"), "utf8")) as {
        hash: string;
      };
      expect(marker.hash).toBe(info?.info.hash);
    }
  });
});

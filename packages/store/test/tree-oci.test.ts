import { createReadStream } from "node:fs";
import { lstat, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, chainIds, digestHex, type Digest } from "@rkt/oci";
import { writeOciLayout } from "@rkt/testkit";
import {
  checkTree,
  escapeOverlayPath,
  getSnapshot,
  mountTree,
  ociTreeId,
  renderOciImage,
  treeHash,
  unmountTree,
  type Tree,
} from "@rkt/store";
import { cleanup, layersWithWhiteouts, listTree, tempDir } from "./tree-helpers.js";

let root: string;
let layout: string;
let store: { open: (d: Digest) => Promise<ReturnType<typeof createReadStream>> };
let paths: { layers: string; trees: string };
let manifestDigest: Digest;
let diffIds: Digest[];
let tree: Tree;

beforeAll(async () => {
  root = await tempDir();
  layout = join(root, "layout");
  const img = await writeOciLayout(layout, { layers: layersWithWhiteouts });
  manifestDigest = img.descriptor.digest;
  diffIds = img.diffIds;
  store = {
    open: (d: Digest) => Promise.resolve(createReadStream(join(layout, "blobs", "sha256", digestHex(d)))),
  };
  paths = { layers: join(root, "cas/layers"), trees: join(root, "cas/trees") };
  tree = await renderOciImage(store, paths, manifestDigest, { flatten: true });
});
afterAll(async () => {
  await cleanup(root);
});

async function withMount<T>(
  name: string,
  t: Tree,
  fn: (dir: string) => Promise<T>,
  limit?: number,
): Promise<T> {
  const base = join(root, name);
  const target = join(base, "merged");
  await mkdir(target, { recursive: true });
  await mountTree(t, target, { upper: join(base, "upper"), work: join(base, "work"), optionLimit: limit });
  try {
    return await fn(target);
  } finally {
    await unmountTree(target);
  }
}

describe("OCI trees", () => {
  it("are keyed by the chain ID and made of one snapshot per diffID", () => {
    const chain = chainIds(diffIds);
    expect(tree.id).toBe(`chain-sha256-${digestHex(chain[2]!)}`);
    expect(ociTreeId(diffIds)).toBe(tree.id);
    expect(tree.layers).toEqual(diffIds.map((d) => digestHex(d)));
  });

  it("flatten with whiteouts, opaque dirs and replacements applied", async () => {
    const flat = await listTree(join(paths.trees, tree.id, "rootfs"), { contents: true });
    expect(Object.keys(flat)).toEqual([
      "bin",
      "bin/alias",
      "bin/tool",
      "dd",
      "dd/new",
      "dev",
      "dev/fifo",
      "dev/null",
      "etc",
      "etc/passwd",
      "f2d",
      "f2d/y",
      "home",
      "home/u",
      "lnk",
      "lnk/x",
      "opq",
      "opq/c",
    ]);
    expect(flat["bin/tool"]).toMatch(/^file 4755 0:0 4 /);
    expect(flat["dev/null"]).toBe(`char 666 0:0 ${256 + 3}`);
    expect(flat["home"]).toBe("dir 700 1000:1000");
    expect(flat["lnk"]).toBe("dir 711 0:0");
    const r = join(paths.trees, tree.id, "rootfs");
    expect(await readFile(join(r, "etc/passwd"), "utf8")).toContain("user:x:1000");
    expect((await lstat(join(r, "bin/alias"))).ino).toBe((await lstat(join(r, "bin/tool"))).ino);
  });

  it("mounted with overlayfs is identical to the flattened copy", async () => {
    const flatDir = join(paths.trees, tree.id, "rootfs");
    const flat = await listTree(flatDir, { contents: true });
    const flatHash = await treeHash(flatDir);
    await withMount("m1", tree, async (m) => {
      expect(await listTree(m, { contents: true })).toEqual(flat);
      expect(await treeHash(m)).toBe(flatHash);
    });
  });

  it("fall back to relative lowerdirs, then to a merged snapshot, when the option is too long", async () => {
    const flat = await listTree(join(paths.trees, tree.id, "rootfs"), { contents: true });
    const absLen = tree.layers.map((k) => join(paths.layers, k, "fs")).join(":").length;
    await withMount(
      "m2",
      tree,
      async (m) => expect(await listTree(m, { contents: true })).toEqual(flat),
      absLen + 60,
    );
    expect((await readdir(paths.layers)).filter((n) => n.startsWith("flat-"))).toEqual([]);
    const base = join(root, "m3");
    const rest = `,upperdir=${join(base, "upper")},workdir=${join(base, "work")}`.length;
    const relative = "lowerdir=".length + tree.layers.map((k) => `${k}/fs`).join(":").length + rest;
    await withMount(
      "m3",
      tree,
      async (m) => expect(await listTree(m, { contents: true })).toEqual(flat),
      relative - 1,
    );
    expect((await readdir(paths.layers)).filter((n) => n.startsWith("flat-"))).toHaveLength(1);
  });

  it("keep the per-consumer upper separate from the read-only snapshots", async () => {
    await withMount("m4", tree, async (m) => {
      await writeFile(join(m, "etc/passwd"), "changed");
      await writeFile(join(m, "new"), "n");
    });
    expect(await readFile(join(root, "m4/upper/etc/passwd"), "utf8")).toBe("changed");
    expect(await readFile(join(paths.layers, tree.layers[1]!, "fs/etc/passwd"), "utf8")).toContain("user:x");
  });

  it("pass checkTree, and fail it with rkt's message once a snapshot changes", async () => {
    await checkTree(paths, tree.id);
    const p = join(paths.layers, tree.layers[0]!, "fs/etc/passwd");
    const old = await readFile(p);
    await writeFile(p, "tampered");
    await expect(checkTree(paths, tree.id)).rejects.toMatchObject({
      code: ErrorCode.DigestMismatch,
      message: expect.stringMatching(
        /^wrong tree hash: sha512-[0-9a-f]{128}, expected: sha512-[0-9a-f]{128}$/,
      ) as string,
    });
    await writeFile(p, old);
    await checkTree(paths, tree.id);
  });

  it("reuse existing snapshots for an image sharing layers", async () => {
    const layout2 = join(root, "layout2");
    const img2 = await writeOciLayout(layout2, {
      layers: [layersWithWhiteouts[0]!, [{ path: "other", type: "file", content: "o" }]],
    });
    expect(img2.diffIds[0]).toBe(diffIds[0]);
    const before = await getSnapshot(paths.layers, tree.layers[0]!);
    const store2 = {
      open: (d: Digest) => Promise.resolve(createReadStream(join(layout2, "blobs", "sha256", digestHex(d)))),
    };
    const t2 = await renderOciImage(store2, paths, img2.descriptor.digest);
    expect(t2.layers[0]).toBe(tree.layers[0]);
    expect((await getSnapshot(paths.layers, tree.layers[0]!))?.info.created).toBe(before?.info.created);
  });

  it("apply whiteouts of the bottom layer before mounting (overlayfs would list them)", async () => {
    const layout3 = join(root, "layout3");
    const img = await writeOciLayout(layout3, {
      layers: [
        [
          { path: "d", type: "dir" },
          { path: "d/.wh.x", type: "file", content: "" },
          { path: "d/.wh..wh..opq", type: "file", content: "" },
          { path: "d/a", type: "file", content: "a" },
        ],
        [{ path: "b", type: "file", content: "b" }],
      ],
    });
    const store3 = {
      open: (d: Digest) => Promise.resolve(createReadStream(join(layout3, "blobs", "sha256", digestHex(d)))),
    };
    const t = await renderOciImage(store3, paths, img.descriptor.digest, { flatten: true });
    const flat = await listTree(join(paths.trees, t.id, "rootfs"), { contents: true });
    expect(Object.keys(flat)).toEqual(["b", "d", "d/a"]);
    await withMount("m5", t, async (m) => expect(await listTree(m, { contents: true })).toEqual(flat));
  });

  it("escape overlay option paths", () => {
    expect(escapeOverlayPath("/a:b,c\\d")).toBe("/a\\:b\\,c\\\\d");
  });
});

// Interop with umoci: the same OCI layouts unpacked by `umoci unpack` and rendered by us (flattened
// and overlay-mounted) must give the same trees: paths, types, modes, owners, link targets, contents.
import { execFileSync } from "node:child_process";
import { createReadStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { digestHex, type Digest } from "@rkt/oci";
import { directoryEntries, writeOciLayout, type FileEntry } from "@rkt/testkit";
import { mountTree, renderOciImage, unmountTree, type Tree } from "@rkt/store";
import { cleanup, layersWithWhiteouts, listTree, tempDir } from "./tree-helpers.js";

let root: string;
beforeAll(async () => {
  root = await tempDir("rkt-interop-");
});
afterAll(async () => {
  await cleanup(root);
});

function layoutStore(layout: string): { open: (d: Digest) => Promise<ReturnType<typeof createReadStream>> } {
  return {
    open: (d) =>
      Promise.resolve(
        createReadStream(join(layout, "blobs", "sha256", digestHex(d)), { highWaterMark: 1 << 20 }),
      ),
  };
}

function umociUnpack(layout: string, name: string): { rootfs: string; ms: number } {
  const bundle = join(root, `${name}-umoci`);
  const t0 = performance.now();
  execFileSync("umoci", ["unpack", "--image", `${layout}:latest`, bundle], { stdio: "pipe" });
  return { rootfs: join(bundle, "rootfs"), ms: performance.now() - t0 };
}

async function mounted<T>(tree: Tree, name: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const base = join(root, `${name}-mnt`);
  await mkdir(join(base, "m"), { recursive: true });
  await mountTree(tree, join(base, "m"), { upper: join(base, "u"), work: join(base, "w") });
  try {
    return await fn(join(base, "m"));
  } finally {
    await unmountTree(join(base, "m"));
  }
}

async function compare(name: string, layers: readonly (readonly FileEntry[])[]): Promise<void> {
  const layout = join(root, `${name}-layout`);
  const img = await writeOciLayout(layout, { layers: layers.map((l) => [...l]) });
  const paths = { layers: join(root, `${name}-cas/layers`), trees: join(root, `${name}-cas/trees`) };
  const t0 = performance.now();
  const tree = await renderOciImage(layoutStore(layout), paths, img.descriptor.digest);
  const renderMs = performance.now() - t0;
  const t1 = performance.now();
  const flatTree = await renderOciImage(layoutStore(layout), paths, img.descriptor.digest, { flatten: true });
  const flattenMs = performance.now() - t1;
  const u = umociUnpack(layout, name);
  const theirs = await listTree(u.rootfs, { contents: true });
  const flat = await listTree(join(paths.trees, flatTree.id, "rootfs"), { contents: true });
  expect(flat).toEqual(theirs);
  await mounted(tree, name, async (m) => expect(await listTree(m, { contents: true })).toEqual(theirs));
  console.log(
    `[tree-interop] ${name}: ${Object.keys(theirs).length} entries; snapshots ${renderMs.toFixed(0)} ms, ` +
      `+flattened copy ${flattenMs.toFixed(0)} ms, umoci unpack ${u.ms.toFixed(0)} ms`,
  );
}

describe("render vs umoci unpack", () => {
  it("a small multi-layer image with whiteouts, opaque dirs, links, devices, owners", async () => {
    await compare("small", layersWithWhiteouts);
  });

  it("a multi-layer image of real files (perl, python, zoneinfo), gzip", async () => {
    const layers: FileEntry[][] = [];
    for (const [dir, prefix] of [
      ["/usr/lib/x86_64-linux-gnu/perl", "usr/lib/perl"],
      ["/usr/share/perl", "usr/share/perl"],
      ["/usr/lib/python3.11", "usr/lib/python3.11"],
      ["/usr/share/zoneinfo", "usr/share/zoneinfo"],
    ] as const) {
      const parts = prefix.split("/");
      const entries: FileEntry[] = parts.map((_, i) => ({
        path: parts.slice(0, i + 1).join("/"),
        type: "dir",
      }));
      for await (const e of directoryEntries(dir, prefix)) entries.push(e);
      layers.push(entries);
    }
    layers.push([
      { path: "usr", type: "dir" },
      { path: "usr/share", type: "dir" },
      { path: "usr/share/zoneinfo", type: "opaque" },
      { path: "usr/share/zoneinfo/UTC", type: "file", content: "TZif" },
      { path: "usr/lib", type: "dir" },
      { path: "usr/lib/python3.11/email", type: "whiteout" },
    ]);
    await compare("real", layers);
  }, 300_000);
});

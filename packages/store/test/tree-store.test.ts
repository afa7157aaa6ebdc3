// The tree store on a real LocalStore: an imported OCI image rendered from the CAS, its tree row
// recorded in the index (so GC and image rm see it), and stale snapshot temp dirs cleaned.
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalStore, importOciImage, recordTree, removeStaleSnapshotTemps, renderOciImage } from "@rkt/store";
import { makeOciImage } from "./helpers.js";
import { cleanup, tarOf, tempDir } from "./tree-helpers.js";
import { indexDb } from "../src/internal/index-db.js";

let root: string;
let store: LocalStore;
beforeAll(async () => {
  root = await tempDir();
  store = await LocalStore.open(join(root, "store"));
});
afterAll(async () => {
  store.close();
  await cleanup(root);
});

describe("tree store on LocalStore", () => {
  it("renders an imported image from the CAS and records its tree row", async () => {
    const img = makeOciImage([
      await tarOf([{ name: "a", content: "one" }]),
      await tarOf([
        { name: ".wh.a", content: "" },
        { name: "b", content: "two" },
      ]),
    ]);
    const r = await importOciImage(store, {
      rawManifest: img.raw,
      source: img.source,
      name: "example.com/t",
    });
    const paths = { layers: store.paths.layers, trees: store.paths.trees };
    const tree = await renderOciImage(store, paths, img.digest, { flatten: true });
    expect(tree.image).toBe(img.digest);
    expect(r).toBeDefined();
    recordTree(indexDb(store), tree, 123);
    const row = indexDb(store).prepare("SELECT image_id, size FROM trees WHERE id = ?").get(tree.id) as {
      image_id: string;
      size: number;
    };
    expect(row).toEqual({ image_id: img.digest, size: 123 });
    expect((await readdir(join(paths.trees, tree.id, "rootfs"))).sort()).toEqual(["b"]);
  });

  it("removes snapshot tmp dirs of dead processes and incomplete snapshots, keeps live ones", async () => {
    const layers = store.paths.layers;
    await mkdir(join(layers, ".tmp-999999-1-dead"), { recursive: true });
    await mkdir(join(layers, "incomplete/fs"), { recursive: true });
    const before = (await readdir(layers)).filter((n) => !n.startsWith(".")).length;
    const removed = await removeStaleSnapshotTemps(layers);
    expect(removed.sort()).toEqual([".tmp-999999-1-dead", "incomplete"]);
    expect((await readdir(layers)).filter((n) => !n.startsWith(".")).length).toBe(before - 1);
  });
});

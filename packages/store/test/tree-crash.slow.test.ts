// Crash and concurrency of snapshot extraction with real child processes: a SIGKILL at any point
// leaves no complete-looking snapshot (only a tmp dir that removeStaleSnapshotTemps clears), and
// processes extracting the same layer at once all succeed with one intact snapshot.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomLayer, runNode, writeLayer, type ChildRun } from "@rkt/testkit";
import { getSnapshot, removeStaleSnapshotTemps } from "@rkt/store";
import { cleanup, tempDir } from "./tree-helpers.js";

const child = join(fileURLToPath(new URL(".", import.meta.url)), "fixtures", "tree-child.mjs");
let root: string;
let layerFile: string;
let diffId: string;

function run(args: readonly string[], killAfterMs?: number): Promise<ChildRun> {
  return runNode(child, args, { killAfterMs });
}

beforeAll(async () => {
  root = await tempDir("rkt-tree-crash-");
  layerFile = join(root, "layer.tar");
  const built = await writeLayer({ ...randomLayer(96 << 20, { files: 48 }), compression: "gzip" }, layerFile);
  diffId = built.diffId;
}, 120_000);
afterAll(async () => {
  await cleanup(root);
});

describe("snapshot extraction under SIGKILL and concurrency", () => {
  it("a killed extraction never leaves a complete-looking snapshot", async () => {
    let killed = 0;
    for (const [i, ms] of [150, 400, 900, 1600].entries()) {
      const layers = join(root, `kill${i}`);
      const r = await run([layers, "k", layerFile, diffId], ms);
      const names = await readdir(layers).catch(() => [] as string[]);
      const snap = await getSnapshot(layers, "k");
      if (r.code === 0) {
        expect(snap?.info.entries).toBe(49);
        continue;
      }
      killed++;
      expect(snap).toBeUndefined();
      expect(names.every((n) => n.startsWith(".tmp-"))).toBe(true);
      await removeStaleSnapshotTemps(layers);
      expect(await readdir(layers).catch(() => [] as string[])).toEqual([]);
      const again = await run([layers, "k", layerFile, diffId]);
      expect(again.code, again.stderr).toBe(0);
      expect((await getSnapshot(layers, "k"))?.info.entries).toBe(49);
    }
    expect(killed).toBeGreaterThan(0);
  }, 240_000);

  it("three processes extracting the same layer: all succeed, one snapshot", async () => {
    const layers = join(root, "race");
    const runs = await Promise.all([0, 1, 2].map(() => run([layers, "k", layerFile, diffId])));
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    expect(await readdir(layers)).toEqual(["k"]);
    const files = await readdir(join(layers, "k/fs/random"));
    expect(files).toHaveLength(48);
    expect((await readFile(join(layers, "k/fs/random", files[0]!))).length).toBe(Math.floor((96 << 20) / 48));
  }, 240_000);
});

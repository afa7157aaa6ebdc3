// Chaos: a store on a real 32 MiB tmpfs. A registry pull that fills the disk half-way fails with
// one clear line, drops the partial downloads it cannot finish (so the disk keeps room) and says
// so; the store stays consistent and works once space is freed; and on a disk with 0 bytes free,
// `rkt image rm` and `rkt image gc` still work (the store's reserve) and say what they freed.
import { readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  fillDisk,
  mountTmpfs,
  pushLayout,
  randomLayer,
  useRegistry,
  writeOciLayout,
  type BuiltImage,
  type Tmpfs,
} from "@rkt/testkit";
import { expectDone, figure, fsckOk, mib, rkt } from "./helpers.js";

const reg = useRegistry({ mode: "plain" });
let fs: Tmpfs | { skip: string };
let small: BuiltImage;
let big: BuiltImage;

beforeAll(async () => {
  fs = await mountTmpfs("32m");
  if ("skip" in fs) return;
  const layouts = await mkdtemp(join(tmpdir(), "rkt-chaos-disk-"));
  small = await writeOciLayout(join(layouts, "small"), { layers: [randomLayer(1 << 20, { seed: "small" })] });
  await pushLayout(join(layouts, "small"), "disk/small:v1", reg());
  big = await writeOciLayout(join(layouts, "big"), {
    layers: [0, 1, 2].map((i) => randomLayer(6 << 20, { seed: `big${i}`, compression: "none" })),
  });
  await pushLayout(join(layouts, "big"), "disk/big:v1", reg());
  await rm(layouts, { recursive: true, force: true });
}, 120_000);

afterAll(async () => {
  if (fs !== undefined && !("skip" in fs)) await fs.unmount();
});

describe("a store on a small tmpfs", () => {
  it("a pull that fills the disk fails cleanly and leaves room; gc and rm work on a full disk", async (ctx) => {
    if ("skip" in fs) {
      ctx.skip(fs.skip);
      return;
    }
    const disk = fs;
    const dir = join(disk.dir, "store");
    const pull = (img: string): Promise<Awaited<ReturnType<typeof rkt>>> =>
      rkt(dir, [
        "--insecure-options=image,http",
        "fetch",
        "--no-render",
        `docker://${reg().host}/disk/${img}:v1`,
      ]);
    expectDone(await pull("small"), "the small pull");
    // 18 MiB of layers with 14 MiB left: the disk fills in the middle of the pull.
    const pad = fillDisk(join(disk.dir, "pad"), { leave: 14 << 20 });
    const t0 = performance.now();
    const failed = await pull("big");
    const failMs = performance.now() - t0;
    expect(failed.code).toBe(254);
    const lines = failed.stderr.trim().split("\n");
    const error = lines.filter((l) => l.startsWith("fetch: "));
    expect(error).toHaveLength(1);
    expect(error[0]).toMatch(
      /^fetch: .*disk\/big:v1: .*no space left on device \(dropped the partial downloads? of/,
    );
    const freeAfter = disk.free();
    // The partial downloads were dropped: the disk has room again (what stays are whole blobs).
    expect(freeAfter).toBeGreaterThan(1 << 20);
    expect(readdirSync(join(dir, "cas", "ingest"))).toEqual([]);
    const report = await fsckOk(dir);
    const list = await rkt(dir, ["image", "list", "--no-legend", "--full", "--fields=id"]);
    expect(list.stdout.trim()).toBe(small.descriptor.digest);
    // Usable once space is freed: the same pull completes, reusing the blobs that were whole.
    pad.remove();
    expectDone(await pull("big"), "the big pull with room");
    await fsckOk(dir);
    // A full disk (0 bytes free): rm and gc still work and say what they freed.
    const full1 = fillDisk(join(disk.dir, "full1"));
    expect(disk.free()).toBe(0);
    const refused = await pull("small");
    expect(refused.code).toBe(254);
    expect(refused.stderr).toContain("no space left on device");
    const removed = await rkt(dir, ["image", "rm", big.descriptor.digest]);
    expectDone(removed, "image rm on a full disk");
    expect(removed.stderr).toMatch(/^rm: freed (1[6-9]|2\d)MiB$/m);
    const full2 = fillDisk(join(disk.dir, "full2"));
    expect(disk.free()).toBe(0);
    const collected = await rkt(dir, ["image", "gc", "--grace-period=0s"]);
    expectDone(collected, "image gc on a full disk");
    expect(collected.stdout).toContain(small.descriptor.digest);
    expect(collected.stderr).toMatch(/^gc: freed \d+(\.\d)?MiB$/m);
    full1.remove();
    full2.remove();
    const after = await fsckOk(dir);
    expect(after.clean).toBe(true);
    figure("full-disk", {
      tmpfs: "32 MiB",
      "failed pull": `${(failMs / 1000).toFixed(1)} s, exit 254, one line: ${JSON.stringify(error[0]!.replace(/sha256:[0-9a-f]{64}/g, "sha256:…"))}`,
      "free after it": mib(freeAfter),
      "fsck after it": `exit 0, ${report.garbage.length} reclaimable item(s)`,
      "on 0 bytes free": `${removed.stderr.match(/rm: freed \S+/)?.[0]}, ${collected.stderr.match(/gc: freed \S+/)?.[0]}`,
    });
  }, 120_000);
});

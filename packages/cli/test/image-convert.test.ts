// `rkt image convert` through main, in process.
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importOciLayout, openOciLayout, validateAci } from "@rkt/fetch";
import { LocalStore, getImage, listImages } from "@rkt/store";
import { writeOciLayout } from "@rkt/testkit";
import { runRkt } from "./helpers.js";

let work: string;
let storeDir: string;

// `rkt image convert ARGS` in process; rejects with the error line on failure.
async function convert(args: string[]): Promise<string> {
  const r = await runRkt(["--dir", storeDir, "image", "convert", ...args], { cwd: work });
  if (r.code !== 0) throw new Error(r.stderr);
  return r.stdout;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "rkt-convert-"));
  storeDir = join(work, "store");
  await writeOciLayout(join(work, "layout"), {
    layers: [[{ path: "a", type: "file", content: "a" }], [{ path: "b", type: "file", content: "b" }]],
    config: { Cmd: ["/a"] },
  });
  const store = await LocalStore.open(storeDir);
  try {
    await importOciLayout(store, await openOciLayout(join(work, "layout")), { name: "example.com/app" });
  } finally {
    store.close();
  }
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("rkt image convert", () => {
  it("imports the squashed ACI into the store and prints its ID", async () => {
    const ids = (await convert(["example.com/app"])).trim().split("\n");
    expect(ids).toHaveLength(1);
    const store = await LocalStore.open(storeDir);
    try {
      const rec = getImage(store, ids[0]!);
      expect(rec).toMatchObject({ kind: "aci", name: "example.com/app" });
      expect(
        listImages(store)
          .map((i) => i.kind)
          .sort(),
      ).toEqual(["aci", "oci"]);
    } finally {
      store.close();
    }
  });

  it("writes one gzipped ACI per layer into -o DIR with --no-squash", async () => {
    const files = (await convert(["--no-squash", "-o", "out", "example.com/app"])).trim().split("\n");
    expect(files).toHaveLength(2);
    expect((await readdir(join(work, "out"))).sort()).toEqual(
      files.map((f) => f.slice(join(work, "out").length + 1)).sort(),
    );
    for (const f of files) {
      expect(f).toMatch(/\/app-[0-9a-f]{64}-latest-linux-amd64\.aci$/);
      expect((await validateAci(f)).issues).toEqual([]);
    }
  });

  it("refuses an unknown compression and an ACI as input", async () => {
    await expect(convert(["--compression=xz", "example.com/app"])).rejects.toThrow(
      /unknown compression method: xz/,
    );
    const id = (await convert(["example.com/app"])).trim();
    await expect(convert([id])).rejects.toThrow(/already an ACI/);
  });
});

// `rkt image convert`, called directly (main.ts registers it separately).
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importOciLayout, openOciLayout, validateAci } from "@rkt/fetch";
import { LocalStore, getImage, listImages } from "@rkt/store";
import { writeOciLayout } from "@rkt/testkit";
import type { CommandContext, GlobalOptions } from "../src/context.js";
import { imageConvertCommand } from "../src/commands/image-convert.js";

let work: string;
let storeDir: string;

function ctxFor(): { ctx: CommandContext; out: () => string } {
  const stdout = new PassThrough();
  const chunks: Buffer[] = [];
  stdout.on("data", (c: Buffer) => chunks.push(c));
  const globals = { dir: storeDir, debug: false } as unknown as GlobalOptions;
  const ctx: CommandContext = {
    stdout,
    stderr: new PassThrough(),
    stdin: new PassThrough(),
    env: {},
    cwd: work,
    globals,
    signal: new AbortController().signal,
  };
  return { ctx, out: () => Buffer.concat(chunks).toString("utf8") };
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
    const { ctx, out } = ctxFor();
    expect(await imageConvertCommand(["example.com/app"], ctx)).toBe(0);
    const ids = out().trim().split("\n");
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
    const { ctx, out } = ctxFor();
    expect(await imageConvertCommand(["--no-squash", "-o", "out", "example.com/app"], ctx)).toBe(0);
    const files = out().trim().split("\n");
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
    await expect(imageConvertCommand(["--compression=xz", "example.com/app"], ctxFor().ctx)).rejects.toThrow(
      /unknown compression method: xz/,
    );
    const first = ctxFor();
    await imageConvertCommand(["example.com/app"], first.ctx);
    const id = first.out().trim();
    await expect(imageConvertCommand([id], ctxFor().ctx)).rejects.toThrow(/already an ACI/);
  });
});

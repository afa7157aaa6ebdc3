// appc acirenderer's tests (rkt.md §6.5) and rkt's tree store tests (§6.2), ported to snapshots:
// every case is rendered flattened AND mounted with overlayfs, and both must give the same tree.
import { createHash } from "node:crypto";
import { chmod, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { aciImageId, writeAci, type AciWriteEntry, type Dependency } from "@rkt/appc";
import { ErrorCode } from "@rkt/oci";
import {
  aciTreeId,
  checkTree,
  createDepList,
  mountTree,
  renderAci,
  unmountTree,
  upperPathWhitelist,
  type AciImage,
  type DepEntry,
} from "@rkt/store";
import { cleanup, listTree, tempDir } from "./tree-helpers.js";

let root: string;
let paths: { layers: string; trees: string };
let n = 0;
const byId = new Map<string, AciImage>();

beforeAll(async () => {
  root = await tempDir();
  paths = { layers: join(root, "cas/layers"), trees: join(root, "cas/trees") };
});
afterAll(async () => {
  await cleanup(root);
});

type E = {
  p: string;
  t?: "dir" | "file" | "symlink" | "fifo";
  size?: number;
  mode?: number;
  target?: string;
};

async function aci(
  entries: E[],
  o: { deps?: AciImage[]; pwl?: string[]; rootMode?: number } = {},
): Promise<AciImage> {
  const name = `example.com/img${n++}`;
  const manifest = {
    acKind: "ImageManifest",
    acVersion: "0.8.11",
    name,
    ...(o.deps !== undefined
      ? { dependencies: o.deps.map((d) => ({ imageName: d.manifest.name, imageID: d.key })) }
      : {}),
    ...(o.pwl !== undefined ? { pathWhitelist: o.pwl } : {}),
  };
  const ws: AciWriteEntry[] = [];
  if (o.rootMode !== undefined) ws.push({ header: { name: ".", type: "directory", mode: o.rootMode } });
  for (const e of entries) {
    const t = e.t ?? "file";
    if (t === "dir") ws.push({ header: { name: e.p, type: "directory", mode: e.mode ?? 0o755 } });
    else if (t === "symlink")
      ws.push({ header: { name: e.p, type: "symlink", linkname: e.target ?? "x", mode: 0o777 } });
    else if (t === "fifo") ws.push({ header: { name: e.p, type: "fifo", mode: e.mode ?? 0o644 } });
    else
      ws.push({
        header: { name: e.p, type: "file", mode: e.mode ?? 0o644, size: e.size ?? 5 },
        body: "x".repeat(e.size ?? 5),
      });
  }
  const chunks: Buffer[] = [];
  for await (const c of writeAci(JSON.stringify(manifest), ws)) chunks.push(c as Buffer);
  const bytes = Buffer.concat(chunks);
  const key = aciImageId(createHash("sha512").update(bytes).digest("hex"));
  const img: AciImage = {
    key,
    manifest: {
      ...manifest,
      dependencies: manifest.dependencies,
    } as AciImage["manifest"],
    open: () => Promise.resolve(Readable.from([bytes])),
  };
  byId.set(key, img);
  return img;
}

const resolve = (dep: Dependency): Promise<AciImage> => {
  const img = dep.imageID === undefined ? undefined : byId.get(dep.imageID);
  return img === undefined ? Promise.reject(new Error(`no ${dep.imageName}`)) : Promise.resolve(img);
};

/** Renders flattened and mounted; both must agree; returns the listing. */
async function render(top: AciImage): Promise<Record<string, string>> {
  const tree = await renderAci(paths, top, resolve, { flatten: true });
  const flat = await listTree(join(paths.trees, tree.id, "rootfs"));
  const base = join(root, `mnt${n++}`);
  await mkdir(join(base, "m"), { recursive: true });
  await mountTree(tree, join(base, "m"), { upper: join(base, "u"), work: join(base, "w") });
  try {
    expect(await listTree(join(base, "m"))).toEqual(flat);
  } finally {
    await unmountTree(join(base, "m"));
  }
  return flat;
}

const entry = (img: AciImage, level: number): DepEntry => ({ image: img, level });

describe("dependency list and tree ID (appc resolve.go, rkt GetID)", () => {
  it("A deps [B, C], C deps [D] -> [A, C, D, B]", async () => {
    const b = await aci([{ p: "b" }]);
    const d = await aci([{ p: "d" }]);
    const c = await aci([{ p: "c" }], { deps: [d] });
    const a = await aci([{ p: "a" }], { deps: [b, c] });
    const list = await createDepList(a, resolve);
    expect(list.map((e) => [e.image.key, e.level])).toEqual([
      [a.key, 0],
      [c.key, 1],
      [d.key, 2],
      [b.key, 1],
    ]);
    const hex = createHash("sha512").update([a.key, c.key, d.key, b.key].join(",")).digest("hex");
    expect(aciTreeId(list.map((e) => e.image.key))).toBe(`deps-sha512-${hex.slice(0, 64)}`);
    expect(aciTreeId([a.key])).toHaveLength("deps-".length + 71);
  });

  it("getUpperPWLM: own whitelist ignored; closest-to-top ancestor wins; sibling quirk", async () => {
    const pA = await aci([], { pwl: ["/a"] });
    const pB = await aci([], { pwl: ["/b"] });
    const c = await aci([]);
    expect(upperPathWhitelist([entry(pA, 0)], 0)).toBeUndefined();
    expect([...(upperPathWhitelist([entry(pA, 0), entry(pB, 1), entry(c, 2)], 2) ?? [])]).toEqual(["a"]);
    const a = await aci([]);
    const cw = await aci([], { pwl: ["/c"] });
    expect(upperPathWhitelist([entry(a, 0), entry(cw, 1), entry(c, 1), entry(c, 2)], 3)).toBeUndefined();
  });
});

describe("acirenderer cases", () => {
  it("TestDirFromParent / TestNewDir / TestDirOverride", async () => {
    const dep = await aci([{ p: "a", t: "dir" }]);
    expect(await render(await aci([], { deps: [dep] }))).toEqual({ a: "dir 755 0:0" });
    expect(await render(await aci([{ p: "a", t: "dir" }]))).toEqual({ a: "dir 755 0:0" });
    expect(await render(await aci([{ p: "a", t: "dir", mode: 0o700 }], { deps: [dep] }))).toEqual({
      a: "dir 700 0:0",
    });
  });

  it("TestFileFromParent / TestNewFile / TestFileOverride", async () => {
    const dep = await aci([
      { p: "a", t: "dir" },
      { p: "a/file01.txt", size: 5 },
    ]);
    expect((await render(await aci([], { deps: [dep] })))["a/file01.txt"]).toBe("file 644 0:0 5");
    expect((await render(await aci([{ p: "a/file01.txt", size: 10 }])))["a/file01.txt"]).toBe(
      "file 644 0:0 10",
    );
    const up = await aci(
      [
        { p: "a", t: "dir" },
        { p: "a/file01.txt", size: 10 },
      ],
      { deps: [dep] },
    );
    expect((await render(up))["a/file01.txt"]).toBe("file 644 0:0 10");
  });

  it("TestFileOvverideDir: an upper file shadows a lower directory tree", async () => {
    const dep = await aci([
      { p: "a", t: "dir" },
      { p: "a/b", t: "dir" },
      { p: "a/b/c", t: "dir" },
      { p: "a/b/c/file01", size: 5 },
    ]);
    const up = await aci([{ p: "a/b", size: 10 }], { deps: [dep] });
    expect(await render(up)).toEqual({ a: "dir 755 0:0", "a/b": "file 644 0:0 10" });
  });

  it("TestPWLOnlyParent: a dependency's own whitelist filters its non-directories", async () => {
    const dep = await aci(
      [
        { p: "a", t: "dir" },
        { p: "a/file01.txt" },
        { p: "a/file02.txt" },
        { p: "a/file03.txt" },
        { p: "b", t: "dir" },
        { p: "b/link01.txt", t: "symlink", target: "file01.txt" },
        { p: "c", t: "dir", mode: 0o700 },
        { p: "c/file01.txt" },
        { p: "d", t: "dir", mode: 0o700 },
        { p: "d/file01.txt" },
        { p: "e/file01.txt" },
      ],
      { pwl: ["/a/file01.txt", "/a/file02.txt", "/b/link01.txt", "/c/", "/d/"] },
    );
    const up = await aci([{ p: "b/file01.txt", size: 10 }, { p: "c/file02.txt" }], { deps: [dep] });
    expect(await render(up)).toEqual({
      a: "dir 755 0:0",
      "a/file01.txt": "file 644 0:0 5",
      "a/file02.txt": "file 644 0:0 5",
      b: "dir 755 0:0",
      "b/file01.txt": "file 644 0:0 10",
      "b/link01.txt": "symlink 0:0 -> file01.txt",
      c: "dir 700 0:0",
      "c/file02.txt": "file 644 0:0 5",
      d: "dir 700 0:0",
      e: "dir 755 0:0", // implicit parent of e/file01.txt (a directory: not filtered by its own list)
    });
  });

  it("TestPWLOnlyImage: the upper image's whitelist filters everything below, directories included", async () => {
    const dep = await aci([
      { p: "a", t: "dir" },
      { p: "a/file01.txt" },
      { p: "a/file02.txt" },
      { p: "a/file03.txt" },
      { p: "b", t: "dir" },
      { p: "b/link01.txt", t: "symlink", target: "file01.txt" },
      { p: "c", t: "dir", mode: 0o700 },
      { p: "c/file01.txt" },
      { p: "c/file02.txt" },
      { p: "d", t: "dir", mode: 0o700 },
      { p: "d/file01.txt" },
    ]);
    const up = await aci(
      [
        { p: "a/file01.txt", size: 10 },
        { p: "b/file01.txt", size: 10 },
      ],
      {
        deps: [dep],
        pwl: ["/a/file01.txt", "/a/file02.txt", "/b/link01.txt", "/b/file01.txt", "/c/file02.txt", "/d/"],
      },
    );
    expect(await render(up)).toEqual({
      a: "dir 755 0:0",
      "a/file01.txt": "file 644 0:0 10",
      "a/file02.txt": "file 644 0:0 5",
      b: "dir 755 0:0",
      "b/file01.txt": "file 644 0:0 10",
      "b/link01.txt": "symlink 0:0 -> file01.txt",
      c: "dir 755 0:0", // the dependency's c (0700) is not whitelisted: an implicit parent
      "c/file02.txt": "file 644 0:0 5",
      d: "dir 700 0:0",
    });
  });

  it("Test3Deps: A(pwl) deps [B(pwl), C], C deps [D]: precedence A > C > D > B, whitelists applied", async () => {
    const d = await aci([
      { p: "a/file03.txt", size: 5 },
      { p: "c/file01.txt", size: 5 },
      { p: "d/file01.txt" },
    ]);
    const c = await aci(
      [
        { p: "a/file02.txt", size: 10 },
        { p: "b/file02.txt", size: 5 },
      ],
      { deps: [d] },
    );
    const b = await aci(
      [
        { p: "a/file02.txt", size: 20 },
        { p: "a/file04.txt", size: 5 },
        { p: "b/file01.txt", size: 5 },
        { p: "b/link01.txt", t: "symlink", target: "file01.txt" },
      ],
      { pwl: ["/a/file02.txt", "/b/file01.txt", "/b/link01.txt"] },
    );
    const a = await aci([{ p: "a/file01.txt", size: 15 }], {
      deps: [b, c],
      pwl: [
        "/a/file01.txt",
        "/a/file02.txt",
        "/a/file03.txt",
        "/a/file04.txt",
        "/b/file01.txt",
        "/b/file02.txt",
        "/b/link01.txt",
        "/c/file01.txt",
      ],
    });
    expect(await render(a)).toEqual({
      a: "dir 755 0:0",
      "a/file01.txt": "file 644 0:0 15",
      "a/file02.txt": "file 644 0:0 10",
      "a/file03.txt": "file 644 0:0 5",
      b: "dir 755 0:0",
      "b/file01.txt": "file 644 0:0 5",
      "b/file02.txt": "file 644 0:0 5",
      "b/link01.txt": "symlink 0:0 -> file01.txt",
      c: "dir 755 0:0",
      "c/file01.txt": "file 644 0:0 5",
      // no d: A's whitelist removes d/file01.txt, and D never named the directory d itself
    });
  });

  it("TestEmptyRootFsDir: only an empty rootfs (0700), with or without a whitelist", async () => {
    const t1 = await renderAci(paths, await aci([], { rootMode: 0o700 }), resolve, { flatten: true });
    expect(await listTree(join(paths.trees, t1.id, "rootfs"))).toEqual({});
    const t2 = await renderAci(paths, await aci([], { rootMode: 0o700, pwl: ["/a"] }), resolve, {
      flatten: true,
    });
    for (const t of [t1, t2]) {
      const { stat } = await import("node:fs/promises");
      expect(((await stat(join(paths.trees, t.id, "rootfs"))).mode & 0o7777).toString(8)).toBe("700");
    }
  });
});

describe("rkt tree store cases", () => {
  it("TestTreeStore: render, check, tamper -> check fails, rebuild gives the same id", async () => {
    const img = await aci([
      { p: "a", t: "dir" },
      { p: "link.txt", t: "symlink", target: "hello.txt" },
      { p: "link2.txt", t: "symlink", target: "missingfile.txt" },
      { p: "fifo", t: "fifo" },
    ]);
    const t = await renderAci(paths, img, resolve);
    await checkTree(paths, t.id);
    await chmod(join(paths.layers, img.key, "fs/a"), 0o600);
    await expect(checkTree(paths, t.id)).rejects.toMatchObject({
      code: ErrorCode.DigestMismatch,
      message: expect.stringMatching(/^wrong tree hash: /) as string,
    });
    await chmod(join(paths.layers, img.key, "fs/a"), 0o755);
    const again = await renderAci(paths, img, resolve, { rebuild: true });
    expect(again.id).toBe(t.id);
    await checkTree(paths, t.id);
  });

  it("refuses an ACI whose content does not match its image ID", async () => {
    const img = await aci([{ p: "x" }]);
    const liar: AciImage = { ...img, key: `sha512-${"0".repeat(64)}` };
    await expect(renderAci(paths, liar, resolve)).rejects.toMatchObject({
      code: ErrorCode.DigestMismatch,
      message: expect.stringMatching(/image ID: digest mismatch/) as string,
    });
  });
});

// Squashing (docker2aci's test-whiteouts and test-basic cases, opaque whiteouts) and hostile layers.
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ErrorCode, isRktError } from "@rkt/oci";
import { convertImage, directorySink } from "../src/index.js";
import { listAci, memoryImage, memorySink, names, type RawEntry } from "./helpers.js";

async function squash(layers: readonly (readonly RawEntry[])[], opens: number[] = []) {
  const img = await memoryImage(layers, { opens });
  const s = memorySink();
  const [aci] = await convertImage(img, s.sink, { compression: "none" });
  const file = s.files.get(aci!.fileName)!;
  return { aci: aci!, file, s, ...(await listAci(file)) };
}

function entry(r: Awaited<ReturnType<typeof squash>>, name: string) {
  return r.entries.find((e) => e.name === `rootfs/${name}`);
}

const stdio = ["dev/fd", "dev/stderr", "dev/stdin", "dev/stdout"];

describe("squashing", () => {
  it("lets upper layers win and applies whiteouts", async () => {
    const r = await squash([
      [
        { name: "etc/", type: "directory", mode: 0o700 },
        { name: "etc/a", body: "lower a" },
        { name: "etc/b", body: "lower b" },
        { name: "etc/c", body: "lower c", mode: 0o600, uid: 7, gid: 8 },
        { name: "gone/", type: "directory" },
        { name: "gone/x", body: "x" },
      ],
      [{ name: "etc/a", body: "upper a", mode: 0o755 }, { name: "etc/.wh.b" }, { name: ".wh.gone" }],
    ]);
    expect(names(r.entries)).toEqual([...stdio, "etc", "etc/a", "etc/c"]);
    expect(entry(r, "etc/a")).toMatchObject({ content: "upper a", mode: 0o755 });
    expect(entry(r, "etc/c")).toMatchObject({ content: "lower c", mode: 0o600, uid: 7, gid: 8 });
    expect(entry(r, "etc")).toMatchObject({ type: "directory", mode: 0o700 });
    expect(r.imageId).toBe(r.aci.imageId);
    expect(r.aci.fileName).toBe("docker2aci-dockerv22test-v0.1.0.aci");
  });

  it("writes the manifest first and the top layer's entries before lower ones", async () => {
    const r = await squash([[{ name: "lower", body: "1" }], [{ name: "upper", body: "2" }]]);
    const order = r.entries.map((e) => e.name);
    expect(order.indexOf("rootfs/upper")).toBeLessThan(order.indexOf("rootfs/lower"));
    expect(r.file.subarray(0, 8).toString()).toBe("manifest");
  });

  it("applies opaque whiteouts (docker2aci ignores them): lower contents of the directory are gone", async () => {
    const r = await squash([
      [
        { name: "d/", type: "directory" },
        { name: "d/old", body: "old" },
        { name: "d/sub/", type: "directory" },
        { name: "d/sub/deep", body: "deep" },
        { name: "keep", body: "k" },
      ],
      [{ name: "d/", type: "directory" }, { name: "d/.wh..wh..opq" }, { name: "d/new", body: "new" }],
    ]);
    expect(names(r.entries)).toEqual(["d", "d/new", ...stdio, "keep"]);
  });

  it("hides entries below a path an upper layer made a file or a symlink", async () => {
    const r = await squash([
      [
        { name: "var/run/", type: "directory" },
        { name: "var/run/pid", body: "1" },
        { name: "x/", type: "directory" },
        { name: "x/y", body: "y" },
      ],
      [
        { name: "var/run", type: "symlink", linkname: "/run" },
        { name: "x", body: "now a file" },
      ],
    ]);
    expect(names(r.entries)).toEqual([...stdio, "var/run", "x", "x/y"].filter((n) => n !== "x/y"));
    expect(entry(r, "var/run")).toMatchObject({ type: "symlink", linkname: "/run" });
  });

  it("adds /dev/std* symlinks unless the top layer has them", async () => {
    const r = await squash([
      [{ name: "dev/stdin", body: "lower stdin is hidden by the symlink" }],
      [
        { name: "dev/", type: "directory" },
        { name: "dev/fd", type: "symlink", linkname: "/elsewhere" },
      ],
    ]);
    expect(entry(r, "dev/stdin")).toMatchObject({
      type: "symlink",
      linkname: "/proc/self/fd/0",
      mode: 0o777,
    });
    expect(entry(r, "dev/stdout")).toMatchObject({ type: "symlink", linkname: "/dev/console" });
    expect(entry(r, "dev/fd")).toMatchObject({ type: "symlink", linkname: "/elsewhere" });
  });

  it("test-basic: keeps hard links (docker2aci's test checks file1/file2 share an inode)", async () => {
    const r = await squash([
      [
        { name: "file1", body: "file1" },
        { name: "file2", type: "link", linkname: "file1" },
        { name: "file3", body: "file1" },
        { name: "file4", body: "file1" },
      ],
    ]);
    expect(entry(r, "file2")).toMatchObject({ type: "link", linkname: "rootfs/file1" });
    expect(entry(r, "file3")).toMatchObject({ type: "file", content: "file1" });
  });

  it("test-whiteouts: a whited-out hard link target's data moves to the first kept link (one replanning pass)", async () => {
    const opens: number[] = [];
    const r = await squash(
      [
        [
          { name: "hl/", type: "directory" },
          { name: "hl/orig", body: "yes" },
          { name: "hl/link1", type: "link", linkname: "hl/orig" },
          { name: "hl/link2", type: "link", linkname: "hl/orig" },
        ],
        [{ name: "hl/.wh.orig" }],
      ],
      opens,
    );
    expect(names(r.entries)).toEqual([...stdio, "hl", "hl/link1", "hl/link2"]);
    expect(entry(r, "hl/link1")).toMatchObject({ type: "file", content: "yes" });
    expect(entry(r, "hl/link2")).toMatchObject({ type: "link", linkname: "rootfs/hl/link1" });
    // write (stopped at the link), plan (both layers), write again.
    expect(r.s.attempts).toHaveLength(2);
    expect(opens).toEqual([1, 0, 1, 0, 1, 0]);
  });

  it("test-whiteouts: files deleted in later layers are absent, survivors and rewritten ones present", async () => {
    const triple = (n: number, body = "yes"): RawEntry[] => [
      { name: `layer${n}-file1`, body },
      { name: `layer${n}-file2`, type: "link", linkname: `layer${n}-file1` },
      { name: `layer${n}-file3`, type: "link", linkname: `layer${n}-file1` },
    ];
    const r = await squash([
      [...triple(1), ...triple(2), ...triple(3)],
      [{ name: ".wh.layer1-file1" }, { name: ".wh.layer2-file2" }, { name: ".wh.layer3-file3" }],
      [...triple(10, "NEW")],
    ]);
    const got = names(r.entries).filter((n) => n.startsWith("layer"));
    expect(got).toEqual([
      "layer1-file2",
      "layer1-file3",
      "layer10-file1",
      "layer10-file2",
      "layer10-file3",
      "layer2-file1",
      "layer2-file3",
      "layer3-file1",
      "layer3-file2",
    ]);
    expect(entry(r, "layer1-file2")).toMatchObject({ type: "file", content: "yes" });
    expect(entry(r, "layer1-file3")).toMatchObject({ linkname: "rootfs/layer1-file2" });
    expect(entry(r, "layer10-file1")?.content).toBe("NEW");
  });
});

describe("hostile layers", () => {
  it.each(["../escape", "a/../../escape", "/../escape"])(
    "refuses %j with RKT_INVALID_ARCHIVE and leaves no file behind",
    async (name) => {
      const dir = await mkdtemp(join(tmpdir(), "d2a-hostile-"));
      try {
        const img = await memoryImage([
          [
            { name: "ok", body: "1" },
            { name, body: "evil" },
          ],
        ]);
        const err: unknown = await convertImage(img, directorySink(dir)).catch((e: unknown) => e);
        expect(isRktError(err, ErrorCode.InvalidArchive)).toBe(true);
        expect((err as Error).message).toMatch(/escapes the root \(\.\.\)/);
        expect(await readdir(dir)).toEqual([]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );

  it("refuses a hard link whose target climbs out", async () => {
    const img = await memoryImage([[{ name: "l", type: "link", linkname: "../../etc/shadow" }]]);
    const err: unknown = await convertImage(img, memorySink().sink).catch((e: unknown) => e);
    expect(isRktError(err, ErrorCode.InvalidArchive)).toBe(true);
  });

  it("strips leading / and ./ and resolves a/../b inside the root", async () => {
    const r = await squash([
      [
        { name: "/abs/file", body: "a" },
        { name: "./rel", body: "r" },
        { name: "x/../inside", body: "i" },
      ],
    ]);
    expect(names(r.entries)).toEqual(["abs/file", ...stdio, "inside", "rel"]);
  });

  it("takes an entry named . (as umoci writes; docker2aci hangs on it) as the root itself", async () => {
    const r = await squash([
      [
        { name: ".", type: "directory" },
        { name: "f", body: "1" },
      ],
    ]);
    expect(names(r.entries)).toEqual([...stdio, "f"]);
  });

  it("keeps the later of duplicate entries in one layer (tar semantics), validating as one entry", async () => {
    const r = await squash([
      [
        { name: "dup", body: "first" },
        { name: "other", body: "o" },
        { name: "dup", body: "second" },
      ],
    ]);
    expect(r.entries.filter((e) => e.name === "rootfs/dup")).toEqual([
      expect.objectContaining({ content: "second" }),
    ]);
    expect(r.s.attempts).toHaveLength(2);
  });

  it("refuses a /dev that is not a directory (docker2aci's rule)", async () => {
    const err: unknown = await convertImage(
      await memoryImage([[{ name: "dev", body: "no" }]]),
      memorySink().sink,
    ).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/"\/dev" is not a directory/);
  });

  it("refuses an unknown layer media type, a non-tar layer and an image without layers", async () => {
    const img = await memoryImage([[{ name: "a", body: "1" }]]);
    const odd = {
      ...img,
      layers: img.layers.map((l) => ({ ...l, mediaType: "application/vnd.example.encrypted" })),
    };
    const e1: unknown = await convertImage(odd, memorySink().sink).catch((e: unknown) => e);
    expect(isRktError(e1, ErrorCode.UnsupportedMediaType)).toBe(true);
    const junk = {
      ...img,
      layers: [
        {
          ...img.layers[0]!,
          open: async () => (await import("node:stream")).Readable.from([Buffer.alloc(1024, 7)]),
        },
      ],
    };
    const e2: unknown = await convertImage(junk, memorySink().sink).catch((e: unknown) => e);
    expect(isRktError(e2, ErrorCode.InvalidArchive)).toBe(true);
    const e3: unknown = await convertImage({ ...img, layers: [] }, memorySink().sink).catch(
      (e: unknown) => e,
    );
    expect(isRktError(e3, ErrorCode.InvalidArgument)).toBe(true);
  });

  it("stops and reports a sink failure instead of hanging", async () => {
    const img = await memoryImage([[{ name: "big", body: "x".repeat(1 << 20) }]]);
    const err: unknown = await convertImage(img, (_t, data) => {
      data.destroy();
      return Promise.reject(new Error("disk full"));
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe("disk full");
  });
});

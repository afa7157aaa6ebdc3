import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { ErrorCode, isRktError } from "@rkt/oci";
import { pack as tarPack } from "tar-stream";
import { describe, expect, it } from "vitest";
import {
  aciImageId,
  cleanTarPath,
  createSha512PassThrough,
  decompressStream,
  detectCompression,
  isAciImageId,
  normalizeAciIdPrefix,
  readAci,
  readAciManifest,
  shortAciId,
  writeAci,
  type AciWriteEntry,
} from "@rkt/appc";
import { rawTar as rawTarBlocks } from "@rkt/testkit";

const manifestJson = JSON.stringify({
  acKind: "ImageManifest",
  acVersion: "0.8.11",
  name: "example.com/hello",
  labels: [{ name: "version", value: "1.0" }],
});

async function collect(s: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

// Real compressors, as a user would make the archive.
function compress(bin: string, input: Buffer): Buffer {
  const r = spawnSync(bin, ["-c"], { input, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${bin} failed: ${String(r.stderr)}`);
  return r.stdout;
}

function sha512sum(input: Buffer): string {
  const r = spawnSync("sha512sum", [], { input });
  return String(r.stdout).split(" ")[0]!;
}

type RawEntry = {
  name: string;
  type?: "file" | "directory" | "symlink" | "link";
  body?: string;
  linkname?: string;
};

// A tar made directly with tar-stream, for layouts writeAci refuses to make.
async function rawTar(entries: RawEntry[]): Promise<Buffer> {
  const p = tarPack();
  const out = collect(p as AsyncIterable<Buffer>);
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      const h = {
        name: e.name,
        type: e.type ?? "file",
        ...(e.linkname === undefined ? {} : { linkname: e.linkname }),
      };
      p.entry(h, e.body ?? "", (err) => (err ? reject(err) : resolve()));
    });
  }
  p.finalize();
  return out;
}

const sampleEntries = (): AciWriteEntry[] => [
  { header: { name: "bin", type: "directory", mode: 0o755 } },
  { header: { name: "bin/hello", type: "file", mode: 0o755 }, body: "#!/bin/sh\necho hello\n" },
  {
    header: { name: "/data/big", type: "file", size: 300_000 },
    body: Readable.from([Buffer.alloc(100_000, 1), Buffer.alloc(200_000, 2)]),
  },
  { header: { name: "./bin/sh", type: "symlink", linkname: "/bin/busybox" } },
  { header: { name: "bin/hello2", type: "link", linkname: "bin/hello" } },
];

async function sampleAci(): Promise<Buffer> {
  return collect(writeAci(manifestJson, sampleEntries()));
}

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    if (isRktError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error("did not fail");
}

describe("detectCompression", () => {
  it.each([
    [[0x1f, 0x8b, 8], "gzip"],
    [[0x42, 0x5a, 0x68, 0x39], "bzip2"],
    [[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], "xz"],
    [[0x28, 0xb5, 0x2f, 0xfd], "zstd"],
    [[0xfd, 0x37, 0x7a, 0x58, 0x5a], "none"],
    [[0x1f], "none"],
    [[], "none"],
    [[0x6d, 0x61, 0x6e], "none"],
  ])("%j is %s", (bytes, kind) => {
    expect(detectCompression(new Uint8Array(bytes))).toBe(kind);
  });
});

describe("cleanTarPath (Go filepath.Clean)", () => {
  it.each([
    ["./manifest", "manifest"],
    ["rootfs/", "rootfs"],
    ["rootfs//a/./b/", "rootfs/a/b"],
    ["rootfs/../x", "x"],
    ["../x", "../x"],
    ["/rootfs/a", "/rootfs/a"],
    ["/../a", "/a"],
    ["", "."],
    ["./", "."],
  ])("%j -> %j", (a, b) => {
    expect(cleanTarPath(a)).toBe(b);
  });
});

describe("ACI round trip", () => {
  it("writes manifest first, then rootfs, and reads every entry back with the image ID", async () => {
    const tar = await sampleAci();
    const seen: { name: string; type: string; body: string; linkname?: string }[] = [];
    const r = await readAci(
      Readable.from([tar]),
      async (e, body) => {
        const data = await collect(body);
        seen.push({
          name: e.name,
          type: e.header.type,
          body: e.name === "rootfs/data/big" ? `${data.length}:${data[0]}:${data[299_999]}` : data.toString(),
          ...(e.header.type === "link" || e.header.type === "symlink" ? { linkname: e.header.linkname } : {}),
        });
      },
      { hash: true },
    );
    expect(seen).toEqual([
      { name: "rootfs", type: "directory", body: "" },
      { name: "rootfs/bin", type: "directory", body: "" },
      { name: "rootfs/bin/hello", type: "file", body: "#!/bin/sh\necho hello\n" },
      { name: "rootfs/data/big", type: "file", body: "300000:1:2" },
      { name: "rootfs/bin/sh", type: "symlink", body: "", linkname: "/bin/busybox" },
      { name: "rootfs/bin/hello2", type: "link", body: "", linkname: "rootfs/bin/hello" },
    ]);
    expect(r.manifest.name).toBe("example.com/hello");
    expect(new TextDecoder().decode(r.rawManifest)).toBe(manifestJson);
    expect(r.compression).toBe("none");
    expect(r.sha512Hex).toBe(sha512sum(tar));
    expect(r.imageId).toBe(`sha512-${sha512sum(tar).slice(0, 64)}`);
    expect(r.uncompressedSize).toBe(tar.length);
    // The first entry is the manifest (tar header name at offset 0).
    expect(tar.subarray(0, 8).toString()).toBe("manifest");
  });

  it("is reproducible: same input, same bytes", async () => {
    expect((await sampleAci()).equals(await sampleAci())).toBe(true);
  });

  it("lets the first entry stand for the rootfs directory", async () => {
    const tar = await collect(writeAci(manifestJson, [{ header: { name: ".", mode: 0o700 } }]));
    const modes: number[] = [];
    await readAci(Readable.from([tar]), (e) => {
      modes.push(e.header.mode);
      return Promise.resolve();
    });
    expect(modes).toEqual([0o700]);
  });

  it("writes gzip when asked", async () => {
    const gz = await collect(writeAci(manifestJson, [], { compression: "gzip" }));
    expect(detectCompression(gz)).toBe("gzip");
    expect((await readAciManifest(Readable.from([gz]))).compression).toBe("gzip");
  });

  it("refuses to write an invalid manifest or an entry outside rootfs", async () => {
    expect(() => writeAci("{}", [])).toThrow(/^ACI manifest to write: \$\.acKind/);
    const e = await failure(
      collect(writeAci(manifestJson, [{ header: { name: "../etc/passwd" }, body: "x" }])),
    );
    expect(e).toEqual({
      code: ErrorCode.InvalidArgument,
      message: 'ACI entry "../etc/passwd" is outside rootfs',
    });
    const f = await failure(
      collect(
        writeAci(manifestJson, [{ header: { name: "a", size: 1 }, body: "x" }, { header: { name: "." } }]),
      ),
    );
    expect(f.message).toBe("ACI entry for the rootfs directory must come first");
    const g = await failure(
      collect(writeAci(manifestJson, [{ header: { name: "a" }, body: Readable.from(["x"]) }])),
    );
    expect(g.message).toBe('ACI entry "a": a streamed body needs header.size');
  });
});

describe("compressed ACIs (real gzip, bzip2, xz, zstd)", () => {
  it.each(["gzip", "bzip2", "xz", "zstd"] as const)(
    "reads a %s ACI and hashes the uncompressed tar",
    async (bin) => {
      const tar = await sampleAci();
      const packed = compress(bin, tar);
      const names: string[] = [];
      const r = await readAci(
        Readable.from([packed.subarray(0, 3), packed.subarray(3)]),
        (e) => {
          names.push(e.name);
          return Promise.resolve();
        },
        { hash: true },
      );
      expect(r.compression).toBe(bin);
      expect(r.imageId).toBe(aciImageId(sha512sum(tar)));
      expect(names).toHaveLength(6);
      const d = await decompressStream(Readable.from([packed]));
      expect(d.compression).toBe(bin);
      expect((await collect(d.stream)).equals(tar)).toBe(true);
    },
  );

  it.each(["gzip", "bzip2", "xz", "zstd"] as const)("refuses a truncated %s ACI", async (bin) => {
    const packed = compress(bin, await sampleAci());
    const e = await failure(readAci(Readable.from([packed.subarray(0, packed.length - 40)])));
    expect(e.code).toBe(ErrorCode.InvalidArchive);
    expect(e.message).toMatch(
      new RegExp(`^ACI archive: (${bin} data is truncated or corrupt|tar data is truncated or corrupt): `),
    );
  });

  it("names gzip in a truncated gzip error", async () => {
    const packed = compress("gzip", await sampleAci());
    const e = await failure(readAci(Readable.from([packed.subarray(0, 200)])));
    expect(e.message).toBe("ACI archive: gzip data is truncated or corrupt: unexpected end of file");
  });
});

describe("ACI layout rules", () => {
  const m = { name: "manifest", body: manifestJson };
  const root = { name: "rootfs", type: "directory" as const };

  it("finds a manifest at the end of the archive", async () => {
    const tar = await rawTar([
      root,
      { name: "rootfs/a", body: "a" },
      { name: "./manifest", body: manifestJson },
    ]);
    expect((await readAci(Readable.from([tar]))).manifest.name).toBe("example.com/hello");
  });

  it("accepts rootfs/ entries without a rootfs directory entry, and ignores '.'", async () => {
    const tar = await rawTar([{ name: "./", type: "directory" }, m, { name: "rootfs/a", body: "a" }]);
    expect((await readAci(Readable.from([tar]))).manifest.name).toBe("example.com/hello");
  });

  it.each<[string, RawEntry[], string, string]>([
    ["no manifest", [root], ErrorCode.InvalidArchive, "ACI archive: no image manifest found in layout"],
    ["no rootfs", [m], ErrorCode.InvalidArchive, "ACI archive: no rootfs found in layout"],
    [
      "an unknown top-level entry",
      [m, root, { name: "foo" }],
      ErrorCode.InvalidArchive,
      'ACI archive: unrecognized file path in layout: "foo" (only manifest and rootfs/ are allowed)',
    ],
    [
      "rootfsx (appc's prefix-check quirk)",
      [m, root, { name: "rootfsx/evil" }],
      ErrorCode.InvalidArchive,
      'ACI archive: unrecognized file path in layout: "rootfsx/evil" (only manifest and rootfs/ are allowed)',
    ],
    [
      "a path escaping rootfs",
      [m, root, { name: "rootfs/../../etc/passwd" }],
      ErrorCode.InvalidArchive,
      'ACI archive: unrecognized file path in layout: "rootfs/../../etc/passwd" (only manifest and rootfs/ are allowed)',
    ],
    [
      "an absolute path",
      [m, root, { name: "/rootfs/a" }],
      ErrorCode.InvalidArchive,
      'ACI archive: unrecognized file path in layout: "/rootfs/a" (only manifest and rootfs/ are allowed)',
    ],
    [
      "a duplicate entry",
      [m, root, { name: "rootfs/a" }, { name: "./rootfs/a" }],
      ErrorCode.InvalidArchive,
      "ACI archive: duplicate file entry in archive: rootfs/a",
    ],
    [
      "two manifests",
      [m, root, m],
      ErrorCode.InvalidArchive,
      "ACI archive: duplicate file entry in archive: manifest",
    ],
    [
      "rootfs as a file",
      [m, { name: "rootfs" }],
      ErrorCode.InvalidArchive,
      "ACI archive: rootfs is not a directory",
    ],
    [
      "manifest as a directory",
      [{ name: "manifest", type: "directory" }, root],
      ErrorCode.InvalidArchive,
      "ACI archive: manifest is not a regular file",
    ],
    [
      "a hard link out of rootfs",
      [m, root, { name: "rootfs/l", type: "link", linkname: "manifest" }],
      ErrorCode.InvalidArchive,
      'ACI archive: hard link rootfs/l points outside rootfs: "manifest"',
    ],
    [
      "an invalid manifest",
      [{ name: "manifest", body: '{"acKind":"ImageManifest","acVersion":"0.8.11","name":"Bad"}' }, root],
      ErrorCode.InvalidManifest,
      'ACI manifest: $.name: ACIdentifier must contain only lower case alphanumeric characters plus "-._~/"',
    ],
    [
      "a manifest that is not JSON",
      [{ name: "manifest", body: "not json" }, root],
      ErrorCode.InvalidManifest,
      "ACI manifest: $: invalid JSON at offset 0",
    ],
  ])("refuses %s", async (_what, entries, code, message) => {
    const e = await failure(readAci(Readable.from([await rawTar(entries)])));
    expect(e).toEqual({ code, message });
  });

  it("refuses a manifest over the cap with RKT_TOO_LARGE, before reading it", async () => {
    const tar = await rawTar([{ name: "manifest", body: manifestJson + " ".repeat(2000) }, root]);
    const e = await failure(readAci(Readable.from([tar]), undefined, { maxManifestSize: 1024 }));
    expect(e).toEqual({
      code: ErrorCode.TooLarge,
      message: `ACI archive: manifest is ${manifestJson.length + 2000} bytes, more than the 1024 allowed`,
    });
  });

  it("refuses data that is neither tar nor a known compression", async () => {
    const e = await failure(readAci(Readable.from([Buffer.alloc(4096, 0x41)])));
    expect(e.code).toBe(ErrorCode.InvalidArchive);
    expect(e.message).toMatch(/^ACI archive: not a tar archive, nor gzip, bzip2, xz or zstd data: /);
  });

  it("refuses a truncated plain tar", async () => {
    const tar = await sampleAci();
    const e = await failure(readAci(Readable.from([tar.subarray(0, 1500)])));
    expect(e.code).toBe(ErrorCode.InvalidArchive);
    expect(e.message).toMatch(
      /^ACI archive: (not a tar archive.*|no rootfs found in layout)|Unexpected end of data/,
    );
  });

  // Found by test/fuzz (archives): tar-stream reads no body for a directory (POSIX) but never
  // ended the entry it handed out when the header declared a size, so draining it waited forever.
  it("reads past a directory whose header declares a size", async () => {
    const tar = rawTarBlocks([
      { name: "manifest", body: manifestJson },
      { name: "rootfs/", type: "5", size: 4096 },
      { name: "rootfs/a", body: "a" },
    ]);
    const seen: string[] = [];
    const r = await readAci(Readable.from([tar]), async (e, body) => {
      seen.push(`${e.name}:${(await collect(body)).length}`);
    });
    expect(seen).toEqual(["rootfs:0", "rootfs/a:1"]);
    expect(r.manifest.name).toBe("example.com/hello");
  });

  // Found by test/fuzz (archives): the tar parser's error reached the caller as the callback's own.
  it("refuses a body cut short by the end of the archive even when the callback reads it", async () => {
    const tar = rawTarBlocks([
      { name: "manifest", body: manifestJson },
      { name: "rootfs/a", size: 1 << 20, body: "only this" },
    ]).subarray(0, 2048);
    const e: unknown = await readAci(Readable.from([tar]), async (_e, body) => {
      await collect(body);
    }).catch((x: unknown) => x);
    expect(isRktError(e, ErrorCode.InvalidArchive)).toBe(true);
  });

  it("refuses empty input", async () => {
    expect(await failure(readAci(Readable.from([])))).toEqual({
      code: ErrorCode.InvalidArchive,
      message: "ACI archive: archive is empty",
    });
  });

  it("passes errors of the callback through unchanged", async () => {
    const boom = new Error("disk full");
    await expect(readAci(Readable.from([await sampleAci()]), () => Promise.reject(boom))).rejects.toBe(boom);
  });

  it.each(["none", "gzip"] as const)("passes errors of the source through unchanged (%s)", async (kind) => {
    const tar = await sampleAci();
    const bytes = kind === "gzip" ? compress("gzip", tar) : tar;
    const boom = new Error("connection reset");
    async function* failing(): AsyncGenerator<Buffer> {
      yield bytes.subarray(0, 1000);
      await new Promise((resolve) => setTimeout(resolve, 5));
      throw boom;
    }
    await expect(readAci(Readable.from(failing()))).rejects.toBe(boom);
  });

  it("passes errors of the callback through unchanged under gzip", async () => {
    const boom = new Error("disk full");
    const gz = compress("gzip", await sampleAci());
    await expect(readAci(Readable.from([gz]), () => Promise.reject(boom))).rejects.toBe(boom);
  });

  it("stops when aborted", async () => {
    const ac = new AbortController();
    ac.abort();
    expect(
      await failure(readAci(Readable.from([await sampleAci()]), undefined, { signal: ac.signal })),
    ).toEqual({
      code: ErrorCode.Aborted,
      message: "ACI archive: reading aborted",
    });
  });

  it("readAciManifest stops at the manifest and releases the source", async () => {
    const tar = await sampleAci();
    async function* endless(): AsyncGenerator<Buffer> {
      yield tar.subarray(0, 2048); // manifest header and body
      await new Promise(() => undefined); // the rest never comes
    }
    const src = Readable.from(endless());
    const r = await readAciManifest(src);
    expect(r.manifest.name).toBe("example.com/hello");
    expect(src.destroyed).toBe(true);
  });
});

describe("image IDs", () => {
  const hex = createHash("sha512").update("x").digest("hex");
  it("makes rkt's 71-character key", () => {
    const id = aciImageId(hex);
    expect(id).toBe(`sha512-${hex.slice(0, 64)}`);
    expect(id).toHaveLength(71);
    expect(aciImageId(`sha512:${hex}`)).toBe(id);
    expect(isAciImageId(id)).toBe(true);
    expect(isAciImageId(id.slice(0, 70))).toBe(false);
  });
  it("shortens for display", () => {
    const id = aciImageId(hex);
    expect(shortAciId(id)).toBe(`sha512-${hex.slice(0, 32)}`);
    expect(shortAciId(id, 12)).toBe(`sha512-${hex.slice(0, 12)}`);
    expect(() => shortAciId("sha256-abc")).toThrow(/not sha512- followed by hex/);
  });
  it("refuses a bad digest", () => {
    expect(() => aciImageId("abc")).toThrow('invalid sha512 "abc": need 128 lowercase hex digits');
  });
  it.each([
    ["sha256-abcdef", "wrong key prefix"],
    ["sha512-a", "image ID too short"],
    ["sha512-XYZW", "not lowercase hex after sha512-"],
  ])("normalizeAciIdPrefix refuses %s: %s", (s, why) => {
    expect(() => normalizeAciIdPrefix(s)).toThrow(`image ID ${JSON.stringify(s)}: ${why}`);
  });
  it("normalizeAciIdPrefix cuts to 71 characters", () => {
    expect(normalizeAciIdPrefix(`sha512-${hex}`)).toBe(`sha512-${hex.slice(0, 64)}`);
    expect(normalizeAciIdPrefix("sha512-ab")).toBe("sha512-ab");
  });
  it("hashes through a pass-through", async () => {
    const h = createSha512PassThrough();
    await collect(Readable.from([Buffer.from("x")]).pipe(h.stream));
    expect(h.sha512Hex()).toBe(hex);
    expect(h.bytes()).toBe(1);
  });
});

import { createReadStream } from "node:fs";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { execFileSync } from "node:child_process";
import { extract } from "tar-stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MediaType, createDigester, digestHex, parseIndexOrThrow, parseManifestOrThrow } from "@rkt/oci";
import {
  directoryEntries,
  randomLayer,
  randomStream,
  writeDockerArchive,
  writeOciLayout,
  writeOciLayoutIndex,
  type FileEntry,
} from "@rkt/testkit";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "rkt-testkit-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function sha256File(p: string, gunzip = false): Promise<string> {
  const d = createDigester();
  const sink = async (src: AsyncIterable<Buffer>): Promise<void> => {
    for await (const c of src) d.update(c);
  };
  await (gunzip ? pipeline(createReadStream(p), createGunzip(), sink) : pipeline(createReadStream(p), sink));
  return d.digest();
}

async function tarEntries(
  p: string,
  gunzip: boolean,
): Promise<{ name: string; type: string; linkname: string | null; body: string }[]> {
  const out: { name: string; type: string; linkname: string | null; body: string }[] = [];
  const x = extract();
  const consume = (async () => {
    for await (const e of x) {
      const chunks: Buffer[] = [];
      for await (const c of e) chunks.push(c as Buffer);
      out.push({
        name: e.header.name,
        type: e.header.type,
        linkname: e.header.linkname ?? null,
        body: Buffer.concat(chunks).toString(),
      });
    }
  })();
  await Promise.all([
    gunzip ? pipeline(createReadStream(p), createGunzip(), x) : pipeline(createReadStream(p), x),
    consume,
  ]);
  return out;
}

const tree: FileEntry[] = [
  { path: "etc", type: "dir" },
  { path: "etc/hostname", type: "file", content: "box\n" },
  { path: "etc/link", type: "symlink", linkname: "hostname" },
  { path: "etc/hard", type: "hardlink", linkname: "etc/hostname" },
  { path: "dev/null", type: "char", devmajor: 1, devminor: 3, mode: 0o666 },
  { path: "run/fifo", type: "fifo" },
  { path: "var/gone", type: "whiteout" },
  { path: "opt", type: "opaque" },
];

describe("writeOciLayout", () => {
  it("writes a layout whose digests, diffIDs and entries are what the manifest says", async () => {
    const img = await writeOciLayout(dir, { layers: [tree], config: { Cmd: ["/bin/sh"] } }, { ref: "v1" });
    expect(JSON.parse(await readFile(join(dir, "oci-layout"), "utf8"))).toEqual({
      imageLayoutVersion: "1.0.0",
    });
    const index = parseIndexOrThrow(await readFile(join(dir, "index.json")), undefined, "index.json").value;
    expect(index.manifests).toHaveLength(1);
    expect(index.manifests[0]!.digest).toBe(img.descriptor.digest);
    expect(index.manifests[0]!.annotations).toEqual({ "org.opencontainers.image.ref.name": "v1" });

    const blob = (d: string): string => join(dir, "blobs", "sha256", d.slice(7));
    const manifest = parseManifestOrThrow(await readFile(blob(img.descriptor.digest))).value;
    expect(manifest.mediaType).toBe(MediaType.OciManifest);
    const layer = manifest.layers[0]!;
    expect(layer.mediaType).toBe(MediaType.OciLayerGzip);
    expect(await sha256File(blob(layer.digest))).toBe(layer.digest);
    expect(await sha256File(blob(layer.digest), true)).toBe(img.diffIds[0]);
    const config = JSON.parse(await readFile(blob(manifest.config.digest), "utf8"));
    expect(config.rootfs.diff_ids).toEqual(img.diffIds);
    expect(config.config).toEqual({ Cmd: ["/bin/sh"] });

    const entries = await tarEntries(blob(layer.digest), true);
    expect(entries.map((e) => [e.name, e.type, e.linkname])).toEqual([
      ["etc/", "directory", null],
      ["etc/hostname", "file", null],
      ["etc/link", "symlink", "hostname"],
      ["etc/hard", "link", "etc/hostname"],
      ["dev/null", "character-device", null],
      ["run/fifo", "fifo", null],
      ["var/.wh.gone", "file", null],
      ["opt/.wh..wh..opq", "file", null],
    ]);
    expect(entries[1]!.body).toBe("box\n");
    // umoci (which verifies every digest) unpacks it.
    const bundle = join(dir, "bundle");
    execFileSync("umoci", ["unpack", "--image", `${dir}:v1`, bundle], { stdio: "pipe" });
    expect(await readFile(join(bundle, "rootfs", "etc", "hard"), "utf8")).toBe("box\n");
  });

  it("is reproducible: the same spec gives the same manifest digest", async () => {
    const a = await writeOciLayout(join(dir, "a"), { layers: [tree] });
    const b = await writeOciLayout(join(dir, "b"), { layers: [tree] });
    expect(a.descriptor.digest).toBe(b.descriptor.digest);
  });

  it("writes docker schema2 media types, zstd and uncompressed layers", async () => {
    const img = await writeOciLayout(dir, {
      format: "docker",
      layers: [
        { entries: tree, compression: "zstd" },
        { entries: [{ path: "a", type: "file", content: "x" }], compression: "none" },
      ],
    });
    const m = JSON.parse(img.manifestBytes.toString()) as {
      mediaType: string;
      config: { mediaType: string };
      layers: { mediaType: string }[];
    };
    expect(m.mediaType).toBe(MediaType.DockerManifest);
    expect(m.config.mediaType).toBe(MediaType.DockerConfig);
    expect(m.layers.map((l) => l.mediaType)).toEqual([MediaType.DockerLayerZstd, MediaType.DockerLayer]);
    const zst = join(dir, "blobs", "sha256", digestHex(img.layers[0]!.digest));
    expect(execFileSync("zstd", ["-dc", zst]).length).toBe(img.layers[0]!.uncompressedSize);
    // Uncompressed: digest == diffID.
    expect(img.layers[1]!.digest).toBe(img.layers[1]!.diffId);
  });

  it("streams a random layer to disk with the exact size and a stable digest", async () => {
    const size = 3 * 1024 * 1024 + 17;
    const img = await writeOciLayout(dir, { layers: [randomLayer(size, { files: 3, compression: "none" })] });
    const l = img.layers[0]!;
    expect(l.uncompressedSize).toBeGreaterThan(size);
    const entries = await tarEntries(join(dir, "blobs", "sha256", digestHex(l.digest)), false);
    expect(
      entries.filter((e) => e.type === "file").reduce((n, e) => n + Buffer.byteLength(e.body, "latin1"), 0),
    ).toBeGreaterThan(0);
    const chunks: Buffer[] = [];
    for await (const c of randomStream(1000, "s")) chunks.push(c as Buffer);
    const again: Buffer[] = [];
    for await (const c of randomStream(1000, "s")) again.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(Buffer.concat(again))).toBe(true);
    expect(Buffer.concat(chunks)).toHaveLength(1000);
  });

  it("writes a multi-platform index", async () => {
    const idx = await writeOciLayoutIndex(dir, [
      { layers: [tree], architecture: "amd64" },
      { layers: [tree], architecture: "arm64", variant: "v8" },
    ]);
    const index = parseIndexOrThrow(idx.indexBytes).value;
    expect(index.manifests.map((m) => m.platform)).toEqual([
      { architecture: "amd64", os: "linux" },
      { architecture: "arm64", os: "linux", variant: "v8" },
    ]);
    const top = parseIndexOrThrow(await readFile(join(dir, "index.json")), undefined, "index.json").value;
    expect(top.manifests[0]!.digest).toBe(idx.descriptor.digest);
    expect(top.manifests[0]!.mediaType).toBe(MediaType.OciIndex);
  });
});

describe("writeDockerArchive", () => {
  it("writes an archive skopeo reads, with the config digest as image ID", async () => {
    const file = join(dir, "img.tar");
    const built = await writeDockerArchive(
      file,
      { layers: [tree, [{ path: "b", type: "file", content: "b" }]] },
      { repoTags: ["example.com/app:1"] },
    );
    const names = (await tarEntries(file, false)).map((e) => e.name);
    expect(names).toContain("manifest.json");
    expect(names).toContain("repositories");
    expect(names).toContain(`${digestHex(built.imageId)}.json`);
    const out = execFileSync("skopeo", ["inspect", "--config", "--raw", `docker-archive:${file}`]);
    expect(out.equals(built.configBytes)).toBe(true);
    await expect(readdir(dir)).resolves.toEqual(["img.tar"]);
  });
});

describe("directoryEntries", () => {
  it("walks a real tree: parents first, sorted, hard links by inode, symlinks, fifos, prefix", async () => {
    const root = join(dir, "tree");
    execFileSync("sh", [
      "-c",
      `mkdir -p ${root}/b/c && printf hi > ${root}/b/c/f && ln ${root}/b/c/f ${root}/a-hard && ln -s b/c/f ${root}/z-link && mkfifo ${root}/p`,
    ]);
    const got: FileEntry[] = [];
    for await (const e of directoryEntries(root, "/pre/")) got.push(e);
    expect(got.map((e) => [e.path, e.type, e.linkname])).toEqual([
      ["pre/a-hard", "file", undefined],
      ["pre/b", "dir", undefined],
      ["pre/b/c", "dir", undefined],
      ["pre/b/c/f", "hardlink", "pre/a-hard"],
      ["pre/p", "fifo", undefined],
      ["pre/z-link", "symlink", "b/c/f"],
    ]);
    const img = await writeOciLayout(join(dir, "layout"), { layers: [{ entries: directoryEntries(root) }] });
    const names = await tarEntries(
      join(dir, "layout", "blobs", "sha256", digestHex(img.layers[0]!.digest)),
      true,
    );
    expect(names.find((e) => e.name === "a-hard")!.body).toBe("hi");
  });
});

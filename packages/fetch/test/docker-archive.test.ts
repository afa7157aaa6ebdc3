// importDockerArchive and validateDockerArchive on archives written by real skopeo and on
// hand-made current and legacy (`repositories`) ones, against a real LocalStore.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { pack } from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, MediaType } from "@rkt/oci";
import { LocalStore, fsck, listImages } from "@rkt/store";
import { importDockerArchive } from "../src/local-import.js";
import { validateFile } from "../src/validate.js";
import { withStoreIn } from "./store-helpers.js";

const repo = resolve(import.meta.dirname, "..", "..", "..");
const helloOci = join(repo, "examples", "hello-oci");

let tmp: string;
let skopeoArchive: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-docker-archive-"));
  skopeoArchive = join(tmp, "hello.tar");
  execFileSync("skopeo", [
    "copy",
    "-q",
    `oci:${helloOci}`,
    `docker-archive:${skopeoArchive}:example.com/hello:1.0`,
  ]);
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function withStore<T>(fn: (s: LocalStore) => Promise<T>): Promise<T> {
  return withStoreIn(tmp, fn);
}

const sha = (b: Buffer | string): string => createHash("sha256").update(b).digest("hex");

async function tarOf(
  files: Record<string, string | Buffer>,
  links: Record<string, string> = {},
): Promise<Buffer> {
  const p = pack();
  for (const [name, body] of Object.entries(files)) p.entry({ name }, body);
  for (const [name, linkname] of Object.entries(links)) p.entry({ name, type: "symlink", linkname });
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of Readable.from(p as AsyncIterable<Buffer>)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A layer tar holding one file. */
async function layer(path: string, content: string): Promise<Buffer> {
  return tarOf({ [path]: content });
}

function configOf(layers: Buffer[], extra: Record<string, unknown> = {}): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Cmd: ["/hello"] },
      rootfs: { type: "layers", diff_ids: layers.map((l) => `sha256:${sha(l)}`) },
      ...extra,
    }),
  );
}

/** The files of a current-form image: `<diffid>.tar` layers, `<configdigest>.json`. */
function imageFiles(layers: Buffer[], config: Buffer): { files: Record<string, Buffer>; entry: object } {
  const files: Record<string, Buffer> = {};
  for (const l of layers) files[`${sha(l)}.tar`] = l;
  const cfgName = `${sha(config)}.json`;
  files[cfgName] = config;
  return { files, entry: { Config: cfgName, Layers: layers.map((l) => `${sha(l)}.tar`) } };
}

async function currentArchive(
  name: string,
  images: { tags: string[]; layers: Buffer[]; config?: Buffer }[],
): Promise<string> {
  let files: Record<string, Buffer | string> = {};
  const manifest: object[] = [];
  for (const img of images) {
    const x = imageFiles(img.layers, img.config ?? configOf(img.layers));
    files = { ...files, ...x.files };
    manifest.push({ ...x.entry, RepoTags: img.tags });
  }
  files["manifest.json"] = JSON.stringify(manifest);
  const f = join(tmp, name);
  writeFileSync(f, await tarOf(files));
  return f;
}

/** A legacy archive: `<id>/json` chained by parent, `<id>/layer.tar`, `repositories`. */
async function legacyArchive(
  name: string,
  layers: Buffer[],
  tags: Record<string, Record<string, number>>,
): Promise<{ file: string; ids: string[] }> {
  const files: Record<string, Buffer | string> = {};
  const ids: string[] = [];
  layers.forEach((l, i) => {
    const id = sha(`legacy-${name}-${i}`);
    ids.push(id);
    files[`${id}/VERSION`] = "1.0";
    files[`${id}/layer.tar`] = l;
    files[`${id}/json`] = JSON.stringify({
      id,
      ...(i > 0 ? { parent: ids[i - 1] } : {}),
      created: `2016-01-0${i + 1}T00:00:00Z`,
      container_config: { Cmd: ["/bin/sh", "-c", `step ${i}`] },
      config: { Cmd: ["/hello"] },
      architecture: "amd64",
      os: "linux",
    });
  });
  const repos: Record<string, Record<string, string>> = {};
  for (const [r, t] of Object.entries(tags)) {
    repos[r] = {};
    for (const [tag, top] of Object.entries(t)) repos[r][tag] = ids[top]!;
  }
  files["repositories"] = JSON.stringify(repos);
  const file = join(tmp, name);
  writeFileSync(file, await tarOf(files));
  return { file, ids };
}

async function expectNothingStored(s: LocalStore): Promise<void> {
  expect(listImages(s)).toEqual([]);
  const r = await fsck(s);
  expect(r.problems).toEqual([]);
  expect(r.garbage).toEqual([]);
}

describe("importDockerArchive", () => {
  it("imports skopeo's archive: layers as stored, a deterministic schema2 manifest, RepoTag as name", async () => {
    await withStore(async (s) => {
      const r = await importDockerArchive(s, skopeoArchive);
      expect(r).toMatchObject({ kind: "oci", name: "example.com/hello", bytesReused: 0 });
      expect(r.digests).toHaveLength(3);
      const manifest = JSON.parse(readFileSync(s.blobFile(r.id as never), "utf8")) as {
        mediaType: string;
        config: { mediaType: string; size: number };
        layers: { mediaType: string; digest: string; size: number }[];
      };
      expect(manifest.mediaType).toBe(MediaType.DockerManifest);
      expect(manifest.config.mediaType).toBe(MediaType.DockerConfig);
      expect(manifest.layers.map((l) => l.mediaType)).toEqual([MediaType.DockerLayer]);
      // The layer blob is the archive's `<diffid>.tar`, byte for byte.
      const layerName = `${manifest.layers[0]!.digest.slice(7)}.tar`;
      const fromArchive = execFileSync("tar", ["xOf", skopeoArchive, layerName]);
      expect(readFileSync(s.blobFile(manifest.layers[0]!.digest as never))).toEqual(fromArchive);
      // Layer and config bytes.
      expect(r.bytesWritten).toBe(fromArchive.length + manifest.config.size);
      expect(listImages(s)[0]!.labels).toMatchObject({ version: "1.0", os: "linux", arch: "amd64" });
      // Again, and from a gzip of the archive: the same ID, nothing written.
      const again = await importDockerArchive(s, skopeoArchive);
      expect(again.id).toBe(r.id);
      expect(again).toMatchObject({
        bytesWritten: 0,
        bytesReused: fromArchive.length + manifest.config.size,
      });
      const gz = join(tmp, "hello.tar.gz");
      writeFileSync(gz, gzipSync(readFileSync(skopeoArchive)));
      expect((await importDockerArchive(s, gz)).id).toBe(r.id);
      expect((await fsck(s)).clean).toBe(true);
    });
    expect(await validateFile(skopeoArchive)).toMatchObject({ type: "docker-archive", ok: true });
  });

  it("selects among several images by NAME:TAG, @DIGEST and @N; no selector is ambiguous", async () => {
    const a = await layer("a", "first");
    const b = await layer("b", "second");
    const f = await currentArchive("two.tar", [
      { tags: ["example.com/one:1", "example.com/one:latest"], layers: [a] },
      { tags: ["busybox:2"], layers: [a, b] },
    ]);
    await withStore(async (s) => {
      const err = await importDockerArchive(s, f, { what: "docker-archive:two.tar" }).catch(
        (e: unknown) => e,
      );
      expect(err).toMatchObject({
        code: ErrorCode.Ambiguous,
        message:
          "docker-archive:two.tar: the archive holds 2 images, name one with :NAME:TAG or :@N: @0 (example.com/one:1, example.com/one:latest); @1 (busybox:2)",
      });
      await expectNothingStored(s);
      const { parseDockerReference } = await import("@rkt/oci");
      // A Docker Hub short name matches its normalised form.
      const byTag = await importDockerArchive(s, f, {
        ref: parseDockerReference("docker.io/library/busybox:2"),
      });
      expect(byTag.digests).toHaveLength(4);
      expect(byTag.name).toBe("docker.io/library/busybox");
      const byIndex = await importDockerArchive(s, f, { index: 1 });
      expect(byIndex.id).toBe(byTag.id);
      expect(byIndex.bytesWritten).toBe(0);
      const cfg = configOf([a]);
      const byDigest = await importDockerArchive(s, f, { digest: `sha256:${sha(cfg)}` as never });
      expect(byDigest).toMatchObject({ name: "example.com/one", bytesReused: a.length });
      const missing = await importDockerArchive(s, f, { ref: parseDockerReference("nope:1") }).catch(
        (e: unknown) => e,
      );
      expect(missing).toMatchObject({ code: ErrorCode.NotFound });
      expect((missing as Error).message).toMatch(/no image tagged nope:1: the archive holds @0/);
      expect((await importDockerArchive(s, f, { index: 2 }).catch((e: unknown) => e)) as Error).toMatchObject(
        {
          code: ErrorCode.NotFound,
        },
      );
    });
  });

  it("imports a legacy archive: layers by parent chain, a config made from the top layer's JSON", async () => {
    const l0 = await layer("etc/base", "base");
    const l1 = await layer("app", "app");
    const { file } = await legacyArchive("legacy.tar", [l0, l1], { "example.com/old": { v1: 1 } });
    expect(await validateFile(file)).toMatchObject({ type: "docker-archive", ok: true, issues: [] });
    await withStore(async (s) => {
      const r = await importDockerArchive(s, file);
      expect(r.name).toBe("example.com/old");
      expect(r.digests.slice(2)).toEqual([`sha256:${sha(l0)}`, `sha256:${sha(l1)}`]);
      const config = JSON.parse(readFileSync(s.blobFile(r.digests[1] as never), "utf8")) as Record<
        string,
        unknown
      >;
      expect(config).toMatchObject({
        architecture: "amd64",
        os: "linux",
        config: { Cmd: ["/hello"] },
        rootfs: { type: "layers", diff_ids: [`sha256:${sha(l0)}`, `sha256:${sha(l1)}`] },
        history: [
          { created: "2016-01-01T00:00:00Z", created_by: "/bin/sh -c step 0" },
          { created: "2016-01-02T00:00:00Z", created_by: "/bin/sh -c step 1" },
        ],
      });
      expect((await importDockerArchive(s, file)).id).toBe(r.id);
      expect((await fsck(s)).clean).toBe(true);
    });
  });

  it("reads Docker 25+ archives: configs and layers under blobs/sha256/, layers not held as documents", async () => {
    // Many small layers: more than the 64 MiB document budget if they were buffered as JSON.
    const layers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => layer(`f${i}`, `${i}`.repeat(4 << 20).slice(0, (4 << 20) - 4096))),
    );
    const config = configOf(layers);
    const files: Record<string, Buffer | string> = { "oci-layout": '{"imageLayoutVersion":"1.0.0"}' };
    for (const l of [...layers, config]) files[`blobs/sha256/${sha(l)}`] = l;
    files["manifest.json"] = JSON.stringify([
      {
        Config: `blobs/sha256/${sha(config)}`,
        RepoTags: ["example.com/new:25"],
        Layers: layers.map((l) => `blobs/sha256/${sha(l)}`),
      },
    ]);
    const f = join(tmp, "docker25.tar");
    writeFileSync(f, await tarOf(files));
    // Such an archive is also an OCI layout (validateFile detects it as one); as a docker-archive:
    expect(await validateFile(f, "docker-archive")).toMatchObject({ ok: true, issues: [] });
    await withStore(async (s) => {
      const r = await importDockerArchive(s, f);
      expect(r.digests.slice(2)).toEqual(layers.map((l) => `sha256:${sha(l)}`));
      expect(r.digests[1]).toBe(`sha256:${sha(config)}`);
    });
  });

  it("two imports of one archive at once into one store: both succeed, one copy of each layer", async () => {
    const big = await layer("big", "x".repeat(8 << 20));
    const f = await currentArchive("concurrent.tar", [
      { tags: ["c:1"], layers: [big, await layer("s", "s")] },
    ]);
    const dir = mkdtempSync(join(tmp, "store-"));
    const [s1, s2] = [await LocalStore.open(dir), await LocalStore.open(dir)];
    try {
      const [a, b] = await Promise.all([importDockerArchive(s1, f), importDockerArchive(s2, f)]);
      expect(a.id).toBe(b.id);
      const config = readFileSync(s1.blobFile(a.digests[1] as never)).length;
      expect(a.bytesWritten + b.bytesWritten).toBe(big.length + (await layer("s", "s")).length + config);
      expect((await fsck(s1)).clean).toBe(true);
    } finally {
      s1.close();
      s2.close();
    }
  });

  it("refuses a legacy archive whose parent chain is broken, at the tag's path; validate agrees", async () => {
    const l0 = await layer("a", "a");
    const l1 = await layer("b", "b");
    const { file, ids } = await legacyArchive("legacy-broken.tar", [l0, l1], {
      "example.com/old": { v1: 1 },
    });
    // Drop the base layer's json: the chain from the top ends nowhere.
    const x = join(tmp, "x");
    execFileSync("mkdir", ["-p", x]);
    execFileSync("tar", ["xf", file, "-C", x]);
    rmSync(join(x, ids[0]!, "json"));
    const broken = join(tmp, "legacy-broken2.tar");
    execFileSync("tar", ["cf", broken, "-C", x, "."]);
    const want = `$["example.com/old"]["v1"]: layer ${ids[0]}: ${ids[0]}/json is missing`;
    await withStore(async (s) => {
      const e = (await importDockerArchive(s, broken).catch((err: unknown) => err)) as Error & {
        code: string;
      };
      expect(e).toMatchObject({
        code: ErrorCode.InvalidArchive,
        message: `docker-archive:${broken}: ${want}`,
      });
      await expectNothingStored(s);
    });
    const v = await validateFile(broken, "docker-archive");
    expect(v.issues.map((i) => `${i.path}: ${i.message}`)).toEqual([want]);
  });

  it("keeps a gzip layer compressed, its diff_id checked through a decompressor", async () => {
    const plain = await layer("z", "zipped");
    const gz = gzipSync(plain);
    const config = configOf([plain]);
    const cfgName = `${sha(config)}.json`;
    const f = join(tmp, "gzlayer.tar");
    writeFileSync(
      f,
      await tarOf({
        "l/layer.tar": gz,
        [cfgName]: config,
        "manifest.json": JSON.stringify([{ Config: cfgName, RepoTags: ["gz:1"], Layers: ["l/layer.tar"] }]),
      }),
    );
    expect(await validateFile(f)).toMatchObject({ ok: true });
    await withStore(async (s) => {
      const r = await importDockerArchive(s, f);
      expect(r.digests[2]).toBe(`sha256:${sha(gz)}`);
      const m = JSON.parse(readFileSync(s.blobFile(r.id as never), "utf8")) as {
        layers: { mediaType: string }[];
      };
      expect(m.layers[0]!.mediaType).toBe(MediaType.DockerLayerGzip);
    });
  });

  it("refuses an xz layer (no layer media type names it); validate says the same", async () => {
    const plain = await layer("x", "xz");
    const xz = execFileSync("xz", ["-c"], { input: plain });
    const config = configOf([plain]);
    const cfgName = `${sha(config)}.json`;
    const f = join(tmp, "xzlayer.tar");
    writeFileSync(
      f,
      await tarOf({
        "l/layer.tar": xz,
        [cfgName]: config,
        "manifest.json": JSON.stringify([{ Config: cfgName, RepoTags: ["xz:1"], Layers: ["l/layer.tar"] }]),
      }),
    );
    const want = "layer l/layer.tar is xz-compressed (only plain, gzip or zstd layers are supported)";
    expect((await validateFile(f, "docker-archive")).issues).toEqual([
      { path: "$[0].Layers[0]", message: want },
    ]);
    await withStore(async (s) => {
      const e = (await importDockerArchive(s, f).catch((err: unknown) => err)) as Error & { code: string };
      expect(e).toMatchObject({
        code: ErrorCode.UnsupportedMediaType,
        message: `docker-archive:${f}: ${want}`,
      });
      await expectNothingStored(s);
    });
  });

  it("refuses a missing layer, a diff_id mismatch and a truncated archive; nothing is stored", async () => {
    const a = await layer("a", "one");
    const b = await layer("b", "two");
    const good = await currentArchive("good.tar", [{ tags: ["x:1"], layers: [a, b] }]);
    const cfg = configOf([a, b]);
    // Missing: the manifest names a layer the archive lacks.
    const x = imageFiles([a, b], cfg);
    delete x.files[`${sha(b)}.tar`];
    const missing = join(tmp, "missing.tar");
    writeFileSync(
      missing,
      await tarOf({ ...x.files, "manifest.json": JSON.stringify([{ ...x.entry, RepoTags: ["x:1"] }]) }),
    );
    // Mismatch: the second layer's file holds other bytes (the first is stored before it fails).
    const y = imageFiles([a, b], cfg);
    y.files[`${sha(b)}.tar`] = await layer("b", "not two");
    const mismatch = join(tmp, "mismatch.tar");
    writeFileSync(
      mismatch,
      await tarOf({ ...y.files, "manifest.json": JSON.stringify([{ ...y.entry, RepoTags: ["x:1"] }]) }),
    );
    const truncated = join(tmp, "truncated.tar");
    writeFileSync(truncated, readFileSync(good));
    truncateSync(truncated, 1500);
    const cases: [string, string, RegExp][] = [
      [missing, ErrorCode.InvalidArchive, /: \$\[0\]\.Layers\[1\]: layer [0-9a-f]{64}\.tar is missing$/],
      [
        mismatch,
        ErrorCode.DigestMismatch,
        /: layer [0-9a-f]{64}\.tar: diff_id mismatch: config says sha256:[0-9a-f]{64}, content is sha256:[0-9a-f]{64}$/,
      ],
      [truncated, ErrorCode.InvalidArchive, /not a readable tar archive/],
    ];
    for (const [file, code, message] of cases) {
      await withStore(async (s) => {
        const e = (await importDockerArchive(s, file).catch((err: unknown) => err)) as Error & {
          code: string;
        };
        expect(e.code).toBe(code);
        expect(e.message).toMatch(message);
        expect(e.message.startsWith(`docker-archive:${file}: `)).toBe(true);
        await expectNothingStored(s);
      });
      // Validation refuses the same archive, with the same words.
      const v = await validateFile(file, "docker-archive");
      expect(v.ok).toBe(false);
      expect(v.issues.map((i) => i.message).join("\n")).toMatch(
        new RegExp(message.source.replace(/^: (\\\$\\\[0\\\]\\\.Layers\\\[1\\\]: )?/, "").replace(/\$$/, "")),
      );
    }
  });
});

// Validation I/O on real layouts (umoci, skopeo), hand-corrupted copies, ACIs, docker-archives and
// single documents; verdicts on good layouts are cross-checked with oci-image-tool.
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { writeAci } from "@rkt/appc";
import { ErrorCode, digestOf, isRktError } from "@rkt/oci";
import { rawTar } from "@rkt/testkit";
import { pack } from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openOciLayout } from "../src/oci-layout.js";
import {
  detectInputType,
  validateDockerArchive,
  validateFile,
  validateLayout,
  type ValidationResult,
} from "../src/validate.js";

let tmp: string;
let umociLayout: string;
let skopeoLayout: string;

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function copyLayout(src: string, name: string): string {
  const dst = join(tmp, name);
  cpSync(src, dst, { recursive: true });
  return dst;
}

// The manifest of the layout's first index entry, and its blob path.
interface Desc {
  digest: string;
  size: number;
}
type ManifestJson = { config: Desc; layers: Desc[] } & Record<string, unknown>;

function firstManifest(dir: string): { path: string; json: ManifestJson } {
  const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8"));
  const path = join(dir, "blobs", "sha256", String(index.manifests[0].digest).slice(7));
  return { path, json: JSON.parse(readFileSync(path, "utf8")) as ManifestJson };
}

function blobFile(dir: string, digest: string): string {
  return join(dir, "blobs", "sha256", digest.slice(7));
}

// Rewrites a manifest blob and repoints index.json at it (so the index itself stays valid).
function replaceManifest(dir: string, json: unknown): void {
  const bytes = Buffer.from(JSON.stringify(json));
  const d = digestOf(bytes);
  writeFileSync(blobFile(dir, d), bytes);
  const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8"));
  index.manifests[0].digest = d;
  index.manifests[0].size = bytes.length;
  writeFileSync(join(dir, "index.json"), JSON.stringify(index));
}

function issuesOf(r: ValidationResult): string[] {
  return r.issues.map((i) => `${i.path}: ${i.message}`);
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-validate-test-"));
  umociLayout = join(tmp, "umoci");
  sh("umoci", ["init", "--layout", umociLayout]);
  sh("umoci", ["new", "--image", `${umociLayout}:v1`]);
  const bundle = join(tmp, "bundle");
  sh("umoci", ["unpack", "--rootless", "--image", `${umociLayout}:v1`, bundle]);
  mkdirSync(join(bundle, "rootfs", "etc"), { recursive: true });
  writeFileSync(join(bundle, "rootfs", "etc", "hello"), "hello from umoci\n");
  sh("umoci", ["repack", "--image", `${umociLayout}:v1`, bundle]);
  skopeoLayout = join(tmp, "skopeo");
  sh("skopeo", ["copy", "-q", `oci:${umociLayout}:v1`, `oci:${skopeoLayout}:copied`]);
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe("validateLayout on layouts made by peers", () => {
  it("accepts umoci's layout (one layer) and agrees with oci-image-tool", async () => {
    const { json } = firstManifest(umociLayout);
    expect(json["layers"]).toHaveLength(1);
    const r = await validateLayout(umociLayout);
    expect(r).toEqual({ path: umociLayout, type: "layout", ok: true, issues: [] });
    const peer = spawnSync("oci-image-tool", ["validate", "--type", "image", umociLayout], {
      encoding: "utf8",
    });
    expect(peer.status).toBe(0);
  });

  it("accepts skopeo's copy and agrees with oci-image-tool", async () => {
    expect((await validateFile(skopeoLayout)).ok).toBe(true);
    const peer = spawnSync("oci-image-tool", ["validate", "--type", "image", skopeoLayout], {
      encoding: "utf8",
    });
    expect(peer.status).toBe(0);
  });

  it("detects a directory with oci-layout as a layout", async () => {
    expect(await detectInputType(umociLayout)).toEqual({ type: "layout" });
  });

  it("validates an oci-archive (a tar of a layout)", async () => {
    const archive = join(tmp, "image.oci.tar");
    sh("skopeo", ["copy", "-q", `oci:${umociLayout}:v1`, `oci-archive:${archive}:v1`]);
    expect(await detectInputType(archive)).toEqual({ type: "layout" });
    expect(await validateFile(archive)).toMatchObject({ type: "layout", ok: true });
  });
});

describe("validateLayout on corrupted layouts", () => {
  it("names the blob whose digest does not match after a flipped byte", async () => {
    const dir = copyLayout(umociLayout, "flipped");
    const layer = firstManifest(dir).json.layers[0]!;
    const file = blobFile(dir, layer.digest);
    const bytes = readFileSync(file);
    bytes[100] = bytes[100]! ^ 0xff;
    writeFileSync(file, bytes);
    const r = await validateLayout(dir);
    expect(r.ok).toBe(false);
    expect(r.issues).toHaveLength(1);
    expect(r.issues[0]!.path).toBe("$.manifests[0].layers[0]");
    expect(r.issues[0]!.message).toContain(
      `blob ${layer.digest}: digest mismatch: expected ${layer.digest}, got sha256:`,
    );
    // The peer agrees: same verdict on the same corruption.
    const peer = spawnSync("oci-image-tool", ["validate", "--type", "image", dir], { encoding: "utf8" });
    expect(peer.status).not.toBe(0);
    expect(peer.stderr).toMatch(/digest mismatch/);
  });

  it("reports a size mismatch for a truncated blob", async () => {
    const dir = copyLayout(umociLayout, "truncated");
    const layer = firstManifest(dir).json.layers[0]!;
    const file = blobFile(dir, layer.digest);
    writeFileSync(file, readFileSync(file).subarray(0, 10));
    const r = await validateLayout(dir);
    expect(issuesOf(r)).toEqual([
      `$.manifests[0].layers[0]: blob ${layer.digest}: size mismatch: expected ${layer.size} bytes, got 10`,
    ]);
  });

  it("reports a missing blob", async () => {
    const dir = copyLayout(umociLayout, "missing");
    const cfg = firstManifest(dir).json["config"];
    unlinkSync(blobFile(dir, cfg.digest));
    const r = await validateLayout(dir);
    expect(issuesOf(r)).toEqual([
      `$.manifests[0].config: blob ${cfg.digest} is missing (blobs/sha256/${String(cfg.digest).slice(7)})`,
    ]);
  });

  it("reports an invalid manifest field with its JSON path through the index", async () => {
    const dir = copyLayout(umociLayout, "badfield");
    const m = firstManifest(dir).json;
    m.layers[0]!.size = -1;
    replaceManifest(dir, m);
    const r = await validateLayout(dir);
    expect(r.ok).toBe(false);
    expect(r.issues[0]!.path).toBe("$.manifests[0].layers[0].size");
    expect(r.issues[0]!.message).toMatch(/size/);
  });

  // image-manifest-schema.json: layers has minItems 1. `umoci new` writes `"layers": []`.
  it("refuses an image manifest without layers, as oci-image-tool does", async () => {
    const dir = join(tmp, "umoci-empty");
    sh("umoci", ["init", "--layout", dir]);
    sh("umoci", ["new", "--image", `${dir}:v1`]);
    const { path } = firstManifest(dir);
    expect(issuesOf(await validateLayout(dir))).toEqual([
      `$.manifests[0].layers: an image manifest needs at least one layer (in blob sha256:${basename(path)})`,
    ]);
    const peer = spawnSync("oci-image-tool", ["validate", "--type", "manifest", path], { encoding: "utf8" });
    expect(peer.status).not.toBe(0);
    expect(peer.stderr).toMatch(/layers: Array must have at least 1 items/);
  });

  it("reports an invalid config field with its path below the config descriptor", async () => {
    const dir = copyLayout(umociLayout, "badconfig");
    const m = firstManifest(dir).json;
    const cfg = JSON.parse(readFileSync(blobFile(dir, m["config"].digest), "utf8"));
    cfg.rootfs.type = "squashfs";
    const bytes = Buffer.from(JSON.stringify(cfg));
    writeFileSync(blobFile(dir, digestOf(bytes)), bytes);
    m["config"] = { ...m["config"], digest: digestOf(bytes), size: bytes.length };
    replaceManifest(dir, m);
    const r = await validateLayout(dir);
    expect(issuesOf(r)).toEqual([
      expect.stringMatching(/^\$\.manifests\[0\]\.config\.rootfs\.type: rootfs\.type must be "layers"/),
    ]);
  });

  it("refuses a bad oci-layout version and a missing oci-layout", async () => {
    const dir = copyLayout(umociLayout, "badversion");
    writeFileSync(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "2.0.0" }));
    const r = await validateLayout(dir);
    expect(issuesOf(r)).toEqual(['$: oci-layout: $.imageLayoutVersion: imageLayoutVersion must be "1.0.0"']);
    unlinkSync(join(dir, "oci-layout"));
    expect(issuesOf(await validateLayout(dir))).toEqual(["$: oci-layout is missing"]);
    expect(await detectInputType(dir)).toMatchObject({
      problem: expect.stringMatching(/no oci-layout file/),
    });
  });

  it("validates an oci-layout file on its own, by --type layout or detected", async () => {
    const f = join(tmp, "lone-oci-layout");
    writeFileSync(f, '{"imageLayoutVersion":"1.0.0","extra":true}');
    expect(await validateFile(f, "layout")).toMatchObject({ type: "layout", ok: true, issues: [] });
    expect(await detectInputType(f)).toEqual({ type: "layout" });
    for (const [text, issue] of [
      ['{"imageLayoutVersion":"2.0.0"}', '$.imageLayoutVersion: imageLayoutVersion must be "1.0.0"'],
      ["{}", "$.imageLayoutVersion: required field is missing"],
      ['{"imageLayoutVersion":"1.0.0",', expect.stringMatching(/^\$: /)],
    ] as const) {
      writeFileSync(f, text);
      expect(issuesOf(await validateFile(f, "layout"))).toEqual([issue]);
    }
  });

  it("reports an index.json that is not an index", async () => {
    const dir = copyLayout(umociLayout, "badindex");
    writeFileSync(join(dir, "index.json"), '{"schemaVersion": 2, "manifests": [{"digest": "sha256:xyz"}]}');
    const r = await validateLayout(dir);
    expect(r.ok).toBe(false);
    expect(r.issues[0]!.path).toMatch(/^\$\.manifests\[0\]/);
    expect(r.issues[0]!.message).toMatch(/^index\.json: /);
  });
});

// descriptor.md: a digest of an algorithm that is not registered is valid in a document; content
// under it is refused only when it has to be verified, with "unsupported algorithm".
describe("digests of algorithms this project does not compute", () => {
  const multihash = "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8";

  it("accepts a manifest naming one as a single document", async () => {
    const m = firstManifest(umociLayout).json;
    const f = join(tmp, "multihash-manifest.json");
    writeFileSync(f, JSON.stringify({ ...m, layers: [{ ...m.layers[0]!, digest: multihash }] }));
    expect(await validateFile(f, "oci-manifest")).toMatchObject({ ok: true, issues: [] });
  });

  it("refuses the blob in a layout, where it has to be verified", async () => {
    const dir = copyLayout(umociLayout, "blake3");
    const m = firstManifest(dir).json;
    const layer = m.layers[0]!;
    const blake3 = `blake3:${layer.digest.slice(7)}`;
    mkdirSync(join(dir, "blobs", "blake3"));
    cpSync(blobFile(dir, layer.digest), join(dir, "blobs", "blake3", layer.digest.slice(7)));
    replaceManifest(dir, { ...m, layers: [{ ...layer, digest: blake3 }] });
    const r = await validateLayout(dir);
    expect(issuesOf(r)).toEqual([
      `$.manifests[0].layers[0]: cannot verify content of ${blake3}: unsupported algorithm "blake3" (sha256 and sha512 are)`,
    ]);
  });
});

// Found by test/fuzz (archives): an entry draining a directory that declares a size waited
// forever, and `rkt image validate` exited 0 without a word.
describe("archives with directories that declare a size", () => {
  it("get a verdict", async () => {
    const f = join(tmp, "dir-size.tar");
    writeFileSync(
      f,
      rawTar([
        { name: "d/", type: "5", size: 237 },
        { name: "manifest.json", body: "[]" },
      ]),
    );
    const r = await validateFile(f);
    expect(r.type).toBe("docker-archive");
    expect(r.ok).toBe(false);
  });
});

describe("nested indexes", () => {
  it("walks an index inside index.json and reports paths through both", async () => {
    const dir = copyLayout(umociLayout, "nested");
    const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8")) as {
      manifests: (Desc & { mediaType: string })[];
    };
    const inner = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: index.manifests,
      }),
    );
    writeFileSync(blobFile(dir, digestOf(inner)), inner);
    const outer = {
      schemaVersion: 2,
      manifests: [
        { mediaType: "application/vnd.oci.image.index.v1+json", digest: digestOf(inner), size: inner.length },
      ],
    };
    writeFileSync(join(dir, "index.json"), JSON.stringify(outer));
    expect(await validateLayout(dir)).toMatchObject({ ok: true });
    const layer = firstManifestOf(dir, index.manifests[0]!.digest).layers[0]!;
    unlinkSync(blobFile(dir, layer.digest));
    expect(issuesOf(await validateLayout(dir))).toEqual([
      `$.manifests[0].manifests[0].layers[0]: blob ${layer.digest} is missing (blobs/sha256/${layer.digest.slice(7)})`,
    ]);
  });
});

function firstManifestOf(dir: string, digest: string): ManifestJson {
  return JSON.parse(readFileSync(blobFile(dir, digest), "utf8")) as ManifestJson;
}

describe("OciLayoutReader", () => {
  it("resolves refs and streams verified blobs", async () => {
    const layout = await openOciLayout(skopeoLayout);
    const d = layout.resolve("copied");
    expect(layout.resolve()).toEqual(d);
    expect(() => layout.resolve("nope")).toThrow(/no image named "nope"/);
    const chunks: Buffer[] = [];
    for await (const c of await layout.openBlob(d)) chunks.push(c as Buffer);
    expect(digestOf(Buffer.concat(chunks))).toBe(d.digest);
  });

  it("fails the stream of a blob that does not match, and throws RKT_NOT_FOUND for a missing one", async () => {
    const layout = await openOciLayout(umociLayout);
    const d = layout.resolve("v1");
    const wrong = { digest: d.digest, size: d.size + 1 };
    await expect(
      (async () => {
        for await (const _ of await layout.openBlob(wrong));
      })(),
    ).rejects.toMatchObject({ code: ErrorCode.SizeMismatch });
    const absent = { digest: digestOf("nothing"), size: 7 };
    const e: unknown = await layout.openBlob(absent).catch((x: unknown) => x);
    expect(isRktError(e, ErrorCode.NotFound)).toBe(true);
  });
});

async function aciBytes(manifest: string, gzip = true): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const entries = [{ header: { name: "bin/x", type: "file" as const, mode: 0o755 }, body: "#!/bin/sh\n" }];
  for await (const c of writeAci(manifest, entries)) chunks.push(c as Buffer);
  const tar = Buffer.concat(chunks);
  return gzip ? gzipSync(tar) : tar;
}

async function tarOf(files: Record<string, string | Buffer>): Promise<Buffer> {
  const p = pack();
  for (const [name, body] of Object.entries(files)) p.entry({ name }, body);
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of Readable.from(p as AsyncIterable<Buffer>)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const goodManifest = JSON.stringify({ acKind: "ImageManifest", acVersion: "0.8.11", name: "example.com/x" });

describe("ACIs", () => {
  it("accepts a valid ACI (gzip and plain) and detects it", async () => {
    for (const gz of [true, false]) {
      const f = join(tmp, `good-${gz}.aci`);
      writeFileSync(f, await aciBytes(goodManifest, gz));
      expect(await detectInputType(f)).toEqual({ type: "aci" });
      expect(await validateFile(f)).toEqual({ path: f, type: "aci", ok: true, issues: [] });
    }
  });

  it("reports each manifest issue with its path", async () => {
    const f = join(tmp, "badname.aci");
    // The writer refuses bad manifests, so build the tar by hand.
    const bad = JSON.stringify({ acKind: "ImageManifest", acVersion: "0.8.11", name: "Bad Name!" });
    writeFileSync(f, await tarOf({ manifest: bad, "rootfs/x": "x" }));
    const r = await validateFile(f, "aci");
    expect(r.ok).toBe(false);
    expect(r.issues[0]!.path).toBe("$.name");
    expect(r.issues[0]!.message).toMatch(/^manifest: /);
  });

  it("refuses a tar without a manifest and a tar with foreign entries", async () => {
    const f = join(tmp, "nomanifest.aci");
    writeFileSync(f, await tarOf({ "rootfs/x": "x" }));
    expect(issuesOf(await validateFile(f))).toEqual(["$: ACI archive: no image manifest found in layout"]);
    const g = join(tmp, "foreign.aci");
    writeFileSync(g, await tarOf({ manifest: goodManifest, "rootfs/x": "x", "etc/passwd": "x" }));
    expect(issuesOf(await validateFile(g, "aci"))[0]).toMatch(
      /unrecognized file path in layout: "etc\/passwd"/,
    );
  });

  it("says so for a file that is neither JSON nor an archive", async () => {
    const f = join(tmp, "junk.bin");
    writeFileSync(f, Buffer.alloc(1000, 7));
    expect(issuesOf(await validateFile(f))).toEqual([
      "$: not a JSON document, a tar archive or a compressed archive",
    ]);
  });
});

describe("docker-archive", () => {
  it("accepts skopeo's docker-archive, detected by manifest.json", async () => {
    const f = join(tmp, "docker.tar");
    sh("skopeo", ["copy", "-q", `oci:${umociLayout}:v1`, `docker-archive:${f}:example/hello:v1`]);
    expect(await detectInputType(f)).toEqual({ type: "docker-archive" });
    expect(await validateDockerArchive(f)).toEqual({ path: f, type: "docker-archive", ok: true, issues: [] });
  });

  it("accepts a gzip-compressed docker-archive", async () => {
    const f = join(tmp, "docker.tar");
    const g = join(tmp, "docker.tar.gz");
    writeFileSync(g, gzipSync(readFileSync(f)));
    expect(await validateFile(g)).toMatchObject({ type: "docker-archive", ok: true });
  });

  it("reports a layer whose content does not match its diff_id, and a missing config", async () => {
    const cfg = Buffer.from(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        rootfs: { type: "layers", diff_ids: [digestOf("other")] },
      }),
    );
    const cfgName = `${digestOf(cfg).slice(7)}.json`;
    const manifest = JSON.stringify([{ Config: cfgName, RepoTags: ["x:1"], Layers: ["l1/layer.tar"] }]);
    const f = join(tmp, "bad-docker.tar");
    writeFileSync(
      f,
      await tarOf({ "manifest.json": manifest, [cfgName]: cfg, "l1/layer.tar": "not the layer" }),
    );
    const r = await validateFile(f);
    expect(r.type).toBe("docker-archive");
    expect(issuesOf(r)).toEqual([
      `$[0].Layers[0]: layer l1/layer.tar: diff_id mismatch: config says ${digestOf("other")}, content is ${digestOf("not the layer")}`,
    ]);
    const g = join(tmp, "nocfg-docker.tar");
    writeFileSync(g, await tarOf({ "manifest.json": manifest, "l1/layer.tar": "x" }));
    expect(issuesOf(await validateFile(g, "docker-archive"))).toEqual([
      `$[0].Config: config ${cfgName} is missing`,
    ]);
  });
});

describe("single documents", () => {
  function doc(name: string, v: unknown): string {
    const f = join(tmp, name);
    writeFileSync(f, typeof v === "string" ? v : JSON.stringify(v));
    return f;
  }

  it("detects and accepts manifests, indexes, configs, descriptors and appc manifests", async () => {
    const { path } = firstManifest(umociLayout);
    expect(await validateFile(path)).toMatchObject({ type: "oci-manifest", ok: true });
    expect(await validateFile(join(umociLayout, "index.json"))).toMatchObject({
      type: "oci-index",
      ok: true,
    });
    const cfg = blobFile(umociLayout, firstManifest(umociLayout).json["config"].digest);
    expect(await validateFile(cfg)).toMatchObject({ type: "oci-config", ok: true });
    const desc = doc("desc.json", { mediaType: "application/octet-stream", digest: digestOf("x"), size: 1 });
    expect(await validateFile(desc)).toMatchObject({ type: "descriptor", ok: true });
    expect(await validateFile(doc("im.json", goodManifest))).toMatchObject({
      type: "image-manifest",
      ok: true,
    });
  });

  it("validates pod manifests and reports their issues with paths", async () => {
    const good = doc("pod.json", { acKind: "PodManifest", acVersion: "0.8.11", apps: [] });
    expect(await validateFile(good)).toMatchObject({ type: "pod-manifest", ok: true });
    const bad = doc("badpod.json", { acKind: "PodManifest", acVersion: "0.8.11", apps: [{ name: "UPPER" }] });
    const r = await validateFile(bad);
    expect(r.type).toBe("pod-manifest");
    expect(r.ok).toBe(false);
    expect(r.issues[0]!.path).toMatch(/^\$\.apps\[0\]/);
  });

  it("reports duplicate keys and wrong types with paths, and honours --type", async () => {
    const dup = doc("dup.json", '{"schemaVersion":2,"schemaVersion":2,"config":{},"layers":[]}');
    expect((await validateFile(dup, "oci-manifest")).issues[0]!.message).toMatch(
      /duplicate key "schemaVersion"/,
    );
    const f = doc("m.json", {
      schemaVersion: 2,
      config: { mediaType: "a/b", digest: "sha256:abc", size: 1 },
      layers: [],
    });
    const r = await validateFile(f);
    expect(r.issues[0]!.path).toBe("$.config.digest");
    expect((await validateFile(f, "oci-index")).ok).toBe(false);
    expect(await detectInputType(doc("what.json", { hello: 1 }))).toMatchObject({
      problem: expect.stringMatching(/use --type/),
    });
  });
});

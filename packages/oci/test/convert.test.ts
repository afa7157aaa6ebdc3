import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { describe, expect, it } from "vitest";
import {
  MediaType,
  digestOf,
  imageFromRaw,
  parseIndexOrThrow,
  parseManifestOrThrow,
  toOciImage,
  type BlobFetcher,
  type Descriptor,
} from "../src/index.js";

// An in-memory source: documents and blobs by digest.
function memory(): { put(b: Uint8Array, mediaType: string): Descriptor; fetcher: BlobFetcher } {
  const blobs = new Map<string, Uint8Array>();
  return {
    put(b, mediaType) {
      const digest = digestOf(b);
      blobs.set(digest, b);
      return { mediaType, digest, size: b.length };
    },
    fetcher: {
      readDocument: (d) => Promise.resolve(blobs.get(d.digest)!),
      openBlob: (d) => Promise.resolve(Readable.from([Buffer.from(blobs.get(d.digest)!)])),
    },
  };
}

const json = (v: unknown) => Buffer.from(JSON.stringify(v));

function dockerImage(m: ReturnType<typeof memory>, arch: string) {
  const layer = m.put(Buffer.from(`layer ${arch}`), MediaType.DockerLayerGzip);
  const cfg = json({
    architecture: arch,
    os: "linux",
    rootfs: { type: "layers", diff_ids: [digestOf(Buffer.from("x"))] },
  });
  const config = m.put(cfg, MediaType.DockerConfig);
  const raw = json({ schemaVersion: 2, mediaType: MediaType.DockerManifest, config, layers: [layer] });
  return { desc: m.put(raw, MediaType.DockerManifest), raw, layer, config };
}

describe("toOciImage", () => {
  it("rewrites a Docker manifest with OCI types over the same blobs; OCI images pass unchanged", async () => {
    const m = memory();
    const d = dockerImage(m, "amd64");
    const img = imageFromRaw(d.raw, d.desc, m.fetcher, "t");
    const oci = await toOciImage(img, "t");
    if (oci.kind !== "image") throw new Error("not an image");
    expect(oci.descriptor.mediaType).toBe(MediaType.OciManifest);
    expect(oci.descriptor.digest).not.toBe(d.desc.digest);
    const parsed = parseManifestOrThrow(oci.rawManifest, MediaType.OciManifest, "t").value;
    expect(parsed.config).toMatchObject({ mediaType: MediaType.OciConfig, digest: d.config.digest });
    expect(parsed.layers).toEqual([{ ...d.layer, mediaType: MediaType.OciLayerGzip }]);
    expect(await buffer(await oci.blob(d.layer))).toEqual(Buffer.from("layer amd64"));
    expect((await oci.config())?.architecture).toBe("amd64");
    expect(await toOciImage(oci, "t")).toBe(oci);
  });

  it("rewrites a Docker manifest list, each child converted and named by its new digest", async () => {
    const m = memory();
    const a = dockerImage(m, "amd64");
    const b = dockerImage(m, "arm64");
    const list = json({
      schemaVersion: 2,
      mediaType: MediaType.DockerManifestList,
      manifests: [
        { ...a.desc, platform: { os: "linux", architecture: "amd64" } },
        { ...b.desc, platform: { os: "linux", architecture: "arm64" } },
      ],
    });
    const desc = m.put(list, MediaType.DockerManifestList);
    const idx = await toOciImage(imageFromRaw(list, desc, m.fetcher, "t"), "t");
    if (idx.kind !== "index") throw new Error("not an index");
    expect(idx.descriptor.mediaType).toBe(MediaType.OciIndex);
    const parsed = parseIndexOrThrow(idx.rawManifest, MediaType.OciIndex, "t").value;
    expect(parsed.manifests.map((x) => x.platform?.architecture)).toEqual(["amd64", "arm64"]);
    for (const entry of parsed.manifests) {
      expect(entry.mediaType).toBe(MediaType.OciManifest);
      const child = await idx.child(entry);
      expect(child.descriptor.digest).toBe(entry.digest);
      expect(digestOf(child.rawManifest)).toBe(entry.digest);
    }
  });
});

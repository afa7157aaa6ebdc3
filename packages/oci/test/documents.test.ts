import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  ErrorCode,
  MediaType,
  artifactTypeOf,
  chainIds,
  descriptorOf,
  isRktError,
  parseDigest,
  parseManifestOrIndex,
  parseManifestOrIndexOrThrow,
  type Manifest,
} from "@rkt/oci";

const d = (c: string) => parseDigest(`sha256:${c.repeat(64)}`);
const manifest = {
  schemaVersion: 2,
  config: { mediaType: MediaType.OciConfig, digest: d("b"), size: 10 },
  layers: [{ mediaType: MediaType.OciLayerGzip, digest: d("c"), size: 20 }],
};
const index = {
  schemaVersion: 2,
  manifests: [
    {
      mediaType: MediaType.OciManifest,
      digest: d("a"),
      size: 30,
      platform: { os: "linux", architecture: "amd64" },
    },
  ],
};

describe("parseManifestOrIndex", () => {
  it("tells manifests from indexes by mediaType, hint or shape", () => {
    const m = parseManifestOrIndex(JSON.stringify(manifest));
    expect(m.ok && m.value.kind).toBe("manifest");
    const i = parseManifestOrIndex(JSON.stringify(index));
    expect(i.ok && i.value.kind).toBe("index");
    if (i.ok && i.value.kind === "index") expect(i.value.index.manifests).toHaveLength(1);
    const list = parseManifestOrIndex(JSON.stringify({ ...index, mediaType: MediaType.DockerManifestList }));
    expect(list.ok && list.value.kind).toBe("index");
    const hinted = parseManifestOrIndex(JSON.stringify(index), MediaType.OciIndex);
    expect(hinted.ok && hinted.value.kind).toBe("index");
  });

  it("refuses what parseManifest refuses, with the same paths", () => {
    const bad = parseManifestOrIndex(JSON.stringify(index), MediaType.DockerManifestList);
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.issues[0]).toEqual({ path: "$.mediaType", message: "required field is missing" });
    const s1 = parseManifestOrIndex('{"schemaVersion":1,"fsLayers":[]}');
    expect(!s1.ok && s1.issues[0]?.code).toBe(ErrorCode.UnsupportedMediaType);
    const mismatch = parseManifestOrIndex(
      JSON.stringify({ ...manifest, mediaType: MediaType.OciManifest }),
      MediaType.OciIndex,
    );
    expect(!mismatch.ok && mismatch.issues[0]?.path).toBe("$.mediaType");
    try {
      parseManifestOrIndexOrThrow('{"schemaVersion":2,"manifests":[{}]}', undefined, "localhost:5000/app:1");
      expect.unreachable();
    } catch (e) {
      expect(isRktError(e, ErrorCode.InvalidManifest)).toBe(true);
      expect((e as Error).message).toMatch(
        /^localhost:5000\/app:1: \$\.manifests\[0\]\.mediaType: required field is missing \(and 2 more\)$/,
      );
    }
  });
});

describe("helpers", () => {
  it("describes bytes", () => {
    const bytes = new TextEncoder().encode("{}");
    expect(descriptorOf(bytes, MediaType.OciEmpty)).toEqual({
      mediaType: MediaType.OciEmpty,
      digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
      size: 2,
    });
    expect(descriptorOf(bytes, "a/b", "sha512").digest).toMatch(/^sha512:[0-9a-f]{128}$/);
  });

  it("reports artifactType, falling back to the config media type", () => {
    const m: Manifest = { schemaVersion: 2, config: manifest.config, layers: [] };
    expect(artifactTypeOf(m)).toBe(MediaType.OciConfig);
    expect(artifactTypeOf({ ...m, artifactType: "application/x.sbom" })).toBe("application/x.sbom");
    expect(artifactTypeOf({ schemaVersion: 2, manifests: [] })).toBeUndefined();
  });

  it("computes ChainIDs as config.md defines them", () => {
    const ids = [d("1"), d("2"), d("3")];
    const c1 = `sha256:${createHash("sha256").update(`${ids[0]} ${ids[1]}`).digest("hex")}`;
    const c2 = `sha256:${createHash("sha256").update(`${c1} ${ids[2]}`).digest("hex")}`;
    expect(chainIds(ids)).toEqual([ids[0], c1, c2]);
    expect(chainIds([])).toEqual([]);
  });
});

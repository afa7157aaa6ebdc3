import { describe, expect, it } from "vitest";
import {
  ErrorCode,
  MediaType,
  detectDocumentType,
  digestOf,
  isRktError,
  parseDescriptor,
  parseIndex,
  parseIndexOrThrow,
  parseManifest,
  parseManifestOrThrow,
  parseOciLayout,
  parseOciLayoutOrThrow,
  type ParseResult,
} from "@rkt/oci";

const enc = (s: string) => new TextEncoder().encode(s);
const hex = (c: string) => c.repeat(64);
const d = (c: string) => `sha256:${hex(c)}`;

const emptyDesc = {
  mediaType: MediaType.OciEmpty,
  digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
  size: 2,
  data: "e30=",
};

function ociManifest(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: d("b"), size: 7023 },
    layers: [
      { mediaType: MediaType.OciLayerGzip, digest: d("9"), size: 32654 },
      { mediaType: MediaType.OciLayerGzip, digest: d("3"), size: 16724 },
    ],
    annotations: { "com.example.key1": "value1" },
    ...over,
  };
}

const json = (v: unknown) => enc(JSON.stringify(v));

/** The single issue of a failed parse. */
function only<T>(r: ParseResult<T>) {
  if (r.ok) throw new Error(`expected a failure, got ${JSON.stringify(r.value)}`);
  return r.issues[0]!;
}

describe("parseDescriptor", () => {
  it("accepts the spec's empty descriptor with embedded data", () => {
    const r = parseDescriptor(json(emptyDesc));
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value.data).toBe("e30=");
  });

  it("accepts urls, annotations, artifactType and a zero-length blob; drops unknown fields", () => {
    const r = parseDescriptor(
      json({
        mediaType: MediaType.DockerForeignLayerGzip,
        digest: "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        size: 0,
        urls: ["https://mcr.microsoft.com/v2/windows/blobs/x?a=b&c=%20"],
        annotations: { "org.opencontainers.image.title": "" },
        artifactType: "application/vnd.example+type",
        future: 1,
      }),
    );
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value).not.toHaveProperty("future");
  });

  const bad: [string, Record<string, unknown>, string, RegExp][] = [
    ["missing mediaType", { digest: d("a"), size: 1 }, "$.mediaType", /required field is missing/],
    ["bad mediaType", { mediaType: "text", digest: d("a"), size: 1 }, "$.mediaType", /RFC 6838/],
    ["mediaType with a space", { mediaType: "a/b c", digest: d("a"), size: 1 }, "$.mediaType", /RFC 6838/],
    [
      "uppercase hex",
      { mediaType: "a/b", digest: `sha256:${hex("A")}`, size: 1 },
      "$.digest",
      /lowercase hex/,
    ],
    ["short digest", { mediaType: "a/b", digest: "sha256:abc", size: 1 }, "$.digest", /64 lowercase hex/],
    ["no algorithm", { mediaType: "a/b", digest: hex("a"), size: 1 }, "$.digest", /not algorithm:hex/],
    ["negative size", { mediaType: "a/b", digest: d("a"), size: -1 }, "$.size", /must not be negative/],
    ["fractional size", { mediaType: "a/b", digest: d("a"), size: 1.5 }, "$.size", /integer/],
    ["size above 2^53", { mediaType: "a/b", digest: d("a"), size: 2 ** 53 }, "$.size", /integer no larger/],
    ["string size", { mediaType: "a/b", digest: d("a"), size: "1" }, "$.size", /must be a number/],
    ["relative url", { mediaType: "a/b", digest: d("a"), size: 1, urls: ["/x"] }, "$.urls[0]", /RFC 3986/],
    [
      "url with a space",
      { mediaType: "a/b", digest: d("a"), size: 1, urls: ["http://a b"] },
      "$.urls[0]",
      /RFC 3986/,
    ],
    [
      "numeric annotation",
      { mediaType: "a/b", digest: d("a"), size: 1, annotations: { k: 1 } },
      "$.annotations.k",
      /must be strings/,
    ],
    ["unpadded data", { ...emptyDesc, data: "e30" }, "$.data", /padded standard base64/],
    ["url-safe data", { ...emptyDesc, data: "e3-_" }, "$.data", /padded standard base64/],
    ["data of the wrong size", { ...emptyDesc, data: "e30K" }, "$.data", /decodes to 3 bytes but size is 2/],
    ["data of the wrong digest", { ...emptyDesc, data: "W10=" }, "$.data", /does not match digest/],
    [
      "bad artifactType",
      { mediaType: "a/b", digest: d("a"), size: 1, artifactType: "x" },
      "$.artifactType",
      /RFC 6838/,
    ],
    [
      "platform without os",
      { mediaType: "a/b", digest: d("a"), size: 1, platform: { architecture: "amd64" } },
      "$.platform.os",
      /required/,
    ],
  ];
  for (const [name, doc, path, message] of bad) {
    it(`refuses ${name}`, () => {
      const i = only(parseDescriptor(json(doc)));
      expect(i.path).toBe(path);
      expect(i.message).toMatch(message);
    });
  }

  // descriptor.md: "Implementations SHOULD allow digests that are unsupported to pass validation
  // if they comply with the above grammar."
  it("accepts well-formed digests of algorithms that are not registered or not computed here", () => {
    for (const digest of [
      `blake3:${hex("a")}`,
      "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
      "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
    ]) {
      const r = parseDescriptor(json({ mediaType: "a/b", digest, size: 1 }));
      expect(r.ok).toBe(true);
      if (r.ok) expect(r.value.digest).toBe(digest);
    }
  });

  it("checks only the size of data under a digest it cannot compute", () => {
    const digest = "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8";
    expect(parseDescriptor(json({ mediaType: "a/b", digest, size: 2, data: "e30=" })).ok).toBe(true);
    const i = only(parseDescriptor(json({ mediaType: "a/b", digest, size: 3, data: "e30=" })));
    expect(i.path).toBe("$.data");
    expect(i.message).toMatch(/decodes to 2 bytes but size is 3/);
  });

  it("checks data against sha512 digests too", () => {
    const bytes = enc("{}");
    const r = parseDescriptor(
      json({ mediaType: MediaType.OciEmpty, digest: digestOf(bytes, "sha512"), size: 2, data: "e30=" }),
    );
    expect(r.ok).toBe(true);
  });
});

describe("parseManifest", () => {
  it("accepts an OCI image manifest and keeps the raw bytes", () => {
    const bytes = json(ociManifest());
    const r = parseManifest(bytes);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.raw).toBe(bytes);
    expect(r.value.layers.map((l) => l.size)).toEqual([32654, 16724]);
    expect(r.value.annotations).toEqual({ "com.example.key1": "value1" });
  });

  it("accepts an OCI manifest without mediaType, by shape or by hint", () => {
    const { mediaType: _m, ...doc } = ociManifest();
    expect(parseManifest(json(doc)).ok).toBe(true);
    expect(parseManifest(json(doc), MediaType.OciManifest).ok).toBe(true);
    // An unknown Content-Type (old registries send application/json) is no evidence either way.
    expect(parseManifest(json(doc), "application/json").ok).toBe(true);
  });

  // manifest.md (artifacts): an artifact without content carries the empty descriptor as its one layer.
  it("accepts artifacts: empty config with artifactType, the empty layer, a subject", () => {
    const r = parseManifest(
      json({
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        artifactType: "application/vnd.example.sbom.v1",
        config: emptyDesc,
        layers: [emptyDesc],
        subject: { mediaType: MediaType.OciManifest, digest: d("c"), size: 1234 },
      }),
    );
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value.subject?.digest).toBe(d("c"));
  });

  // image-manifest-schema.json: "layers": {"type": "array", "minItems": 1, ...}.
  it("refuses an OCI image manifest without layers, artifact or not", () => {
    for (const over of [{}, { artifactType: "application/vnd.example.sbom.v1", config: emptyDesc }]) {
      const i = only(parseManifest(json(ociManifest({ ...over, layers: [] }))));
      expect(i.path).toBe("$.layers");
      expect(i.message).toBe("an image manifest needs at least one layer");
    }
  });

  it("accepts a Docker schema2 manifest", () => {
    const bytes = json({
      schemaVersion: 2,
      mediaType: MediaType.DockerManifest,
      config: { mediaType: MediaType.DockerConfig, size: 7023, digest: d("b") },
      layers: [
        { mediaType: MediaType.DockerLayerGzip, size: 32654, digest: d("e") },
        {
          mediaType: MediaType.DockerForeignLayerGzip,
          size: 73109,
          digest: d("f"),
          urls: ["https://example.com/layer"],
        },
      ],
    });
    const r = parseManifest(bytes, `${MediaType.DockerManifest}; charset=utf-8`);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value.mediaType).toBe(MediaType.DockerManifest);
  });

  const bad: [string, Record<string, unknown>, string, RegExp][] = [
    ["schemaVersion 3", ociManifest({ schemaVersion: 3 }), "$.schemaVersion", /schemaVersion must be 2/],
    [
      "missing schemaVersion",
      ociManifest({ schemaVersion: undefined }),
      "$.schemaVersion",
      /required field is missing/,
    ],
    ["missing config", ociManifest({ config: undefined }), "$.config", /required field is missing/],
    ["missing layers", ociManifest({ layers: undefined }), "$.layers", /required field is missing/],
    ["layers not an array", ociManifest({ layers: {} }), "$.layers", /expected array/],
    [
      "a bad layer digest",
      ociManifest({ layers: [{ mediaType: MediaType.OciLayer, digest: "sha256:x", size: 1 }] }),
      "$.layers[0].digest",
      /invalid digest/,
    ],
    [
      "a negative config size",
      ociManifest({ config: { mediaType: MediaType.OciConfig, digest: d("b"), size: -5 } }),
      "$.config.size",
      /negative/,
    ],
    [
      "empty config without artifactType",
      ociManifest({ config: emptyDesc }),
      "$.artifactType",
      /artifactType is required/,
    ],
    [
      "a bad subject",
      ociManifest({ subject: { mediaType: MediaType.OciManifest, digest: d("c") } }),
      "$.subject.size",
      /required/,
    ],
    [
      "annotations not strings",
      ociManifest({ annotations: { a: true } }),
      "$.annotations.a",
      /must be strings/,
    ],
    [
      "an unknown mediaType",
      ociManifest({ mediaType: "application/vnd.example+json" }),
      "$.mediaType",
      /unsupported manifest media type/,
    ],
  ];
  for (const [name, doc, path, message] of bad) {
    it(`refuses ${name}`, () => {
      const i = only(parseManifest(json(doc)));
      expect(i.path).toBe(path);
      expect(i.message).toMatch(message);
    });
  }

  it("refuses a mediaType that disagrees with the Content-Type", () => {
    const i = only(parseManifest(json(ociManifest()), MediaType.DockerManifest));
    expect(i.path).toBe("$.mediaType");
    expect(i.message).toBe(
      `mediaType ${MediaType.OciManifest} does not match the expected type ${MediaType.DockerManifest}`,
    );
  });

  it("refuses a Docker manifest without its mediaType", () => {
    const { mediaType: _m, ...doc } = ociManifest();
    const i = only(parseManifest(json(doc), MediaType.DockerManifest));
    expect(i.path).toBe("$.mediaType");
    expect(i.message).toBe("required field is missing");
  });

  it("refuses an index given as a manifest", () => {
    const i = only(parseManifest(json({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] })));
    expect(i.path).toBe("$");
    expect(i.message).toBe("expected an image manifest, got an image index");
  });

  it("refuses schema1 by media type and by shape, with RKT_UNSUPPORTED_MEDIA_TYPE", () => {
    const schema1 = { schemaVersion: 1, name: "library/docker", tag: "1.0", fsLayers: [], history: [] };
    for (const r of [
      parseManifest(json(schema1)),
      parseManifest(json(schema1), MediaType.DockerSchema1Signed),
      parseManifest(json({ ...schema1, schemaVersion: 2 }), MediaType.DockerSchema1),
    ]) {
      const i = only(r);
      expect(i.code).toBe(ErrorCode.UnsupportedMediaType);
      expect(i.message).toMatch(/^schema1 manifests are not supported/);
    }
  });

  it("refuses JSON that is not an object, and I-JSON violations", () => {
    expect(only(parseManifest("[]")).message).toBe("manifest must be a JSON object");
    const i = only(parseManifest('{"schemaVersion":2,"schemaVersion":2}'));
    expect(i.path).toBe("$.schemaVersion");
    expect(i.message).toMatch(/duplicate key/);
  });

  it("reports every issue, not just the first", () => {
    const r = parseManifest(json(ociManifest({ schemaVersion: 1.5, layers: [{}] })));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.issues.map((i) => i.path)).toEqual(
      expect.arrayContaining([
        "$.schemaVersion",
        "$.layers[0].mediaType",
        "$.layers[0].digest",
        "$.layers[0].size",
      ]),
    );
  });

  it("throws RktError naming the input and the first issue", () => {
    expect(parseManifestOrThrow(json(ociManifest())).value.schemaVersion).toBe(2);
    try {
      parseManifestOrThrow(json(ociManifest({ config: undefined })), undefined, "example.com/app:1");
      expect.unreachable();
    } catch (e) {
      expect(isRktError(e, ErrorCode.InvalidManifest)).toBe(true);
      expect((e as Error).message).toBe("example.com/app:1: $.config: required field is missing");
    }
    try {
      parseManifestOrThrow(json({ schemaVersion: 1 }));
      expect.unreachable();
    } catch (e) {
      expect(isRktError(e, ErrorCode.UnsupportedMediaType)).toBe(true);
    }
    try {
      parseManifestOrThrow(
        json(ociManifest({ layers: [{ mediaType: "a/b", digest: "sha512:ab", size: 1 }] })),
      );
      expect.unreachable();
    } catch (e) {
      expect(isRktError(e, ErrorCode.InvalidManifest)).toBe(true);
      expect((e as Error).message).toMatch(/^manifest: \$\.layers\[0\]\.digest: .*sha512 needs 128/);
    }
  });
});

describe("parseIndex", () => {
  const index = {
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: [
      {
        mediaType: MediaType.OciManifest,
        size: 7143,
        digest: d("e"),
        platform: { architecture: "ppc64le", os: "linux" },
      },
      {
        mediaType: MediaType.OciManifest,
        size: 7682,
        digest: d("5"),
        platform: {
          architecture: "amd64",
          os: "windows",
          "os.version": "10.0.14393.1066",
          "os.features": ["win32k"],
        },
      },
    ],
    annotations: { "com.example.key1": "value1" },
  };

  it("accepts an OCI index with platforms", () => {
    const r = parseIndex(json(index));
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value.manifests[1]?.platform?.["os.features"]).toEqual(["win32k"]);
  });

  it("accepts an empty index, one without mediaType, and a Docker manifest list", () => {
    expect(parseIndex(json({ schemaVersion: 2, manifests: [] })).ok).toBe(true);
    const list = {
      schemaVersion: 2,
      mediaType: MediaType.DockerManifestList,
      manifests: [
        {
          mediaType: MediaType.DockerManifest,
          size: 7143,
          digest: d("e"),
          platform: { architecture: "arm", os: "linux", variant: "v7", features: ["sse4"] },
        },
      ],
    };
    const r = parseIndex(json(list), MediaType.DockerManifestList);
    expect(r.ok).toBe(true);
  });

  it("refuses bad entries with their path", () => {
    const bad = structuredClone(index) as { manifests: Record<string, unknown>[] };
    bad.manifests[1]!["platform"] = { architecture: "", os: "linux" };
    const i = only(parseIndex(json(bad)));
    expect(i.path).toBe("$.manifests[1].platform.architecture");
    expect(i.message).toBe("architecture must not be empty");
    const i2 = only(parseIndex(json({ schemaVersion: 2, mediaType: MediaType.OciIndex })));
    expect(i2.path).toBe("$.manifests");
    const list = {
      schemaVersion: 2,
      mediaType: MediaType.DockerManifestList,
      manifests: [{ ...index.manifests[0], digest: "sha256:" }],
    };
    const i3 = only(parseIndex(json(list)));
    expect(i3.path).toBe("$.manifests[0].digest");
  });

  it("refuses a manifest given as an index", () => {
    const i = only(parseIndex(json(ociManifest())));
    expect(i.message).toBe("expected an image index, got oci-manifest");
    expect(() => parseIndexOrThrow(json(ociManifest()), undefined, "oci:/tmp/x")).toThrow(
      /^oci:\/tmp\/x: \$: expected an image index/,
    );
  });
});

describe("parseOciLayout", () => {
  it('accepts version "1.0.0" with extra fields', () => {
    expect(parseOciLayout('{"imageLayoutVersion":"1.0.0","extra":1}').ok).toBe(true);
  });
  it("refuses other versions", () => {
    const i = only(parseOciLayout('{"imageLayoutVersion":"2.0.0"}'));
    expect(i.path).toBe("$.imageLayoutVersion");
    expect(i.message).toBe('imageLayoutVersion must be "1.0.0"');
    expect(only(parseOciLayout("{}")).message).toBe("required field is missing");
    try {
      parseOciLayoutOrThrow("{}", "/srv/layout/oci-layout");
      expect.unreachable();
    } catch (e) {
      expect(isRktError(e, ErrorCode.InvalidArchive)).toBe(true);
    }
  });
});

describe("detectDocumentType", () => {
  it("classifies by mediaType, else by shape", () => {
    expect(detectDocumentType({ mediaType: MediaType.DockerManifestList, manifests: [] })).toBe(
      "docker-manifest-list",
    );
    expect(detectDocumentType({ mediaType: MediaType.DockerManifest })).toBe("docker-manifest");
    expect(detectDocumentType({ mediaType: MediaType.DockerSchema1Signed })).toBe("schema1");
    expect(detectDocumentType({ schemaVersion: 1, fsLayers: [] })).toBe("schema1");
    expect(detectDocumentType({ schemaVersion: 2, manifests: [] })).toBe("oci-index");
    expect(detectDocumentType({ schemaVersion: 2, config: {}, layers: [] })).toBe("oci-manifest");
    expect(detectDocumentType({ imageLayoutVersion: "1.0.0" })).toBe("oci-layout");
    expect(detectDocumentType({ architecture: "amd64", os: "linux", rootfs: {} })).toBe("image-config");
    expect(detectDocumentType({ mediaType: "application/x-other" })).toBe("unknown");
    expect(detectDocumentType([])).toBe("unknown");
    expect(detectDocumentType(null)).toBe("unknown");
  });
});

// Cases from image-spec's schema tests (schema/descriptor_test.go, schema/manifest_test.go) with
// this project's outcome, which is the spec's: a digest of an algorithm that is not registered
// passes when it matches the grammar (descriptor.md), and an image manifest needs at least one
// layer (the manifest JSON schema's `minItems: 1`).
import { describe, expect, it } from "vitest";
import { ErrorCode, MediaType, parseDescriptor, parseManifest } from "@rkt/oci";

const d5b = "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270";
const c86 = "sha256:c86f7763873b6c0aae22d963bab59b4f5debbed6685761b5951584f6efb0633b";
const m = MediaType.OciManifest;

type Outcome = "ok" | { path: string; code?: string };
const descriptorVectors: [string, Record<string, unknown>, Outcome][] = [
  ["valid descriptor", { mediaType: m, size: 7682, digest: d5b }, "ok"],
  [
    "zero length blob",
    {
      mediaType: "application/octet-stream",
      size: 0,
      digest: "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    },
    "ok",
  ],
  ["mediaType missing", { size: 7682, digest: d5b }, { path: "$.mediaType" }],
  [
    "mediaType without subtype",
    { mediaType: "application", size: 7682, digest: d5b },
    { path: "$.mediaType" },
  ],
  [
    "mediaType bad first type character",
    { mediaType: ".foo/bar", size: 7682, digest: d5b },
    { path: "$.mediaType" },
  ],
  [
    "mediaType bad first subtype character",
    { mediaType: "foo/.bar", size: 7682, digest: d5b },
    { path: "$.mediaType" },
  ],
  [
    "mediaType parts of 127 characters",
    { mediaType: `${"1".repeat(127)}/${"2".repeat(127)}`, size: 7682, digest: d5b },
    "ok",
  ],
  [
    "mediaType type too long",
    { mediaType: `${"1".repeat(128)}/bar`, size: 7682, digest: d5b },
    { path: "$.mediaType" },
  ],
  [
    "mediaType subtype too long",
    { mediaType: `foo/${"1".repeat(128)}`, size: 7682, digest: d5b },
    { path: "$.mediaType" },
  ],
  ["size missing", { mediaType: m, digest: d5b }, { path: "$.size" }],
  ["size a string", { mediaType: m, size: "7682", digest: d5b }, { path: "$.size" }],
  ["digest missing", { mediaType: m, size: 7682 }, { path: "$.digest" }],
  [
    "digest without algorithm",
    { mediaType: m, size: 7682, digest: `:${d5b.slice(7)}` },
    { path: "$.digest" },
  ],
  ["digest without hash", { mediaType: m, size: 7682, digest: "sha256" }, { path: "$.digest" }],
  [
    "digest algorithm uppercase",
    { mediaType: m, size: 7682, digest: `SHA256:${d5b.slice(7)}` },
    { path: "$.digest" },
  ],
  [
    "digest hex uppercase",
    { mediaType: m, size: 7682, digest: d5b.toUpperCase().replace("SHA256", "sha256") },
    { path: "$.digest" },
  ],
  ["valid url", { mediaType: m, size: 7682, digest: d5b, urls: ["https://example.com/foo"] }, "ok"],
  ["invalid url", { mediaType: m, size: 7682, digest: d5b, urls: ["value"] }, { path: "$.urls[0]" }],
  ["artifactType", { mediaType: m, artifactType: m, size: 7682, digest: d5b }, "ok"],
  [
    "artifactType bad subtype",
    { mediaType: m, artifactType: "foo/.bar", size: 7682, digest: d5b },
    { path: "$.artifactType" },
  ],
  [
    "data matching size and digest",
    {
      mediaType: "text/plain",
      size: 34,
      data: "aHR0cHM6Ly9naXRodWIuY29tL29wZW5jb250YWluZXJzCg==",
      digest: "sha256:2690af59371e9eca9453dc29882643f46e5ca47ec2862bd517b5e17351325153",
    },
    "ok",
  ],
  [
    "data without padding",
    {
      mediaType: "text/plain",
      size: 34,
      data: "aHR0cHM6Ly9naXRodWIuY29tL29wZW5jb250YWluZXJzCg",
      digest: "sha256:2690af59371e9eca9453dc29882643f46e5ca47ec2862bd517b5e17351325153",
    },
    { path: "$.data" },
  ],
  // descriptor.md: unsupported digests SHOULD pass validation when they match the grammar.
  ["sha256+b64", { mediaType: m, size: 1470, digest: `sha256+b64:${c86.slice(7)}` }, "ok"],
  ["sha256+foo-bar", { mediaType: m, size: 1470, digest: `sha256+foo-bar:${c86.slice(7)}` }, "ok"],
  ["sha256.foo-bar", { mediaType: m, size: 1470, digest: `sha256.foo-bar:${c86.slice(7)}` }, "ok"],
  [
    "multihash+base58",
    { mediaType: m, size: 1470, digest: "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8" },
    "ok",
  ],
  [
    "sha256+b64u.unknownlength with padding",
    {
      mediaType: m,
      size: 1000000,
      digest: "sha256+b64u.unknownlength:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564=",
    },
    "ok",
  ],
  [
    "repeated separators in the algorithm",
    { mediaType: m, size: 1470, digest: `sha256+foo+-b:${c86.slice(7)}` },
    { path: "$.digest", code: ErrorCode.InvalidDigest },
  ],
  // A registered algorithm restricts the encoded part: lowercase hex of its length.
  ["sha512 of 64 hex", { mediaType: m, size: 1470, digest: `sha512:${c86.slice(7)}` }, { path: "$.digest" }],
  ["blake3 of 63 hex", { mediaType: m, size: 1470, digest: `blake3:${c86.slice(8)}` }, { path: "$.digest" }],
  ["blake3 of 64 hex", { mediaType: m, size: 1470, digest: `blake3:${c86.slice(7)}` }, "ok"],
  ["negative size", { mediaType: m, size: -7682, digest: d5b }, { path: "$.size" }],
];

describe("image-spec descriptor vectors", () => {
  for (const [name, doc, outcome] of descriptorVectors) {
    it(name, () => {
      const r = parseDescriptor(JSON.stringify(doc));
      if (outcome === "ok") {
        expect(r.ok).toBe(true);
        return;
      }
      expect(r.ok).toBe(false);
      if (r.ok) return;
      expect(r.issues[0]?.path).toBe(outcome.path);
      if (outcome.code === ErrorCode.InvalidDigest) {
        expect(r.issues[0]?.code).toBeUndefined();
        expect(r.issues[0]?.message).toMatch(/not algorithm:hex/);
      }
    });
  }
});

describe("image-spec manifest vectors", () => {
  const config = { mediaType: MediaType.OciConfig, size: 1470, digest: c86 };
  const layer = {
    mediaType: MediaType.OciLayerGzip,
    size: 148,
    digest: "sha256:c57089565e894899735d458f0fd4bb17a0f1e0df8d72da392b85c9b35ee777cd",
  };
  const base = { schemaVersion: 2, mediaType: m, config, layers: [layer] };
  const cases: [string, Record<string, unknown>, Outcome][] = [
    ["mediaType invalid", { ...base, mediaType: "invalid" }, { path: "$.mediaType" }],
    ["config.size a string", { ...base, config: { ...config, size: "1470" } }, { path: "$.config.size" }],
    [
      "layers[0].size a string",
      { ...base, layers: [{ ...layer, size: "675598" }] },
      { path: "$.layers[0].size" },
    ],
    // image-spec's strict mode refuses unknown layer types; storing and copying MUST NOT error on them.
    [
      "unknown layer media type",
      { ...base, layers: [{ ...layer, mediaType: "application/vnd.other.layer" }] },
      "ok",
    ],
    [
      "config.digest not hex",
      {
        ...base,
        config: {
          ...config,
          digest: "sha256:c86f7763873b6c0aaehhhhhhhhhhhhhhhhmmmmmmmmmmmmmmmm22d9h3bab59b4f",
        },
      },
      { path: "$.config.digest" },
    ],
    ["optional annotations", { ...base, annotations: { key1: "value1", key2: "value2" } }, "ok"],
    ["only required fields", base, "ok"],
    // image-manifest-schema.json: `layers` has minItems 1 (vector manifest/05-invalid.json).
    ["no layers", { ...base, layers: [] }, { path: "$.layers" }],
  ];
  for (const [name, doc, outcome] of cases) {
    it(name, () => {
      const r = parseManifest(JSON.stringify(doc));
      if (outcome === "ok") {
        expect(r.ok).toBe(true);
        return;
      }
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.issues[0]?.path).toBe(outcome.path);
    });
  }
});

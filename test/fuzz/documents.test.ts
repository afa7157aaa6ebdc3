// Fuzzing the JSON documents of OCI and Docker images (manifests, indexes, configs, descriptors,
// oci-layout) and what is derived from them (platform selection), and `docker save` archives'
// manifest.json through the validator the import shares.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { validateFile } from "@rkt/fetch";
import {
  MediaType,
  detectDocumentType,
  digestOf,
  parseDescriptor,
  parseImageConfig,
  parseIndex,
  parseJsonStrict,
  parseManifest,
  parseManifestOrIndex,
  parseManifestOrThrow,
  parseOciLayout,
  selectPlatform,
} from "@rkt/oci";
import { rawTar } from "@rkt/testkit";
import { FuzzStats, corpus, fuzz, maxRss, maxRssMiB, mutatedJson, refusal } from "./harness.js";

const stats = new FuzzStats("documents");
afterAll(() => {
  console.log(stats.line());
  expect(maxRss()).toBeLessThan(maxRssMiB);
});

const seeds = corpus("oci-documents").map((c) => c.bytes);
const hints = fc.constantFrom(
  undefined,
  MediaType.OciManifest,
  MediaType.OciIndex,
  MediaType.DockerManifest,
  MediaType.DockerManifestList,
  MediaType.DockerSchema1Signed,
  "application/json",
  "text/html; charset=utf-8",
);
const platforms = [
  { os: "linux", architecture: "amd64" },
  { os: "linux", architecture: "arm", variant: "v7" },
  { os: "windows", architecture: "amd64", "os.version": "10.0.17763.1" },
];

// Everything a registry's answer goes through: the strict JSON reader, each schema, detection,
// the throwing variant, and platform selection over an index that parsed.
function parseAll([bytes, hint]: [Buffer, string | undefined]): void {
  parseJsonStrict(bytes);
  parseManifest(bytes, hint);
  parseIndex(bytes, hint);
  parseImageConfig(bytes);
  parseDescriptor(bytes);
  parseOciLayout(bytes);
  const either = parseManifestOrIndex(bytes, hint);
  const j = parseJsonStrict(bytes);
  if (j.ok) detectDocumentType(j.value);
  if (either.ok && either.value.kind === "index") {
    const index = either.value.index;
    for (const p of platforms) refusal(() => selectPlatform(index.manifests, p, "index"));
  }
  refusal(() => parseManifestOrThrow(bytes, hint, "fuzz"));
}

describe("OCI and Docker documents", () => {
  it("parse without crashing or hanging", { timeout: 120_000 }, async () => {
    const inputs = fc.tuple(mutatedJson(seeds), hints);
    await fuzz(stats, parseAll, inputs, {
      numRuns: 2500,
      boundMs: 1000,
      corpus: seeds.map((s) => [s, undefined] as [Buffer, string | undefined]),
    });
  });
});

// The config and layer of a minimal docker-archive; manifest.json comes from the fuzzer with
// CONFIG and LAYER standing for their names.
const layerTar = rawTar([{ name: "hello", body: "hello\n" }]);
const configBytes = Buffer.from(
  JSON.stringify({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: [digestOf(layerTar)] },
  }),
);
const configName = `${digestOf(configBytes).slice(7)}.json`;

describe("docker-archive manifest.json", () => {
  const dir = mkdtempSync(join(tmpdir(), "rkt-fuzz-archive-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const manifests = corpus("docker-archive").map((c) => c.bytes);
  let n = 0;

  async function validate(manifest: Buffer): Promise<void> {
    const text = manifest
      .toString("latin1")
      .replaceAll("CONFIG", configName)
      .replaceAll("LAYER", "l/layer.tar");
    const file = join(dir, `a${n++}.tar`);
    writeFileSync(
      file,
      rawTar([
        { name: "manifest.json", body: Buffer.from(text, "latin1") },
        { name: configName, body: configBytes },
        { name: "l/", type: "5" },
        { name: "l/layer.tar", body: layerTar },
      ]),
    );
    try {
      const r = await validateFile(file, "docker-archive");
      // Verdicts, not exceptions: every problem is an issue with a path.
      for (const i of r.issues) expect(i.message).not.toBe("");
    } finally {
      rmSync(file, { force: true });
    }
  }

  it("validates without crashing or hanging", { timeout: 120_000 }, async () => {
    await fuzz(stats, validate, mutatedJson(manifests), { numRuns: 400, boundMs: 1000, corpus: manifests });
  });
});

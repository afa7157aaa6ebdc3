// importOciLayout / importOciArchive against a real LocalStore and the bundled example layout.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "@rkt/oci";
import type { LocalStore } from "@rkt/store";
import { fsck, listImages } from "@rkt/store";
import { importOciArchive, importOciLayout } from "../src/local-import.js";
import { openOciLayout } from "../src/oci-layout.js";
import { withStoreIn } from "./store-helpers.js";

const repo = resolve(import.meta.dirname, "..", "..", "..");
const helloOci = join(repo, "examples", "hello-oci");
const index = JSON.parse(readFileSync(join(helloOci, "index.json"), "utf8")) as {
  manifests: { mediaType: string; digest: string; size: number }[];
};
const helloId = index.manifests[0]!.digest;

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-oci-import-"));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function withStore<T>(fn: (s: LocalStore) => Promise<T>): Promise<T> {
  return withStoreIn(tmp, fn);
}

function put(dir: string, bytes: Buffer): { digest: string; size: number } {
  const hex = createHash("sha256").update(bytes).digest("hex");
  writeFileSync(join(dir, "blobs", "sha256", hex), bytes);
  return { digest: `sha256:${hex}`, size: bytes.length };
}

/**
 * hello-oci plus a second manifest (same layer, different config) behind an image index listing
 * linux/amd64 → hello and linux/arm64 → the other; index.json names the index "multi" and
 * also lists hello directly as "plain".
 */
function multiPlatformLayout(): { dir: string; arm64: string } {
  const dir = join(tmp, `multi-${Math.random().toString(16).slice(2)}`);
  cpSync(helloOci, dir, { recursive: true });
  const m = JSON.parse(readFileSync(join(dir, "blobs", "sha256", helloId.slice(7)), "utf8")) as {
    config: { digest: string; size: number; mediaType: string };
  };
  const cfg = JSON.parse(
    readFileSync(join(dir, "blobs", "sha256", m.config.digest.slice(7)), "utf8"),
  ) as Record<string, unknown>;
  const c = put(dir, Buffer.from(JSON.stringify({ ...cfg, architecture: "arm64" })));
  const arm = put(dir, Buffer.from(JSON.stringify({ ...m, config: { ...m.config, ...c } })));
  const mt = "application/vnd.oci.image.manifest.v1+json";
  const idx = put(
    dir,
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [
          {
            mediaType: mt,
            digest: helloId,
            size: index.manifests[0]!.size,
            platform: { os: "linux", architecture: "amd64" },
          },
          { mediaType: mt, ...arm, platform: { os: "linux", architecture: "arm64" } },
        ],
      }),
    ),
  );
  writeFileSync(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        {
          mediaType: "application/vnd.oci.image.index.v1+json",
          ...idx,
          annotations: { "org.opencontainers.image.ref.name": "multi" },
        },
        {
          ...index.manifests[0],
          annotations: { "org.opencontainers.image.ref.name": "example.com/hello:1.0" },
        },
      ],
    }),
  );
  return { dir, arm64: arm.digest };
}

describe("importOciLayout", () => {
  it("imports the example layout with its blobs as they are; names it after the directory", async () => {
    await withStore(async (s) => {
      const r = await importOciLayout(s, await openOciLayout(helloOci));
      expect(r).toMatchObject({ id: helloId, kind: "oci", name: "hello-oci", size: 1582 });
      expect(r.digests[0]).toBe(helloId);
      expect(r.digests).toHaveLength(3);
      for (const d of r.digests) {
        expect(readFileSync(join(s.paths.blobs, "sha256", d.slice(7)))).toEqual(
          readFileSync(join(helloOci, "blobs", "sha256", d.slice(7))),
        );
      }
      expect(listImages(s)[0]!.labels).toMatchObject({ version: "latest", os: "linux", arch: "amd64" });
      expect((await fsck(s)).clean).toBe(true);
    });
  });

  it("reports config and layer bytes written and already stored (the --format json summary)", async () => {
    await withStore(async (s) => {
      const first = await importOciLayout(s, await openOciLayout(helloOci));
      expect(first.bytesReused).toBe(0);
      expect(first.bytesWritten).toBe(first.size - index.manifests[0]!.size);
      const again = await importOciLayout(s, await openOciLayout(helloOci));
      expect(again).toMatchObject({ bytesWritten: 0, bytesReused: first.bytesWritten });
    });
  });

  it("resolves an index entry to the platform's manifest; a full ref name gives name and tag", async () => {
    const { dir, arm64 } = multiPlatformLayout();
    await withStore(async (s) => {
      const reader = await openOciLayout(dir);
      const amd = await importOciLayout(s, reader, {
        ref: "multi",
        platform: { os: "linux", architecture: "amd64" },
      });
      expect(amd.id).toBe(helloId);
      const arm = await importOciLayout(s, reader, {
        ref: "multi",
        platform: { os: "linux", architecture: "arm64" },
      });
      expect(arm.id).toBe(arm64);
      const named = await importOciLayout(s, reader, { ref: "example.com/hello:1.0" });
      expect(named).toMatchObject({ id: helloId, name: "example.com/hello" });
      const at = await importOciLayout(s, reader, { index: 1 });
      expect(at.id).toBe(helloId);
      await expect(
        importOciLayout(s, reader, { ref: "multi", platform: { os: "linux", architecture: "s390x" } }),
      ).rejects.toMatchObject({
        code: ErrorCode.NoMatchingPlatform,
      });
      await expect(importOciLayout(s, reader)).rejects.toMatchObject({ code: ErrorCode.Ambiguous });
      await expect(importOciLayout(s, reader, { ref: "nope", what: "oci:X:nope" })).rejects.toThrow(
        /^oci:X:nope: .*no image named "nope"/,
      );
      await expect(importOciLayout(s, reader, { index: 7 })).rejects.toMatchObject({
        code: ErrorCode.NotFound,
      });
    });
  });
});

describe("importOciArchive", () => {
  it("imports a tar of the layout (plain and gzip) and leaves no temp directory", async () => {
    const plain = join(tmp, "hello.tar");
    execFileSync("tar", ["-C", helloOci, "-cf", plain, "."]);
    const gz = join(tmp, "hello.tar.gz");
    execFileSync("tar", ["-C", helloOci, "-czf", gz, "oci-layout", "index.json", "blobs"]);
    await withStore(async (s) => {
      expect((await importOciArchive(s, plain)).id).toBe(helloId);
      const r = await importOciArchive(s, gz, { ref: "latest" });
      expect(r).toMatchObject({ id: helloId, name: "hello" });
      expect(readdirSync(s.paths.tmp)).toEqual([]);
      // Errors name the input, never the temp directory the archive was unpacked into.
      await expect(importOciArchive(s, plain, { ref: "nope", what: "oci-archive:X:nope" })).rejects.toThrow(
        /^oci-archive:X:nope: no image named "nope" in index\.json$/,
      );
      expect(readdirSync(s.paths.tmp)).toEqual([]);
    });
  });

  it("an archive without a layout names the input", async () => {
    const p = join(tmp, "empty.tar");
    execFileSync("tar", ["-C", join(repo, "examples"), "-cf", p, "hello.aci"]);
    await withStore(async (s) => {
      await expect(importOciArchive(s, p, { what: `oci-archive:${p}` })).rejects.toThrow(
        new RegExp(`^oci-archive:${p}: not an OCI archive`),
      );
      expect(readdirSync(s.paths.tmp)).toEqual([]);
    });
  });
});

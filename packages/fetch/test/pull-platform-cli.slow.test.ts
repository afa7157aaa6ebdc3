// `rkt fetch --os/--arch/--variant` through the built binary (run `npx tsc -b` first): an image
// index pushed by real skopeo to the real docker-registry, and the same index in an OCI layout.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pushLayout, useRegistry } from "@rkt/testkit";

const repo = resolve(import.meta.dirname, "..", "..", "..");
const bin = join(repo, "packages", "cli", "bin", "rkt.js");
const helloOci = join(repo, "examples", "hello-oci");
const reg = useRegistry({ mode: "plain" });

let tmp: string;
let layout: string;
let amd64: string;
let arm64: string;

function put(dir: string, bytes: Buffer): { digest: string; size: number } {
  const hex = createHash("sha256").update(bytes).digest("hex");
  writeFileSync(join(dir, "blobs", "sha256", hex), bytes);
  return { digest: `sha256:${hex}`, size: bytes.length };
}

// hello-oci (linux/amd64) plus a linux/arm64 twin (same layer, another config) behind one index,
// named `multi` in index.json.
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-pull-platform-"));
  layout = join(tmp, "multi");
  cpSync(helloOci, layout, { recursive: true });
  const top = (
    JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as {
      manifests: { digest: string; size: number }[];
    }
  ).manifests[0]!;
  amd64 = top.digest;
  const m = JSON.parse(readFileSync(join(layout, "blobs", "sha256", amd64.slice(7)), "utf8")) as {
    config: { digest: string; size: number };
  };
  const cfg = JSON.parse(
    readFileSync(join(layout, "blobs", "sha256", m.config.digest.slice(7)), "utf8"),
  ) as object;
  const c = put(layout, Buffer.from(JSON.stringify({ ...cfg, architecture: "arm64" })));
  const arm = put(layout, Buffer.from(JSON.stringify({ ...m, config: { ...m.config, ...c } })));
  arm64 = arm.digest;
  const mt = "application/vnd.oci.image.manifest.v1+json";
  const idx = put(
    layout,
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [
          { mediaType: mt, ...top, platform: { os: "linux", architecture: "amd64" } },
          { mediaType: mt, ...arm, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
        ],
      }),
    ),
  );
  writeFileSync(
    join(layout, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.index.v1+json",
          ...idx,
          annotations: { "org.opencontainers.image.ref.name": "multi" },
        },
      ],
    }),
  );
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function rkt(dir: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, "--dir", dir, ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("rkt fetch --os/--arch/--variant", () => {
  it("picks the index entry for the asked platform (host by default); none matching lists the offer", async () => {
    await pushLayout(layout, "multi/hello:1", reg(), { layoutRef: "multi" });
    const url = `docker://${reg().host}/multi/hello:1`;
    const dir = mkdtempSync(join(tmp, "store-"));
    const insecure = "--insecure-options=image,http";
    if (process.arch === "x64") expect(rkt(dir, [insecure, "fetch", url]).stdout).toBe(`${amd64}\n`);
    expect(rkt(dir, [insecure, "fetch", "--arch", "arm64", url]).stdout).toBe(`${arm64}\n`);
    expect(rkt(dir, [insecure, "fetch", "--os=linux", "--arch=arm64", "--variant=v8", url]).stdout).toBe(
      `${arm64}\n`,
    );
    const none = rkt(dir, [insecure, "fetch", "--os", "linux", "--arch", "s390x", url]);
    expect(none.code).toBe(254);
    expect(none.stderr).toMatch(/no manifest for linux\/s390x; available: linux\/amd64, linux\/arm64\/v8\n$/);
    // One error line (after the --insecure-options=image warning).
    expect(none.stderr.split("\n").filter((l) => !l.startsWith("image: warning:"))).toHaveLength(2);
    const bad = rkt(dir, [insecure, "fetch", "--variant", "v7", url]);
    expect(bad).toMatchObject({
      code: 254,
      stderr: "fetch: --variant needs --arch (a variant belongs to one architecture)\n",
    });
  });

  it("--quiet drops the per-blob lines; the ID stays on stdout", () => {
    const url = `docker://${reg().host}/multi/hello:1`;
    const insecure = "--insecure-options=image,http";
    const loud = rkt(mkdtempSync(join(tmp, "store-")), [insecure, "fetch", "--arch=arm64", url]);
    expect(loud.stderr).toMatch(/^Downloaded sha256:[0-9a-f]{64} \(\d+ bytes\)$/m);
    for (const q of ["--quiet", "-q"]) {
      const quiet = rkt(mkdtempSync(join(tmp, "store-")), [insecure, "fetch", q, "--arch=arm64", url]);
      // Warnings stay under --quiet: only the one about --insecure-options=image is left.
      expect(quiet).toMatchObject({
        code: 0,
        stdout: `${arm64}\n`,
        stderr: "image: warning: image signature verification has been disabled\n",
      });
    }
  });

  it("applies to OCI layouts too", () => {
    const dir = mkdtempSync(join(tmp, "store-"));
    expect(rkt(dir, ["fetch", "--arch", "arm64", `oci:${layout}:multi`]).stdout).toBe(`${arm64}\n`);
    const none = rkt(dir, ["fetch", "--arch", "riscv64", `oci:${layout}:multi`]);
    expect(none.code).toBe(254);
    expect(none.stderr).toMatch(/available: linux\/amd64, linux\/arm64\/v8\n$/);
  });
});

// `rkt image copy | push | save` between two real registries (plain, and htpasswd over TLS), OCI
// layouts, OCI archives and the store; checked by skopeo, umoci and oci-image-tool as independent
// readers, and by reading back what skopeo wrote.
import { execFile, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  inspectRaw,
  pushLayout,
  skopeoRegistryArgs,
  startRegistry,
  writeOciLayout,
  writeOciLayoutIndex,
  type FileEntry,
  type Registry,
} from "@rkt/testkit";
import { runRkt, type RktRun } from "./helpers.js";

let tmp: string;
let origin: Registry;
let dest: Registry;
let indexDigest: string;
let amd64Digest: string;

const files = (tag: string): FileEntry[] => [
  { path: "etc", type: "dir" },
  { path: "etc/os-release", type: "file", content: `ID=${tag}\n` },
  { path: "bin", type: "dir" },
  { path: "bin/data", type: "file", content: Buffer.alloc(300_000, tag) },
];

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "rkt-copy-"));
  [origin, dest] = await Promise.all([
    startRegistry({ mode: "plain" }),
    startRegistry({ mode: "basic", tls: true }),
  ]);
  const idx = await writeOciLayoutIndex(join(tmp, "src-layout"), [
    { layers: [files("base"), files("amd64")], os: "linux", architecture: "amd64" },
    { layers: [files("base"), files("arm64")], os: "linux", architecture: "arm64" },
  ]);
  indexDigest = idx.descriptor.digest;
  amd64Digest = idx.images[0]!.descriptor.digest;
  await pushLayout(join(tmp, "src-layout"), "app:v1", origin);
}, 120_000);

afterAll(async () => {
  await origin?.stop();
  await dest?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

function rkt(dir: string, args: string[]): Promise<RktRun> {
  return runRkt(["--dir", dir, "--insecure-options=http", ...args], { cwd: tmp });
}

const destFlags = () => [`--dest-creds=${dest.username}:${dest.password}`, "--dest-tls-verify=false"];
const srcFlags = () => [`--src-creds=${dest.username}:${dest.password}`, "--src-tls-verify=false"];

interface Summary {
  digest: string;
  blobs: { exists: number; mounted: number; written: number };
}

function skopeo(args: string[]): string {
  return execFileSync("skopeo", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

describe("rkt image copy", () => {
  it("registry to registry with --all: the index and every image; a second run sends nothing", async () => {
    const dir = mkdtempSync(join(tmp, "store-"));
    const args = ["image", "copy", "--all", "--format=json", ...destFlags()];
    const first = await rkt(dir, [
      ...args,
      `docker://${origin.host}/app:v1`,
      `docker://${dest.host}/mirror/app:v1`,
    ]);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    const s1 = JSON.parse(first.stdout) as Summary;
    expect(s1.digest).toBe(indexDigest);
    // Two platform images: two configs, one shared base layer, two top layers.
    expect(s1.blobs).toEqual({ exists: 0, mounted: 0, written: 5 });
    // skopeo reads back exactly the index's bytes.
    const raw = await inspectRaw(dest, "mirror/app:v1");
    expect(createHash("sha256").update(raw).digest("hex")).toBe(indexDigest.slice(7));
    const again = await rkt(dir, [
      ...args,
      `docker://${origin.host}/app:v1`,
      `docker://${dest.host}/mirror/app:v1`,
    ]);
    expect(again.code).toBe(0);
    // The tag already names this index there: one HEAD, no blob looked at.
    expect(JSON.parse(again.stdout)).toMatchObject({
      unchanged: true,
      blobs: { exists: 0, mounted: 0, written: 0 },
    });
    // Under a new tag of the same repository: every blob is found present and none is sent.
    const retag = await rkt(dir, [
      ...args,
      `docker://${origin.host}/app:v1`,
      `docker://${dest.host}/mirror/app:v2`,
    ]);
    expect(JSON.parse(retag.stdout)).toMatchObject({
      unchanged: false,
      blobs: { exists: 5, mounted: 0, written: 0 },
    });
  });

  it("within one registry, blobs are mounted, not uploaded; without --all only the host's image goes", async () => {
    const dir = mkdtempSync(join(tmp, "store-"));
    const r = await rkt(dir, [
      "image",
      "copy",
      "--format=json",
      `docker://${origin.host}/app:v1`,
      `docker://${origin.host}/other/app:v2`,
    ]);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout) as Summary;
    expect(s.digest).toBe(amd64Digest);
    expect(s.blobs).toEqual({ exists: 0, mounted: 3, written: 0 });
    const raw = JSON.parse((await inspectRaw(origin, "other/app:v2")).toString()) as { layers: unknown[] };
    expect(raw.layers).toHaveLength(2);
  });

  it("registry to an OCI layout that umoci unpacks and oci-image-tool accepts; skopeo's own layout copies back", async () => {
    const dir = mkdtempSync(join(tmp, "store-"));
    const layout = join(tmp, "out-layout");
    const r = await rkt(dir, ["image", "copy", "-q", `docker://${origin.host}/app:v1`, `oci:${layout}:v1`]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(amd64Digest);
    execFileSync("oci-image-tool", ["validate", "--type", "image", layout]);
    const bundle = join(tmp, "bundle");
    execFileSync("umoci", ["unpack", "--rootless", "--image", `${layout}:v1`, bundle]);
    expect(readFileSync(join(bundle, "rootfs", "etc", "os-release"), "utf8")).toBe("ID=amd64\n");
    // What skopeo writes, we read.
    const sk = join(tmp, "skopeo-layout");
    skopeo([
      "copy",
      "-q",
      ...skopeoRegistryArgs(origin, "src"),
      `docker://${origin.host}/app:v1`,
      `oci:${sk}:x`,
    ]);
    const back = await rkt(dir, [
      "image",
      "copy",
      "-q",
      ...destFlags(),
      `oci:${sk}:x`,
      `docker://${dest.host}/from-skopeo:x`,
    ]);
    expect(back.code).toBe(0);
    expect(back.stdout.trim()).toBe(amd64Digest);
  });

  it("a corrupt layer in the source: nothing is tagged at the destination, exit 254 naming the blob", async () => {
    const dir = mkdtempSync(join(tmp, "store-"));
    const layout = join(tmp, "corrupt");
    const img = await writeOciLayout(layout, { layers: [files("c")] });
    const layer = img.layers[0]!.digest.slice(7);
    const p = join(layout, "blobs", "sha256", layer);
    const bytes = readFileSync(p);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 10) ^ 0xff, bytes.length - 10);
    writeFileSync(p, bytes);
    const r = await rkt(dir, [
      "image",
      "copy",
      "-q",
      ...destFlags(),
      `oci:${layout}`,
      `docker://${dest.host}/corrupt:v1`,
    ]);
    expect(r.code).toBe(254);
    expect(r.stderr).toMatch(/corrupt:v1|blob/);
    expect(() =>
      skopeo(["inspect", "--raw", ...skopeoRegistryArgs(dest, ""), `docker://${dest.host}/corrupt:v1`]),
    ).toThrow();
  });

  it("a copy interrupted after its first blob resumes: committed blobs are not sent again", async () => {
    const dir = mkdtempSync(join(tmp, "store-"));
    const ac = new AbortController();
    const err = new PassThrough();
    err.on("data", (c: Buffer) => {
      if (c.toString().includes("Copied blob")) ac.abort();
    });
    const target = `docker://${dest.host}/resumed/app:v1`;
    const args = ["image", "copy", "--parallel=1", ...destFlags(), `docker://${origin.host}/app:v1`, target];
    const cut = await runRkt(["--dir", dir, "--insecure-options=http", ...args], {
      cwd: tmp,
      stderr: err,
      signal: ac.signal,
    });
    expect(cut.code).toBe(254);
    // No tag at the destination after the interruption.
    expect(() =>
      skopeo(["inspect", "--raw", ...skopeoRegistryArgs(dest, ""), `docker://${dest.host}/resumed/app:v1`]),
    ).toThrow();
    const again = await rkt(dir, [
      "image",
      "copy",
      "--format=json",
      "--parallel=1",
      ...destFlags(),
      `docker://${origin.host}/app:v1`,
      target,
    ]);
    expect(again.code).toBe(0);
    const s = JSON.parse(again.stdout) as Summary;
    expect(s.digest).toBe(amd64Digest);
    // At least the blob finished before the cut is found there, not uploaded again.
    expect(s.blobs.exists).toBeGreaterThanOrEqual(1);
    expect(s.blobs.exists + s.blobs.written).toBe(3);
  });

  it("wrong credentials: 401, exit 254, nothing pushed", async () => {
    const dir = mkdtempSync(join(tmp, "store-"));
    const r = await rkt(dir, [
      "image",
      "copy",
      "-q",
      `--dest-creds=${dest.username}:wrong`,
      "--dest-tls-verify=false",
      `docker://${origin.host}/app:v1`,
      `docker://${dest.host}/denied:v1`,
    ]);
    expect(r.code).toBe(254);
    expect(r.stderr).toMatch(/401|unauthorized|authentication/i);
  });
});

describe("rkt image push and save", () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmp, "store-"));
    const f = await rkt(dir, [
      "fetch",
      "--insecure-options=image,http",
      "--no-render",
      `docker://${origin.host}/app:v1`,
    ]);
    expect(f.stderr).not.toMatch(/error/);
    expect(f.code).toBe(0);
  });

  it("pushes a stored image; skopeo pulls it and umoci unpacks it", async () => {
    const r = await rkt(dir, [
      "image",
      "push",
      "-q",
      ...destFlags(),
      `${origin.host}/app:v1`,
      `docker://${dest.host}/pushed:v1`,
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(amd64Digest);
    const layout = join(tmp, "pushed-layout");
    skopeo([
      "copy",
      "-q",
      ...skopeoRegistryArgs(dest, "src"),
      `docker://${dest.host}/pushed:v1`,
      `oci:${layout}:p`,
    ]);
    const bundle = join(tmp, "pushed-bundle");
    execFileSync("umoci", ["unpack", "--rootless", "--image", `${layout}:p`, bundle]);
    expect(readFileSync(join(bundle, "rootfs", "bin", "data")).length).toBe(300_000);
  });

  it("pushes to a registry behind a token server (push scope); skopeo pulls it back", async () => {
    // Over TLS: credentials go to a token realm only over https.
    const tokenReg = await startRegistry({ mode: "token", tls: true });
    try {
      const creds = `--dest-creds=${tokenReg.username}:${tokenReg.password}`;
      const certs = `--dest-cert-dir=${tokenReg.certDir}`;
      const push = (args: string[]) =>
        runRkt(["--dir", dir, "image", "push", "-q", certs, ...args], { cwd: tmp });
      const r = await push([creds, `${origin.host}/app:v1`, `docker://${tokenReg.host}/tok/app:v1`]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      // Asynchronously: the token server runs in this process.
      const { stdout } = await promisify(execFile)("skopeo", [
        "inspect",
        ...skopeoRegistryArgs(tokenReg, ""),
        `docker://${tokenReg.host}/tok/app:v1`,
      ]);
      const inspected = JSON.parse(stdout) as { Digest: string };
      expect(inspected.Digest).toBe(amd64Digest);
      // The token asked for carried the push scope.
      expect(tokenReg.tokenRequests.flat()).toContain("repository:tok/app:pull,push");
      const denied = await push([
        "--dest-creds=rkt:wrong",
        `${origin.host}/app:v1`,
        `docker://${tokenReg.host}/tok/other:v1`,
      ]);
      expect(denied.code).toBe(254);
    } finally {
      await tokenReg.stop();
    }
  });

  it("verifies the destination's TLS with --dest-cert-dir, and refuses it without", async () => {
    const creds = `--dest-creds=${dest.username}:${dest.password}`;
    const target = `docker://${dest.host}/certdir:v1`;
    // Without --insecure-options=http, which would let the client fall back to plain HTTP.
    const secure = (args: string[]) => runRkt(["--dir", dir, ...args], { cwd: tmp });
    const refused = await secure(["image", "push", "-q", creds, `${origin.host}/app:v1`, target]);
    expect(refused.code).toBe(254);
    expect(refused.stderr).toMatch(/certs\.d|certificate/);
    // Allowing plain http does not turn a refused certificate into a plain-http request to a TLS port.
    const withHttp = await rkt(dir, ["image", "push", "-q", creds, `${origin.host}/app:v1`, target]);
    expect(withHttp.code).toBe(254);
    expect(withHttp.stderr).toMatch(/certs\.d/);
    expect(withHttp.stderr).not.toMatch(/HTTP 400/);
    const ok = await secure([
      "image",
      "push",
      "-q",
      creds,
      `--dest-cert-dir=${dest.certDir}`,
      `${origin.host}/app:v1`,
      target,
    ]);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
  });

  it("saves two images into one oci-archive that skopeo reads and rkt fetches back; refuses to overwrite", async () => {
    // A second stored image under another name: a copy from the store to the store.
    const second = await rkt(dir, [
      "image",
      "copy",
      "-q",
      ...srcFlags(),
      `docker://${origin.host}/app:v1`,
      "rkt:example.com/second:v2",
    ]);
    expect(second.code).toBe(0);
    const file = join(tmp, "saved.tar");
    const r = await rkt(dir, [
      "image",
      "save",
      "-q",
      "-o",
      file,
      `${origin.host}/app:v1`,
      "example.com/second:v2",
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(readdirSync(tmp).filter((n) => n.startsWith(".saved.tar.tmp"))).toEqual([]);
    const inspected = JSON.parse(skopeo(["inspect", `oci-archive:${file}:example.com/second:v2`])) as {
      Digest: string;
    };
    expect(inspected.Digest).toBe(amd64Digest);
    const fresh = mkdtempSync(join(tmp, "store-"));
    const f = await rkt(fresh, ["fetch", "--no-render", `oci-archive:${file}:example.com/second:v2`]);
    expect(f.stderr).toBe("");
    expect(f.code).toBe(0);
    expect(f.stdout.trim()).toBe(amd64Digest);
    const again = await rkt(dir, ["image", "save", "-q", "-o", file, "example.com/second:v2"]);
    expect(again.code).toBe(254);
    expect(again.stderr).toMatch(/already exists/);
    expect(existsSync(file)).toBe(true);
  });

  it("saves a docker-archive that skopeo and umoci read and rkt fetches back under the same config", async () => {
    const file = join(tmp, "saved-docker.tar");
    const r = await rkt(dir, [
      "image",
      "save",
      "-q",
      "--format=docker-archive",
      "-o",
      file,
      `${origin.host}/app:v1`,
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const manifest = JSON.parse(
      execFileSync("tar", ["xOf", file, "manifest.json"], { encoding: "utf8" }),
    ) as {
      Config: string;
      RepoTags: string[];
      Layers: string[];
    }[];
    expect(manifest).toHaveLength(1);
    expect(manifest[0]!.RepoTags).toEqual([`${origin.host}/app:v1`]);
    // Layers are the uncompressed diffs, named by their diff_ids.
    const config = JSON.parse(
      execFileSync("tar", ["xOf", file, manifest[0]!.Config], { encoding: "utf8" }),
    ) as {
      rootfs: { diff_ids: string[] };
    };
    expect(manifest[0]!.Layers).toEqual(config.rootfs.diff_ids.map((d) => `${d.slice(7)}.tar`));
    for (const [i, l] of manifest[0]!.Layers.entries()) {
      const sum = createHash("sha256").update(execFileSync("tar", ["xOf", file, l], { maxBuffer: 64 << 20 }));
      expect(`sha256:${sum.digest("hex")}`).toBe(config.rootfs.diff_ids[i]);
    }
    const layout = join(tmp, "from-docker-archive");
    skopeo(["copy", "-q", `docker-archive:${file}`, `oci:${layout}:d`]);
    const bundle = join(tmp, "docker-archive-bundle");
    execFileSync("umoci", ["unpack", "--rootless", "--image", `${layout}:d`, bundle]);
    expect(readFileSync(join(bundle, "rootfs", "etc", "os-release"), "utf8")).toBe("ID=amd64\n");
    const fresh = mkdtempSync(join(tmp, "store-"));
    const f = await rkt(fresh, ["fetch", "--no-render", "--format=json", `docker-archive:${file}`]);
    expect(f.stderr).toBe("");
    expect(f.code).toBe(0);
    const [fetched] = JSON.parse(f.stdout) as { name: string; digests: string[] }[];
    expect(fetched!.name).toBe(`${origin.host}/app`);
    expect(fetched!.digests[1]).toBe(`sha256:${manifest[0]!.Config.slice(0, -5)}`);
  });

  it("copies skopeo's docker-archive to a registry and an OCI layout; the config and diffs are unchanged", async () => {
    const file = join(tmp, "skopeo-docker.tar");
    skopeo([
      "copy",
      "-q",
      ...skopeoRegistryArgs(origin, "src"),
      `docker://${origin.host}/app:v1`,
      `docker-archive:${file}:example.com/app:v1`,
    ]);
    const c = await rkt(dir, [
      "image",
      "copy",
      "--format=json",
      ...destFlags(),
      `docker-archive:${file}`,
      `docker://${dest.host}/from-archive:v1`,
    ]);
    expect(c.stderr).toBe("");
    expect(c.code).toBe(0);
    const origConfig = JSON.parse(
      skopeo([
        "inspect",
        "--config",
        "--raw",
        ...skopeoRegistryArgs(origin, ""),
        `docker://${origin.host}/app@${amd64Digest}`,
      ]),
    ) as { rootfs: { diff_ids: string[] } };
    const copied = JSON.parse(
      skopeo([
        "inspect",
        "--config",
        "--raw",
        ...skopeoRegistryArgs(dest, ""),
        `docker://${dest.host}/from-archive:v1`,
      ]),
    ) as { rootfs: { diff_ids: string[] } };
    expect(copied.rootfs.diff_ids).toEqual(origConfig.rootfs.diff_ids);
    const layout = join(tmp, "archive-layout");
    const l = await rkt(dir, ["image", "copy", "-q", `docker-archive:${file}`, `oci:${layout}:x`]);
    expect(l.code).toBe(0);
    // A layout holds OCI documents: the Docker manifest is converted (same blobs), as skopeo does.
    execFileSync("oci-image-tool", ["validate", "--type", "image", layout]);
    const inspected = JSON.parse(skopeo(["inspect", `oci:${layout}:x`])) as { Digest: string };
    expect(inspected.Digest).toBe(l.stdout.trim());
  });

  it("a full disk while writing an archive: exit 254, no partial file or temporary left", async () => {
    if (process.getuid?.() !== 0) return;
    const mnt = mkdtempSync(join(tmp, "small-"));
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=4k", "tmpfs", mnt]);
    try {
      for (const format of ["oci-archive", "docker-archive"]) {
        const file = join(mnt, `full-${format}.tar`);
        const r = await rkt(dir, [
          "image",
          "save",
          "-q",
          `--format=${format}`,
          "-o",
          file,
          `${origin.host}/app:v1`,
        ]);
        expect(r.code).toBe(254);
        expect(r.stderr).toMatch(/ENOSPC|no space/i);
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
        expect(readdirSync(mnt)).toEqual([]);
      }
    } finally {
      execFileSync("umount", [mnt]);
    }
  });
});

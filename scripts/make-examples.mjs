#!/usr/bin/env node
// Builds the bundled example images, reproducibly (fixed mtimes, owners and gzip settings), from
// the same tiny root filesystem:
//   examples/hello-oci   an OCI image layout, one gzip layer, ref name "latest"
//   examples/hello.aci   an appc image (gzip), name example.com/hello
// Needs the built packages (`npm run build`). Run: node scripts/make-examples.mjs [OUTDIR]
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { gzipSync } from "node:zlib";
import { writeAci } from "../packages/appc/dist/index.js";
import { MediaType, digestOf } from "../packages/oci/dist/index.js";
import { pack } from "tar-stream";

const out = resolve(process.argv[2] ?? new URL("../examples", import.meta.url).pathname);
const mtime = new Date("2026-01-01T00:00:00Z");

/** The example root filesystem: a static binary (examples/src/hello.c) and a small data file. */
const files = [
  { name: "bin", type: "directory", mode: 0o755 },
  {
    name: "bin/hello",
    type: "file",
    mode: 0o755,
    body: readFileSync(new URL("../examples/src/hello", import.meta.url)),
  },
  { name: "etc", type: "directory", mode: 0o755 },
  { name: "etc/hello.txt", type: "file", mode: 0o644, body: "Hello from a bundled rkt example image.\n" },
];

const owner = { uid: 0, gid: 0, uname: "root", gname: "root", mtime };

async function collect(readable) {
  const chunks = [];
  for await (const c of readable) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

async function layerTar() {
  const p = pack();
  const done = collect(p);
  for (const f of files) {
    const h = { ...owner, name: f.type === "directory" ? `${f.name}/` : f.name, type: f.type, mode: f.mode };
    await new Promise((res, rej) => p.entry(h, f.body ?? "", (e) => (e ? rej(e) : res())));
  }
  p.finalize();
  return done;
}

const json = (v) => Buffer.from(JSON.stringify(v));
const sha256 = (b) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function writeBlob(dir, bytes) {
  const d = digestOf(bytes);
  await writeFile(join(dir, "blobs", "sha256", d.slice("sha256:".length)), bytes);
  return d;
}

async function makeOci(dir) {
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  const tar = await layerTar();
  // gzip header mtime 0 and a fixed level keep the blob (and so every digest) stable.
  const gz = gzipSync(tar, { level: 9 });
  const layerDigest = await writeBlob(dir, gz);
  const config = json({
    created: mtime.toISOString(),
    architecture: "amd64",
    os: "linux",
    config: { Env: ["PATH=/bin"], Entrypoint: ["/bin/hello"], Labels: { "org.example.name": "hello" } },
    rootfs: { type: "layers", diff_ids: [sha256(tar)] },
    history: [{ created: mtime.toISOString(), created_by: "scripts/make-examples.mjs" }],
  });
  const configDigest = await writeBlob(dir, config);
  const manifest = json({
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: configDigest, size: config.length },
    layers: [{ mediaType: MediaType.OciLayerGzip, digest: layerDigest, size: gz.length }],
    annotations: { "org.opencontainers.image.title": "hello" },
  });
  const manifestDigest = await writeBlob(dir, manifest);
  await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [
        {
          mediaType: MediaType.OciManifest,
          digest: manifestDigest,
          size: manifest.length,
          annotations: { "org.opencontainers.image.ref.name": "latest" },
          platform: { architecture: "amd64", os: "linux" },
        },
      ],
    }),
  );
  return manifestDigest;
}

async function makeAci(file) {
  const manifest = JSON.stringify({
    acKind: "ImageManifest",
    acVersion: "0.8.11",
    name: "example.com/hello",
    labels: [
      { name: "version", value: "0.1.0" },
      { name: "os", value: "linux" },
      { name: "arch", value: "amd64" },
    ],
    app: { exec: ["/bin/hello"], user: "0", group: "0", environment: [{ name: "PATH", value: "/bin" }] },
    annotations: [{ name: "created", value: mtime.toISOString() }],
  });
  const entries = files.map((f) => ({
    header: { ...owner, name: f.name, type: f.type, mode: f.mode, size: f.body?.length ?? 0 },
    body: f.body,
  }));
  const tar = await collect(writeAci(manifest, entries, { mtime }));
  await writeFile(file, gzipSync(tar, { level: 9 }));
}

await mkdir(out, { recursive: true });
const digest = await makeOci(join(out, "hello-oci"));
await makeAci(join(out, "hello.aci"));
console.log(
  `make-examples: wrote ${join(out, "hello-oci")} (manifest ${digest}) and ${join(out, "hello.aci")}`,
);

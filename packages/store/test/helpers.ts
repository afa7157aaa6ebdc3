// Test helpers: temporary stores and small real images built with tar-stream and zlib.
import { createHash } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { gzipSync } from "node:zlib";
import { pack } from "tar-stream";
import { ErrorCode, MediaType, RktError, digestOf, type Descriptor, type Digest } from "@rkt/oci";
import { LocalStore, type ImageSource } from "@rkt/store";

export interface TempStore {
  dir: string;
  store: LocalStore;
  cleanup(): Promise<void>;
}

export async function tempStore(): Promise<TempStore> {
  const dir = await mkdtemp(join(tmpdir(), "rkt-store-"));
  const store = await LocalStore.open(dir);
  return {
    dir,
    store,
    async cleanup() {
      store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface TarEntry {
  name: string;
  body?: string | Buffer;
  type?: "file" | "directory" | "symlink" | "link";
  linkname?: string;
  mode?: number;
}

export async function makeTar(entries: readonly TarEntry[]): Promise<Buffer> {
  const p = pack();
  const out = buffer(p);
  for (const e of entries) {
    const type = e.type ?? "file";
    const header = {
      name: e.name,
      type,
      mode: e.mode ?? (type === "directory" ? 0o755 : 0o644),
      mtime: new Date(1_600_000_000_000),
      ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
    };
    if (type === "file")
      p.entry(header, typeof e.body === "string" ? Buffer.from(e.body) : (e.body ?? Buffer.alloc(0)));
    else p.entry(header);
  }
  p.finalize();
  return out;
}

export function aciManifest(name: string, labels: Record<string, string> = {}): string {
  return JSON.stringify({
    acKind: "ImageManifest",
    acVersion: "0.8.11",
    name,
    labels: Object.entries(labels).map(([n, value]) => ({ name: n, value })),
  });
}

/** An uncompressed ACI: manifest + rootfs with a few files. */
export async function makeAci(
  name: string,
  labels: Record<string, string> = {},
  extra: readonly TarEntry[] = [],
): Promise<Buffer> {
  return makeTar([
    { name: "manifest", body: aciManifest(name, labels) },
    { name: "rootfs", type: "directory" },
    { name: "rootfs/etc", type: "directory" },
    { name: "rootfs/etc/hello", body: `hello from ${name}\n` },
    ...extra,
  ]);
}

export function sha512Id(bytes: Buffer): string {
  return `sha512-${createHash("sha512").update(bytes).digest("hex").slice(0, 64)}`;
}

export function readable(bytes: Buffer, chunk = 64 * 1024): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunk) parts.push(bytes.subarray(i, i + chunk));
  return Readable.from(parts, { objectMode: false });
}

export function gzip(bytes: Buffer): Buffer {
  return gzipSync(bytes);
}

export interface OciImage {
  raw: Buffer;
  digest: Digest;
  blobs: Map<string, Buffer>;
  layers: Descriptor[];
  config: Descriptor;
  source: ImageSource;
}

/** An OCI image of gzip layers built from tars; `layers` are shared by content. */
export function makeOciImage(layerTars: readonly Buffer[], opts: { os?: string } = {}): OciImage {
  const blobs = new Map<string, Buffer>();
  const layers: Descriptor[] = [];
  const diffIds: string[] = [];
  for (const t of layerTars) {
    const gz = gzipSync(t);
    const d = digestOf(gz);
    blobs.set(d, gz);
    layers.push({ mediaType: MediaType.OciLayerGzip, digest: d, size: gz.length });
    diffIds.push(digestOf(t));
  }
  const configBytes = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: opts.os ?? "linux",
      rootfs: { type: "layers", diff_ids: diffIds },
    }),
  );
  const config: Descriptor = {
    mediaType: MediaType.OciConfig,
    digest: digestOf(configBytes),
    size: configBytes.length,
  };
  blobs.set(config.digest, configBytes);
  const raw = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers }, null, 2),
  );
  return { raw, digest: digestOf(raw), blobs, layers, config, source: mapSource(blobs) };
}

export function mapSource(blobs: Map<string, Buffer>): ImageSource {
  return {
    blob(desc) {
      const b = blobs.get(desc.digest);
      if (b === undefined)
        return Promise.reject(new RktError(ErrorCode.NotFound, `blob ${desc.digest} not in source`));
      return Promise.resolve(readable(b, 1000));
    },
  };
}

/** Everything under the store's cas/ that is not expected to be there after a clean operation. */
export async function leftovers(dir: string): Promise<{ ingest: string[]; tmp: string[] }> {
  return {
    ingest: await readdir(join(dir, "cas", "ingest")),
    tmp: await readdir(join(dir, "cas", "tmp")),
  };
}

// Test helpers: layers built in memory with tar-stream, an in-memory sink, and an ACI lister that
// validates like `actool validate` (readAci refuses bad layouts and duplicate entries).
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { gzipSync } from "node:zlib";
import { pack } from "tar-stream";
import { readAci, type ImageManifest } from "@rkt/appc";
import { digestOf, type ImageConfig, type Manifest } from "@rkt/oci";
import type { AciSink, ImageInput, ImageNameInput, LayerInput } from "../src/index.js";

export interface RawEntry {
  name: string;
  type?: "file" | "directory" | "symlink" | "link" | "fifo" | "character-device";
  body?: string;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
}

/** An uncompressed layer tar with exactly these entries (names as given, hostile ones included). */
export async function tarLayer(entries: readonly RawEntry[]): Promise<Buffer> {
  const p = pack();
  const out = buffer(p);
  for (const e of entries) {
    const type = e.type ?? "file";
    await new Promise<void>((resolve, reject) =>
      p.entry(
        {
          name: e.name,
          type,
          mode: e.mode ?? (type === "directory" ? 0o755 : type === "symlink" ? 0o777 : 0o644),
          uid: e.uid ?? 0,
          gid: e.gid ?? 0,
          mtime: new Date("2000-01-01T00:00:00Z"),
          ...(e.linkname === undefined ? {} : { linkname: e.linkname }),
        },
        type === "file" ? (e.body ?? "") : "",
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  }
  p.finalize();
  return out;
}

export const testConfig: ImageConfig = {
  created: "2016-06-02T21:43:31.291506236Z",
  author: "rkt developer <rkt-dev@googlegroups.com>",
  architecture: "amd64",
  os: "linux",
  config: {
    User: "",
    Memory: 12345,
    MemorySwap: 0,
    CpuShares: 9001,
    ExposedPorts: { "80": {} },
    Env: ["FOO=1"],
    Entrypoint: ["/bin/sh", "-c", "echo"],
    Cmd: ["foo"],
    WorkingDir: "/",
  },
  rootfs: { type: "layers", diff_ids: [] },
};

/** An image whose layers are in memory (gzipped unless `plain`). */
export async function memoryImage(
  layers: readonly (readonly RawEntry[])[],
  o: { config?: ImageConfig; name?: ImageNameInput; plain?: boolean; opens?: number[] } = {},
): Promise<ImageInput> {
  const blobs = await Promise.all(
    layers.map(async (l) => {
      const tar = await tarLayer(l);
      return o.plain === true ? tar : gzipSync(tar);
    }),
  );
  const layerInputs: LayerInput[] = blobs.map((b, i) => ({
    mediaType:
      o.plain === true
        ? "application/vnd.oci.image.layer.v1.tar"
        : "application/vnd.oci.image.layer.v1.tar+gzip",
    digest: digestOf(b),
    open: () => {
      o.opens?.push(i);
      return Promise.resolve(Readable.from([b]));
    },
  }));
  const manifest: Manifest = {
    schemaVersion: 2,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: digestOf("{}"), size: 2 },
    layers: [],
  };
  return {
    manifest,
    config: o.config ?? testConfig,
    layers: layerInputs,
    name: o.name ?? { registry: "127.0.0.1:5000", repository: "docker2aci/dockerv22test", tag: "v0.1.0" },
    manifestHash: digestOf("manifest"),
  };
}

/** A sink keeping each ACI in memory (small test images only), by file name. */
export function memorySink(): { sink: AciSink; files: Map<string, Buffer>; attempts: string[] } {
  const files = new Map<string, Buffer>();
  const attempts: string[] = [];
  return {
    files,
    attempts,
    sink: async (target, data) => {
      attempts.push(target.fileName);
      files.set(target.fileName, await buffer(data));
    },
  };
}

export interface ListedEntry {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  linkname?: string;
  content?: string;
}

/** Reads an ACI (validating its layout as actool does) and lists its rootfs entries in order. */
export async function listAci(
  aci: Buffer,
): Promise<{ manifest: ImageManifest; entries: ListedEntry[]; imageId: string }> {
  const entries: ListedEntry[] = [];
  const r = await readAci(
    Readable.from([aci]),
    async (e, body) => {
      const h = e.header;
      const item: ListedEntry = {
        name: e.name,
        type: h.type ?? "file",
        mode: h.mode ?? 0,
        uid: h.uid ?? 0,
        gid: h.gid ?? 0,
      };
      if (h.linkname) item.linkname = h.linkname;
      if (h.type === "file") item.content = (await buffer(body)).toString("utf8");
      entries.push(item);
    },
    { hash: true },
  );
  return { manifest: r.manifest, entries, imageId: r.imageId ?? "" };
}

/** The rootfs entry names (without `rootfs/`), sorted. */
export function names(entries: readonly ListedEntry[]): string[] {
  return entries
    .map((e) => e.name.replace(/^rootfs\/?/, ""))
    .filter((n) => n !== "")
    .sort();
}
